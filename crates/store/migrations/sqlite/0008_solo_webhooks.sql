-- Solo webhooks: one row per webhook a tenant registered through the Solo
-- API (`POST /qapi/v1/webhooks`). The id is a UUID (text). `events` holds the
-- Solo event names as a JSON array; `sealed_key` the webhook's encryptionKey,
-- sealed under the server key (never in clear). A deleted ("deactivated")
-- webhook keeps its row with active = 0, so its queued deliveries still
-- name it.
CREATE TABLE solo_webhooks (
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    -- The order of the tenant's list (1, 2, ...).
    seq INTEGER NOT NULL,
    credential_id INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    events TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX solo_webhooks_list ON solo_webhooks (tenant_id, active, seq);
