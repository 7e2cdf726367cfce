-- Representatives (and other related persons) known to a tenant, so that a
-- later appointment can name one by identifier alone.
CREATE TABLE related_persons (
    tenant_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
