-- Polyclinic schema, version 1 (SQLite).
-- Every table carries tenant_id first in its primary key and in every index;
-- tenant 0 holds the dictionaries shared by all tenants (services, insurance).
-- Entities keep their JSON document in `doc` beside the columns queries use.

CREATE TABLE tenants (
    tenant_id INTEGER NOT NULL PRIMARY KEY,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
-- Routing lookup from the admin API's tenant key (before a tenant is known).
CREATE UNIQUE INDEX tenants_key ON tenants (key);

CREATE TABLE credentials (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    dialect TEXT NOT NULL,
    client_id TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    -- Secrets a protocol needs back in clear (Solo webhook key), encrypted at rest.
    sealed_secret TEXT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Routing lookups from a presented credential to its tenant: the only way in.
-- A credential is identified by its client id where the dialect has one
-- (Docplanner), otherwise by its secret (client_id is then empty).
CREATE UNIQUE INDEX credentials_identity ON credentials (dialect, client_id, secret_hash);
CREATE INDEX credentials_secret ON credentials (dialect, secret_hash);

CREATE TABLE practitioners (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX practitioners_key ON practitioners (tenant_id, key);

CREATE TABLE healthcare_services (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX healthcare_services_key ON healthcare_services (tenant_id, key);

CREATE TABLE facilities (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX facilities_key ON facilities (tenant_id, key);

CREATE TABLE addresses (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    key TEXT NOT NULL,
    facility_id INTEGER NOT NULL,
    practitioner_id INTEGER NOT NULL,
    healthcare_service_id INTEGER NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX addresses_key ON addresses (tenant_id, key);
CREATE INDEX addresses_facility_id ON addresses (tenant_id, facility_id);
CREATE INDEX addresses_healthcare_service_id ON addresses (tenant_id, healthcare_service_id);

CREATE TABLE address_services (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    address_id INTEGER NOT NULL,
    service_id INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX address_services_address_id_service_id ON address_services (tenant_id, address_id, service_id);

CREATE TABLE calendar_breaks (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    address_id INTEGER NOT NULL,
    start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX calendar_breaks_address_id_start_s ON calendar_breaks (tenant_id, address_id, start_s);

CREATE TABLE care_locations (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX care_locations_key ON care_locations (tenant_id, key);

CREATE TABLE patients (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE appointments (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    status TEXT NOT NULL,
    start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    healthcare_service_id INTEGER NULL,
    address_id INTEGER NULL,
    patient_id INTEGER NULL,
    external_id TEXT NULL,
    episode_id TEXT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX appointments_healthcare_service_id_start_s ON appointments (tenant_id, healthcare_service_id, start_s);
CREATE INDEX appointments_address_id_start_s ON appointments (tenant_id, address_id, start_s);
CREATE INDEX appointments_patient_id ON appointments (tenant_id, patient_id);
CREATE INDEX appointments_external_id ON appointments (tenant_id, external_id);
CREATE INDEX appointments_start_s ON appointments (tenant_id, start_s);

CREATE TABLE conversations (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    healthcare_service_id INTEGER NOT NULL,
    patient_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX conversations_patient_id ON conversations (tenant_id, patient_id);

CREATE TABLE conversation_messages (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX conversation_messages_conversation_id ON conversation_messages (tenant_id, conversation_id);

CREATE TABLE visit_notes (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    appointment_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX visit_notes_appointment_id ON visit_notes (tenant_id, appointment_id);

CREATE TABLE patient_documents (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    patient_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX patient_documents_patient_id ON patient_documents (tenant_id, patient_id);

CREATE TABLE assistance_requests (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    care_location_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX assistance_requests_care_location_id ON assistance_requests (tenant_id, care_location_id);

CREATE TABLE episodes (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    patient_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX episodes_patient_id ON episodes (tenant_id, patient_id);

CREATE TABLE attachments (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    appointment_id INTEGER NULL,
    episode_id TEXT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX attachments_appointment_id ON attachments (tenant_id, appointment_id);
CREATE INDEX attachments_episode_id ON attachments (tenant_id, episode_id);

CREATE TABLE report_jobs (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX report_jobs_status ON report_jobs (tenant_id, status);

-- Attachment bytes, apart from their metadata.
CREATE TABLE blobs (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Shared dictionaries live under tenant 0.
CREATE TABLE services (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE insurance_providers (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE address_insurance_providers (
    tenant_id INTEGER NOT NULL,
    address_id INTEGER NOT NULL,
    insurance_provider_id INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, address_id, insurance_provider_id)
);

-- Docplanner work periods: one row per period, replaced by range.
CREATE TABLE work_periods (
    tenant_id INTEGER NOT NULL,
    address_id INTEGER NOT NULL,
    start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, address_id, start_s)
);

-- Identifiers that find an entity (patient national ids, MRN, SPID, HSID,
-- external ids; practitioner HSA id, e-mail, national ids). Unique per system.
CREATE TABLE identifiers (
    tenant_id INTEGER NOT NULL,
    entity TEXT NOT NULL,
    system TEXT NOT NULL,
    value TEXT NOT NULL,
    entity_id INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity, system, value)
);
CREATE INDEX identifiers_entity ON identifiers (tenant_id, entity, entity_id);

-- Time held by appointments, per practitioner (kind 1) and address (kind 2).
-- No two rows of the same resource may overlap: the double-booking guard.
CREATE TABLE busy (
    tenant_id INTEGER NOT NULL,
    resource_kind INTEGER NOT NULL,
    resource_id INTEGER NOT NULL,
    appointment_id INTEGER NOT NULL,
    start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, resource_kind, resource_id, start_s, appointment_id)
);
CREATE INDEX busy_appointment ON busy (tenant_id, appointment_id);

-- Transactional outbox: every command appends its domain events here in the
-- same transaction. `seq` orders events globally for the delivery workers.
CREATE TABLE outbox (
    tenant_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    aggregate TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX outbox_aggregate ON outbox (tenant_id, aggregate, aggregate_id);

-- One row per (event, target): what the delivery engine sends and how it went.
CREATE TABLE deliveries (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    target TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER NULL,
    last_error TEXT NULL,
    next_attempt_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX deliveries_due ON deliveries (tenant_id, state, next_attempt_at);

-- Messages to patients and practitioners (e-mail, SMS).
CREATE TABLE patient_messages (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    kind TEXT NOT NULL,
    appointment_id INTEGER NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX patient_messages_appointment ON patient_messages (tenant_id, appointment_id);

-- Ids: counters per kind, advanced by the single writer.
CREATE TABLE id_sequences (
    name TEXT NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO id_sequences (name, value) VALUES ('seq_entity', 0), ('seq_outbox', 0), ('seq_delivery', 0), ('seq_message', 0);
