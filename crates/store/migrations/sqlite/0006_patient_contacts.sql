-- Patients by contact point: the indexed lookup behind patient matching by
-- phone (and e-mail), instead of a text scan of the documents. Written with
-- every patient create and update, in the same transaction.
CREATE TABLE patient_contacts (
    tenant_id INTEGER NOT NULL,
    system TEXT NOT NULL,
    value TEXT NOT NULL,
    patient_id INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, system, value, patient_id)
);
CREATE INDEX patient_contacts_patient ON patient_contacts (tenant_id, patient_id);
INSERT OR IGNORE INTO patient_contacts (tenant_id, system, value, patient_id)
    SELECT p.tenant_id, json_extract(t.value, '$.system'), json_extract(t.value, '$.value'), p.id
    FROM patients p, json_each(p.doc, '$.telecom') t
    WHERE json_extract(t.value, '$.system') IS NOT NULL AND json_extract(t.value, '$.value') IS NOT NULL;
