-- Appointment search at a million rows (docs/storage.md, "Search plans").
--
-- The search indexes carry the search's whole key and its filter columns:
-- (tenant, participant, start, id) is the order the pages come in, so a page
-- is an index range read in order (no sort) starting right after the last row
-- of the previous page (keyset), and `end_s` lets the capped count and the
-- `end` filter run on the index alone. They replace the narrower indexes of
-- 0001, which they serve as well (same leading columns).
DROP INDEX IF EXISTS appointments_healthcare_service_id_start_s;
CREATE INDEX appointments_service_search ON appointments (tenant_id, healthcare_service_id, start_s, id, end_s);
DROP INDEX IF EXISTS appointments_patient_id;
CREATE INDEX appointments_patient_search ON appointments (tenant_id, patient_id, start_s, id, end_s);

-- Appointments by practitioner, every practitioner taking part, whatever the
-- status: `busy` holds only the time of live bookings, so a cancelled
-- appointment leaves it, but not this table. Written with every appointment
-- write, in the same transaction (store::appointments).
CREATE TABLE appointment_practitioners (
    tenant_id INTEGER NOT NULL,
    practitioner_id INTEGER NOT NULL,
    start_s INTEGER NOT NULL,
    appointment_id INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, practitioner_id, start_s, appointment_id)
) WITHOUT ROWID;
CREATE INDEX appointment_practitioners_appointment ON appointment_practitioners (tenant_id, appointment_id);
INSERT OR IGNORE INTO appointment_practitioners (tenant_id, practitioner_id, start_s, appointment_id, end_s)
    SELECT a.tenant_id, CAST(json_extract(p.value, '$.who.value') AS INTEGER), a.start_s, a.id, a.end_s
    FROM appointments a, json_each(a.doc, '$.participants') p
    WHERE json_extract(p.value, '$.who.kind') = 'practitioner';

-- Related persons by phone: an index probe instead of the `LIKE` scan of
-- their documents that representative matching by phone used. Written with
-- every related person, in the same transaction (store::related).
CREATE TABLE related_person_phones (
    tenant_id INTEGER NOT NULL,
    value TEXT NOT NULL,
    related_person_id INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, value, related_person_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO related_person_phones (tenant_id, value, related_person_id)
    SELECT r.tenant_id, json_extract(t.value, '$.value'), r.id
    FROM related_persons r, json_each(r.doc, '$.telecom') t
    WHERE json_extract(t.value, '$.system') IN ('phone', 'sms') AND json_extract(t.value, '$.value') IS NOT NULL;
