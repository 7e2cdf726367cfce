-- Retention (store::retention): the prune reads a tenant's final deliveries
-- in id order, oldest first. Without this index SQLite would read them all
-- through deliveries_due (by state) and sort them; with it a run reads at
-- most one batch. Pending and failed deliveries are not in it.
CREATE INDEX deliveries_final ON deliveries (tenant_id, id, next_attempt_at) WHERE state IN ('delivered', 'dead');
