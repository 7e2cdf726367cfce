-- The delivery engine claims a batch per target queue: it finds the head of
-- each queue (its first waiting delivery), checks whether the head is due and
-- free, then takes the queue's next waiting deliveries in order. These
-- partial indexes hold only the waiting rows, so that the engine's questions
-- never read the delivered history:
-- - queue order, with what a head's check reads (heads and batches);
-- - the earliest next attempt and the earliest lease, across tenants, for
--   the engine's idle sleep (one index seek each).
CREATE INDEX deliveries_queue_waiting ON deliveries (tenant_id, target_key, id, next_attempt_at, lease_until)
    WHERE state IN ('pending', 'failed');
CREATE INDEX deliveries_next_waiting ON deliveries (next_attempt_at) WHERE state IN ('pending', 'failed');
CREATE INDEX deliveries_lease_waiting ON deliveries (lease_until) WHERE state IN ('pending', 'failed');
