-- Delivery engine and FHIR topic-based subscriptions.

-- Outbox rows are marked once fanned out to their targets.
ALTER TABLE outbox ADD COLUMN dispatched INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_dispatch ON outbox (tenant_id, dispatched, seq);

-- A delivery belongs to one target queue (target_key); a queue is sent in
-- order. lease_until (wall-clock seconds) marks a delivery a worker is sending.
ALTER TABLE deliveries ADD COLUMN target_key TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_until INTEGER NULL;
ALTER TABLE deliveries ADD COLUMN delivered_at INTEGER NULL;
CREATE INDEX deliveries_target ON deliveries (tenant_id, target_key, id);

-- Every attempt of every delivery.
CREATE TABLE delivery_attempts (
    tenant_id INTEGER NOT NULL,
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER NULL,
    error TEXT NULL,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id, attempt)
);

-- Embassy (FHIR topic-based) subscriptions, one per API key and topic.
CREATE TABLE subscriptions (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    credential_id INTEGER NOT NULL,
    topic INTEGER NOT NULL,
    status TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    events_since_start INTEGER NOT NULL,
    heartbeat_seconds INTEGER NOT NULL,
    last_sent_at INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX subscriptions_topic ON subscriptions (tenant_id, credential_id, topic);

-- The events each subscription was notified of, for $events.
CREATE TABLE subscription_events (
    tenant_id INTEGER NOT NULL,
    subscription_id INTEGER NOT NULL,
    event_number INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    focus TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id, event_number)
);
