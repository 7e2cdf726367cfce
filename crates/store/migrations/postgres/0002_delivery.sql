-- Delivery engine and FHIR topic-based subscriptions.

-- Outbox rows are marked once fanned out to their targets.
ALTER TABLE outbox ADD COLUMN dispatched BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_dispatch ON outbox (tenant_id, dispatched, seq);

-- A delivery belongs to one target queue (target_key); a queue is sent in
-- order. lease_until (wall-clock seconds) marks a delivery a worker is sending.
ALTER TABLE deliveries ADD COLUMN target_key TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_until BIGINT NULL;
ALTER TABLE deliveries ADD COLUMN delivered_at BIGINT NULL;
CREATE INDEX deliveries_target ON deliveries (tenant_id, target_key, id);

-- Every attempt of every delivery.
CREATE TABLE delivery_attempts (
    tenant_id BIGINT NOT NULL,
    delivery_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT NULL,
    error TEXT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id, attempt)
);

-- Embassy (FHIR topic-based) subscriptions, one per API key and topic.
CREATE TABLE subscriptions (
    tenant_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    credential_id BIGINT NOT NULL,
    topic BIGINT NOT NULL,
    status TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    events_since_start BIGINT NOT NULL,
    heartbeat_seconds BIGINT NOT NULL,
    last_sent_at BIGINT NOT NULL,
    error_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX subscriptions_topic ON subscriptions (tenant_id, credential_id, topic);

-- The events each subscription was notified of, for $events.
CREATE TABLE subscription_events (
    tenant_id BIGINT NOT NULL,
    subscription_id BIGINT NOT NULL,
    event_number BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    focus TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id, event_number)
);
