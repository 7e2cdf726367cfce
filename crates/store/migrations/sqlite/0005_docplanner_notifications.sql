-- Docplanner PULL queues: one row per notification waiting for an API client
-- without a push URL, in order (id). A row is removed when it is pulled;
-- rows 72 hours old are expired and purged.
CREATE TABLE docplanner_notifications (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    credential_id INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX docplanner_notifications_queue ON docplanner_notifications (tenant_id, credential_id, id);
CREATE INDEX docplanner_notifications_age ON docplanner_notifications (tenant_id, created_at);

-- When each PUSH client last released its failed notifications (allowed once an hour).
CREATE TABLE docplanner_releases (
    tenant_id INTEGER NOT NULL,
    credential_id INTEGER NOT NULL,
    released_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, credential_id)
);
