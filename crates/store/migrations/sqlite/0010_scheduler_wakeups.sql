-- The scheduler sleeps until the next due instant instead of walking every
-- tenant: it asks which tenants have work (events not fanned out, deliveries
-- waiting) and when the next piece of work is due. Partial indexes hold only
-- the rows still waiting, so both questions read a small index whatever the
-- history's size.
CREATE INDEX outbox_waiting ON outbox (tenant_id, seq) WHERE dispatched = 0;
CREATE INDEX deliveries_waiting ON deliveries (tenant_id, next_attempt_at) WHERE state IN ('pending', 'failed');

-- Token expiry and the purge of Docplanner PULL notifications become due
-- jobs, armed for each tenant's earliest expiry.
INSERT INTO jobs (tenant_id, kind, subject, due_s, data)
    SELECT tenant_id, 'token-expiry', 'access-tokens', MIN(expires_at), '{}'
    FROM oauth_tokens GROUP BY tenant_id;
INSERT INTO jobs (tenant_id, kind, subject, due_s, data)
    SELECT tenant_id, 'docplanner-pull-purge', 'pull-queue', MIN(created_at) + 259200, '{}'
    FROM docplanner_notifications GROUP BY tenant_id;
