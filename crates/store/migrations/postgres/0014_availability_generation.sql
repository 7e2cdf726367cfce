-- Availability generations (crates/store/src/availability_generation.rs):
-- one row per resource whose changes move the free starts of addresses,
-- stepped in the transaction of every write to what they depend on
-- (`busy`, work periods, breaks, addresses, address services). A node's
-- cached free starts are served only while the sum of the rows of their
-- address, its practitioner and the tenant's catalogue has not moved:
-- several nodes sharing this database never serve each other's stale
-- availability. Kind 0 (id 0): the tenant's addresses and address services;
-- kind 1: a practitioner; kind 2: an address (as in `busy`).
-- SQLite has no such table: one process writes its file, and that
-- process's in-memory counters see every write.
CREATE TABLE availability_generation (
    tenant_id BIGINT NOT NULL,
    resource_kind BIGINT NOT NULL,
    resource_id BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, resource_kind, resource_id)
);
