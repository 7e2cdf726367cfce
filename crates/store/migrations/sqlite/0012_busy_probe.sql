-- Time held by appointments, rebuilt as a WITHOUT ROWID table: the primary
-- key (tenant, resource, start) is the table itself, so the double-booking
-- probe ("the last interval of the resource starting before my end") reads
-- that interval's end in the same B-tree step, with no row lookup, and a
-- booking writes two B-trees (the table and `busy_appointment`) instead of
-- three. Same columns, same key, same rows.
CREATE TABLE busy_new (
    tenant_id INTEGER NOT NULL,
    resource_kind INTEGER NOT NULL,
    resource_id INTEGER NOT NULL,
    appointment_id INTEGER NOT NULL,
    start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, resource_kind, resource_id, start_s, appointment_id)
) WITHOUT ROWID;
INSERT INTO busy_new (tenant_id, resource_kind, resource_id, appointment_id, start_s, end_s)
    SELECT tenant_id, resource_kind, resource_id, appointment_id, start_s, end_s FROM busy;
DROP TABLE busy;
ALTER TABLE busy_new RENAME TO busy;
CREATE INDEX busy_appointment ON busy (tenant_id, appointment_id);
