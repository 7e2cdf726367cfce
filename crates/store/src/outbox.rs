//! The transactional outbox and id allocation.
//!
//! Ids come from four sequences ([`Seq`]). PostgreSQL draws them from real
//! sequences (`nextval`, never rolled back, no lock held to commit). SQLite
//! keeps a counter row per sequence (`id_sequences`), advanced only by the
//! single writer, which reserves a block of [`ID_BLOCK`] ids with one
//! `UPDATE` and hands them out from memory ([`IdBlocks`]):
//!
//! - a block is reserved in the batch's transaction, outside every
//!   command's savepoint, so no command's rollback can undo it;
//! - a block is kept only once the transaction that reserved it has
//!   committed: when a batch fails, the blocks it reserved are dropped (its
//!   ids were used only by commands of that batch, which rolled back with
//!   it) and the next batch reserves again;
//! - an id handed out is never handed out again by this writer, even when
//!   its command was refused or its batch failed: such ids are gaps;
//! - a crash loses the rest of the committed blocks (gaps, never reuse: the
//!   counter already stands at each block's end).
//!
//! When a command needs more ids than its block has left (or before the
//! first block of a sequence), it draws them one `UPDATE` at a time as
//! before, inside its savepoint; the writer then reserves a block before
//! the next command. Every id is unique across kinds, tenants and restarts,
//! and one writer hands them out in increasing order. Two processes writing
//! one SQLite file (a CLI command beside a running server) reserve disjoint
//! blocks: ids stay unique, though not in commit order across the two.

use crate::{Conn, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::event::NewEvent;
use std::sync::{Arc, Mutex};

/// Id sequences.
#[derive(Debug, Clone, Copy)]
pub enum Seq {
    /// Every numbered entity (patients, appointments, ...).
    Entity,
    Outbox,
    Delivery,
    Message,
}

impl Seq {
    const ALL: [Seq; 4] = [Seq::Entity, Seq::Outbox, Seq::Delivery, Seq::Message];

    fn name(self) -> &'static str {
        match self {
            Seq::Entity => "seq_entity",
            Seq::Outbox => "seq_outbox",
            Seq::Delivery => "seq_delivery",
            Seq::Message => "seq_message",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many ids of one sequence the SQLite writer reserves at once.
pub const ID_BLOCK: i64 = 64;

tokio::task_local! {
    /// The SQLite writer's id blocks, set around each command it runs.
    static BLOCKS: Arc<Mutex<IdBlocks>>;
}

/// The SQLite writer's reserved ids, per sequence (see the module doc).
#[derive(Debug)]
pub(crate) struct IdBlocks {
    seqs: [Block; 4],
}

/// Ids `next..=last` of one sequence, reserved and not yet handed out.
#[derive(Debug, Clone, Copy)]
struct Block {
    next: i64,
    last: i64,
    /// Reserved by the batch now open: dropped if that batch fails.
    pending: bool,
    /// A command found the block empty: reserve one before the next command.
    wanted: bool,
}

impl Default for IdBlocks {
    fn default() -> Self {
        IdBlocks { seqs: [Block { next: 1, last: 0, pending: false, wanted: false }; 4] }
    }
}

impl IdBlocks {
    /// The next id of `seq` from memory, or `None` (and the block is wanted).
    fn take(&mut self, seq: Seq) -> Option<i64> {
        let b = &mut self.seqs[seq.index()];
        if b.next <= b.last {
            b.next += 1;
            Some(b.next - 1)
        } else {
            b.wanted = true;
            None
        }
    }

    /// The sequences to reserve a block of before the next command.
    fn wanted(&self) -> Vec<Seq> {
        Seq::ALL.into_iter().filter(|s| self.seqs[s.index()].wanted).collect()
    }

    /// A block ending at `last` was reserved in the open batch.
    fn reserved(&mut self, seq: Seq, last: i64) {
        self.seqs[seq.index()] = Block { next: last - ID_BLOCK + 1, last, pending: true, wanted: false };
    }

    /// The open batch committed: its blocks are durable.
    pub(crate) fn batch_committed(&mut self) {
        for b in &mut self.seqs {
            b.pending = false;
        }
    }

    /// The open batch rolled back: its reservations are undone, so its
    /// blocks are dropped (and reserved again when next needed).
    pub(crate) fn batch_failed(&mut self) {
        for b in &mut self.seqs {
            if b.pending {
                *b = Block { next: 1, last: 0, pending: false, wanted: true };
            }
        }
    }
}

/// Reserves, inside the writer's open transaction (outside any command's
/// savepoint), a block of every sequence a command found empty.
pub(crate) async fn reserve_blocks(conn: &mut Conn, blocks: &Mutex<IdBlocks>) -> StoreResult<()> {
    let wanted = blocks.lock().unwrap_or_else(|p| p.into_inner()).wanted();
    for seq in wanted {
        let last: i64 =
            sqlx::query_scalar("UPDATE id_sequences SET value = value + $1 WHERE name = $2 RETURNING value")
                .bind(ID_BLOCK)
                .bind(seq.name())
                .fetch_one(&mut *conn)
                .await?;
        blocks.lock().unwrap_or_else(|p| p.into_inner()).reserved(seq, last);
    }
    Ok(())
}

/// Runs `f` (a command on the SQLite writer) with the writer's id blocks.
pub(crate) async fn with_blocks<F: std::future::Future>(blocks: Arc<Mutex<IdBlocks>>, f: F) -> F::Output {
    BLOCKS.scope(blocks, f).await
}

/// Draws the next id of `seq`. PostgreSQL: a real sequence (no lock held to
/// commit). SQLite: from the writer's reserved block when it has one, else
/// the counter row advanced by one (safe: there is one writer).
pub async fn next_id(conn: &mut Conn, seq: Seq) -> StoreResult<i64> {
    if is_postgres(conn) {
        return Ok(sqlx::query_scalar("SELECT nextval($1::regclass)").bind(seq.name()).fetch_one(&mut *conn).await?);
    }
    let from_block = BLOCKS.try_with(|b| b.lock().unwrap_or_else(|p| p.into_inner()).take(seq)).ok().flatten();
    if let Some(id) = from_block {
        return Ok(id);
    }
    Ok(sqlx::query_scalar("UPDATE id_sequences SET value = value + 1 WHERE name = $1 RETURNING value")
        .bind(seq.name())
        .fetch_one(&mut *conn)
        .await?)
}

/// Whether `conn` is a PostgreSQL connection.
pub fn is_postgres(conn: &Conn) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Appends events to the outbox inside the caller's transaction.
pub async fn append(conn: &mut Conn, tenant: TenantId, now: Timestamp, events: &[NewEvent]) -> StoreResult<()> {
    if !events.is_empty() {
        crate::delivery_work::note(tenant);
    }
    let postgres = is_postgres(conn);
    for e in events {
        // PostgreSQL draws the number in the INSERT itself: one round trip.
        let insert = if postgres {
            sqlx::query(
                "INSERT INTO outbox (tenant_id, seq, kind, aggregate, aggregate_id, data, created_at) \
                 VALUES ($1, nextval('seq_outbox'), $2, $3, $4, $5, $6)",
            )
            .bind(tenant.get())
        } else {
            let seq = next_id(conn, Seq::Outbox).await?;
            sqlx::query(
                "INSERT INTO outbox (tenant_id, seq, kind, aggregate, aggregate_id, data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant.get())
            .bind(seq)
        };
        insert
            .bind(e.kind.as_str())
            .bind(e.aggregate)
            .bind(&e.aggregate_id)
            .bind(serde_json::to_string(&e.data)?)
            .bind(secs(now))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// An event as stored in the outbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredEvent {
    pub seq: i64,
    /// What happened; routers match on it, never on its name.
    pub kind: polyclinic_core::event::EventKind,
    pub aggregate: String,
    pub aggregate_id: String,
    pub data: serde_json::Value,
    pub created_at: i64,
}

/// The tenant's events after `after_seq`, oldest first.
pub async fn list(conn: &mut Conn, tenant: TenantId, after_seq: i64, limit: i64) -> StoreResult<Vec<StoredEvent>> {
    let rows = sqlx::query(
        "SELECT seq, kind, aggregate, aggregate_id, data, created_at FROM outbox WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(tenant.get())
    .bind(after_seq)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

impl StoredEvent {
    /// Reads a row of `seq, kind, aggregate, aggregate_id, data, created_at`.
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<StoredEvent> {
        use sqlx::Row;
        Ok(StoredEvent {
            seq: r.try_get("seq")?,
            kind: {
                let name: String = r.try_get("kind")?;
                polyclinic_core::event::EventKind::parse(&name)
                    .ok_or_else(|| crate::StoreError::Corrupt(format!("unknown event kind `{name}`")))?
            },
            aggregate: r.try_get("aggregate")?,
            aggregate_id: r.try_get("aggregate_id")?,
            data: serde_json::from_str(&r.try_get::<String, _>("data")?)?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// An id in event data, written as a string or a number.
pub fn id_in(data: &serde_json::Value, field: &str) -> Option<i64> {
    match data.get(field)? {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}
