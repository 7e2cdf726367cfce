-- Patients by contact point: the indexed lookup behind patient matching by
-- phone (and e-mail), instead of a text scan of the documents. Written with
-- every patient create and update, in the same transaction.
CREATE TABLE patient_contacts (
    tenant_id BIGINT NOT NULL,
    system TEXT NOT NULL,
    value TEXT NOT NULL,
    patient_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, system, value, patient_id)
);
CREATE INDEX patient_contacts_patient ON patient_contacts (tenant_id, patient_id);
INSERT INTO patient_contacts (tenant_id, system, value, patient_id)
    SELECT p.tenant_id, t->>'system', t->>'value', p.id
    FROM patients p, jsonb_array_elements(COALESCE(p.doc::jsonb->'telecom', '[]'::jsonb)) t
    WHERE t->>'system' IS NOT NULL AND t->>'value' IS NOT NULL
    ON CONFLICT DO NOTHING;
