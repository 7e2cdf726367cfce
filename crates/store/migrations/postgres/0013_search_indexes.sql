-- Appointment search at a million rows (docs/storage.md, "Search plans").
--
-- The search indexes carry the search's whole key and its filter columns:
-- (tenant, participant, start, id) is the order the pages come in, so a page
-- is an index range read in order (no sort) starting right after the last row
-- of the previous page (keyset), and `end_s` lets the capped count and the
-- `end` filter run as an index-only scan. They replace the narrower indexes
-- of 0001, which they serve as well (same leading columns).
DROP INDEX IF EXISTS appointments_healthcare_service_id_start_s;
CREATE INDEX appointments_service_search ON appointments (tenant_id, healthcare_service_id, start_s, id) INCLUDE (end_s);
DROP INDEX IF EXISTS appointments_patient_id;
CREATE INDEX appointments_patient_search ON appointments (tenant_id, patient_id, start_s, id) INCLUDE (end_s);

-- Appointments by practitioner, every practitioner taking part, whatever the
-- status: `busy` holds only the time of live bookings, so a cancelled
-- appointment leaves it, but not this table. Written with every appointment
-- write, in the same transaction (store::appointments).
CREATE TABLE appointment_practitioners (
    tenant_id BIGINT NOT NULL,
    practitioner_id BIGINT NOT NULL,
    start_s BIGINT NOT NULL,
    appointment_id BIGINT NOT NULL,
    end_s BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, practitioner_id, start_s, appointment_id) INCLUDE (end_s)
);
CREATE INDEX appointment_practitioners_appointment ON appointment_practitioners (tenant_id, appointment_id);
INSERT INTO appointment_practitioners (tenant_id, practitioner_id, start_s, appointment_id, end_s)
    SELECT a.tenant_id, (p->'who'->>'value')::BIGINT, a.start_s, a.id, a.end_s
    FROM appointments a, jsonb_array_elements(COALESCE(a.doc::jsonb->'participants', '[]'::jsonb)) p
    WHERE p->'who'->>'kind' = 'practitioner'
    ON CONFLICT DO NOTHING;

-- Related persons by phone: an index probe instead of the `LIKE` scan of
-- their documents that representative matching by phone used. Written with
-- every related person, in the same transaction (store::related).
CREATE TABLE related_person_phones (
    tenant_id BIGINT NOT NULL,
    value TEXT NOT NULL,
    related_person_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, value, related_person_id)
);
INSERT INTO related_person_phones (tenant_id, value, related_person_id)
    SELECT r.tenant_id, t->>'value', r.id
    FROM related_persons r, jsonb_array_elements(COALESCE(r.doc::jsonb->'telecom', '[]'::jsonb)) t
    WHERE t->>'system' IN ('phone', 'sms') AND t->>'value' IS NOT NULL
    ON CONFLICT DO NOTHING;
