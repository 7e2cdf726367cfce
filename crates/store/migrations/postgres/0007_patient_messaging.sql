-- Patient messaging: each message is sent once per appointment, kind,
-- occasion (the start it is about, for a reminder or a change of time) and
-- recipient, however often its cause is seen (restarts, several nodes).
-- Recipients, subjects and bodies are sealed under the server key.
ALTER TABLE patient_messages ADD COLUMN occasion TEXT NOT NULL DEFAULT '';
ALTER TABLE patient_messages ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX patient_messages_once ON patient_messages (tenant_id, appointment_id, kind, occasion, recipient);

-- Time-driven work (reminders, check-in invitations, subscription
-- heartbeats), one row per kind and
-- subject, re-armed in place; a job is run and deleted in one transaction.
CREATE TABLE jobs (
    tenant_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    due_s BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, subject)
);
CREATE INDEX jobs_due ON jobs (tenant_id, due_s);
-- The scheduler's one question across tenants: when is the earliest job due?
CREATE INDEX jobs_next ON jobs (due_s);

-- Subscription heartbeats are jobs too: arm those of the subscriptions that
-- take one.
INSERT INTO jobs (tenant_id, kind, subject, due_s, data)
    SELECT tenant_id, 'subscription-heartbeat', CAST(id AS TEXT), last_sent_at + heartbeat_seconds, '{}'
    FROM subscriptions
    WHERE status IN ('active', 'error') AND channel_type = 'rest-hook' AND heartbeat_seconds > 0;

-- When a video visit is expected to start, estimated from the practitioner's
-- earlier visits of the day; a visit on time has no row.
CREATE TABLE expected_starts (
    tenant_id BIGINT NOT NULL,
    appointment_id BIGINT NOT NULL,
    expected_s BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, appointment_id)
);
