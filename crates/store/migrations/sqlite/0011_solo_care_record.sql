-- The Solo care record: visit notes with their versions, attachments and
-- patient documents (metadata here, bytes in the blob store), episodes of
-- care, assistance requests and encounter-report jobs. The tables of the
-- first schema for these were never written to; they are replaced.
--
-- Patient data is sealed under the server key (AES-256-GCM) wherever it is
-- not needed for a query: the `doc` columns hold sealed JSON, the blobs
-- sealed bytes.
DROP TABLE visit_notes;
DROP TABLE patient_documents;
DROP TABLE assistance_requests;
DROP TABLE episodes;
DROP TABLE attachments;
DROP TABLE report_jobs;
DROP TABLE blobs;

-- Every change to an appointment's visit note is a new version; the newest
-- is the note.
CREATE TABLE visit_note_versions (
    tenant_id INTEGER NOT NULL,
    appointment_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    credential_id INTEGER NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, appointment_id, version)
);

-- Files attached to an appointment (`appointment_id`) or kept as a patient's
-- document (`patient_id`). `blob_id` is the content address in the blob
-- store; `doc` the sealed title and details. A deleted file keeps its row
-- (`deleted = 1`) and leaves every listing.
CREATE TABLE attachments (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    appointment_id INTEGER NULL,
    patient_id INTEGER NULL,
    blob_id TEXT NULL,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX attachments_appointment ON attachments (tenant_id, appointment_id, seq);
CREATE INDEX attachments_patient ON attachments (tenant_id, patient_id, seq);

-- Episodes of care (UUID ids), in the order they were made.
CREATE TABLE episodes (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    patient_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX episodes_patient ON episodes (tenant_id, patient_id, seq);
CREATE INDEX appointments_episode ON appointments (tenant_id, episode_id);

-- Assistance requests of a care location; at most one open (current) one
-- per location.
CREATE TABLE assistance_requests (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    care_location_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    open INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX assistance_requests_current ON assistance_requests (tenant_id, care_location_id) WHERE open = 1;

-- Encounter-report jobs: `pending` until the scheduler's job builds the
-- zip (its bytes in the blob store, `blob_id`), then `completed` or
-- `failed`. The password is kept sealed only while the job is pending.
CREATE TABLE report_jobs (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    preset_id TEXT NOT NULL,
    from_s INTEGER NOT NULL,
    to_s INTEGER NOT NULL,
    credential_id INTEGER NULL,
    sealed_password TEXT NULL,
    blob_id TEXT NULL,
    error TEXT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The blob store's table (PostgreSQL; SQLite keeps blobs in a directory
-- beside the database file): sealed bytes by content address.
CREATE TABLE blobs (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
