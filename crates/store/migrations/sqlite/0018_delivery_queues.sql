-- Each target queue's lower bound: no delivery of the queue below low_id
-- waits. The engine looks for a queue's head (its first waiting delivery)
-- from there, not from the start of the queue: on PostgreSQL every delivery
-- sent leaves dead entries in the partial index of waiting rows
-- (deliveries_queue_waiting) until vacuum, and a seek from the start of a
-- busy queue stepped over thousands of them. Kept by
-- store::deliveries (queued: the row is made; claimed or recorded: raised;
-- a delivery made to wait again: lowered).
CREATE TABLE delivery_queues (
    tenant_id BIGINT NOT NULL,
    target_key TEXT NOT NULL,
    low_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, target_key)
);
INSERT INTO delivery_queues (tenant_id, target_key, low_id)
    SELECT tenant_id, target_key, MIN(id) FROM deliveries WHERE state IN ('pending', 'failed')
    GROUP BY tenant_id, target_key;
