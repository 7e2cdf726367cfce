//! Deliveries: one row per (event, target), sent by the delivery engine.
//!
//! States: `pending` (not yet attempted), `failed` (last attempt failed, a
//! retry is scheduled), `delivered`, `dead` (attempts exhausted). A target's
//! deliveries form a queue (`target_key`) sent in order: a delivery is only
//! due when no earlier delivery of its queue is still pending or failed, so a
//! failing target holds back only itself.
//!
//! Claiming sets a lease (`lease_until`, wall-clock seconds); a worker that
//! dies mid-send leaves a lease that expires, and another worker sends again
//! (at-least-once). PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so
//! several nodes never claim the same row.
//!
//! Deliveries are claimed a batch per target queue ([`claim_batches`]): the
//! run of due, free deliveries that starts at the queue's head. A claimed
//! batch may wait in its worker before its sends start (for a send slot), so
//! the claimer keeps its lease alive while it waits and takes it afresh
//! before a send once a second of it has passed ([`renew_range`]): a full
//! lease covers every send, however long the wait was. The lease value itself identifies the
//! holder: a claim needs the previous lease to have passed and a renewal
//! extends it, so every claim or renewal sets a later value than the one
//! before, and a worker that finds another value than the one it set knows
//! that another worker has taken the delivery meanwhile.

use crate::outbox::{Seq, StoredEvent, is_postgres, next_id};
use crate::rows::{chunked, params};
use crate::{Conn, StoreError, StoreResult, secs, ts};
use jiff::Timestamp;
use polyclinic_core::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

/// How a delivery reaches its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Channel {
    /// An HTTP POST with these headers and body.
    Http { url: String, headers: Vec<(String, String)>, content_type: String, body: String },
    /// An e-mail.
    Email { to: String, subject: String, body: String },
    /// A text message.
    Sms { to: String, body: String },
}

impl Channel {
    /// The address shown as the delivery's target.
    pub fn target(&self) -> String {
        match self {
            Channel::Http { url, .. } => url.clone(),
            Channel::Email { to, .. } => format!("mailto:{to}"),
            Channel::Sms { to, .. } => format!("sms:{to}"),
        }
    }
}

/// Prefix of an HTTP header value stored sealed (a secret such as an API
/// key): the engine opens it with the server key just before sending, so the
/// delivery record never holds the secret in clear.
pub const SEALED_PREFIX: &str = "sealed:";

/// A header value stored sealed under `key` (see [`SEALED_PREFIX`]).
pub fn sealed_header(key: &crate::seal::SecretKey, value: &str) -> String {
    format!("{SEALED_PREFIX}{}", key.seal(value))
}

/// A header value in clear: a sealed one opened under `key`, any other as it is.
pub fn open_header(key: &crate::seal::SecretKey, value: &str) -> Result<String, crate::seal::SealError> {
    match value.strip_prefix(SEALED_PREFIX) {
        Some(sealed) => key.open(sealed),
        None => Ok(value.to_owned()),
    }
}

/// The headers to send: sealed values opened under `key`.
pub fn open_headers(
    key: &crate::seal::SecretKey,
    headers: &[(String, String)],
) -> Result<Vec<(String, String)>, crate::seal::SealError> {
    headers.iter().map(|(k, v)| Ok((k.clone(), open_header(key, v)?))).collect()
}

/// A delivery to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDelivery {
    /// The queue: deliveries with the same key are sent in order.
    pub target_key: String,
    /// What is being delivered (`AppointmentCreated`, `handshake`, ...).
    pub event: String,
    pub channel: Channel,
    /// Retry delays in seconds after each failed attempt; `None` uses the
    /// engine's exponential backoff. The number of attempts is then one more
    /// than the schedule's length.
    pub retry_schedule: Option<Vec<i64>>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub tenant_id: TenantId,
    pub id: i64,
    pub event_seq: i64,
    pub target_key: String,
    pub event: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub spec: NewDelivery,
}

const COLUMNS: &str = "tenant_id, id, event_seq, target_key, event, state, attempts, next_attempt_at, doc";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        tenant_id: TenantId(r.try_get("tenant_id")?),
        id: r.try_get("id")?,
        event_seq: r.try_get("event_seq")?,
        target_key: r.try_get("target_key")?,
        event: r.try_get("event")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: ts(r.try_get("next_attempt_at")?)?,
        spec: serde_json::from_str(&r.try_get::<String, _>("doc")?)?,
    })
}

/// Queues a delivery, due at `now`; answers its id.
pub async fn enqueue(
    conn: &mut Conn,
    tenant: TenantId,
    event_seq: i64,
    d: &NewDelivery,
    now: Timestamp,
) -> StoreResult<i64> {
    let ids = enqueue_many(conn, tenant, &[(event_seq, d.clone())], now).await?;
    ids.first().copied().ok_or_else(|| StoreError::Corrupt("a queued delivery drew no id".into()))
}

/// Queues deliveries, each with the event that caused it (0 for none), due
/// at `now`, in order (their ids ascend in the order given): in multi-row
/// inserts ([`crate::rows`]). Answers their ids.
pub async fn enqueue_many(
    conn: &mut Conn,
    tenant: TenantId,
    queued: &[(i64, NewDelivery)],
    now: Timestamp,
) -> StoreResult<Vec<i64>> {
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    crate::delivery_work::note(tenant);
    let postgres = is_postgres(conn);
    lock_tenant_for_enqueue(conn, tenant).await?;
    // The ids, in ascending order: on PostgreSQL one round trip for all.
    let all: Vec<i64> = if postgres {
        let mut drawn: Vec<i64> = sqlx::query_scalar("SELECT nextval('seq_delivery') FROM generate_series(1, $1)")
            .bind(i64::try_from(queued.len()).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
        drawn.sort_unstable();
        drawn
    } else {
        let mut drawn = Vec::with_capacity(queued.len());
        for _ in queued {
            drawn.push(next_id(conn, Seq::Delivery).await?);
        }
        drawn
    };
    if all.len() != queued.len() {
        return Err(StoreError::Corrupt("the delivery sequence drew too few ids".into()));
    }
    let mut drawn = all.as_slice();
    for chunk in chunked(queued) {
        let (ids, rest) = drawn.split_at(chunk.len());
        drawn = rest;
        // Seven parameters a row, then `now` once for every row.
        let now_param = params(chunk.len() * 7 + 1, 1);
        let rows = (0..chunk.len())
            .map(|i| format!("({}, 'pending', 0, {now_param}, {now_param}, ${})", params(i * 7 + 1, 6), i * 7 + 7))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO deliveries (tenant_id, id, event_seq, target, target_key, event, state, attempts, next_attempt_at, created_at, doc) \
             VALUES {rows}"
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql));
        for ((seq, d), id) in chunk.iter().zip(ids) {
            insert = insert
                .bind(tenant.get())
                .bind(*id)
                .bind(*seq)
                .bind(d.channel.target())
                .bind(d.target_key.clone())
                .bind(d.event.clone())
                .bind(serde_json::to_string(d)?);
        }
        insert.bind(secs(now)).execute(&mut *conn).await?;
    }
    // A queue seen for the first time starts at its first delivery; a known
    // one keeps its bound, below every id drawn now (see
    // [`lock_tenant_for_enqueue`]).
    // The known queues are read first (a read never waits): an insert that
    // meets an existing row would wait for whoever is moving its bound.
    let known: Vec<String> = sqlx::query_scalar("SELECT target_key FROM delivery_queues WHERE tenant_id = $1")
        .bind(tenant.get())
        .fetch_all(&mut *conn)
        .await?;
    let mut firsts: Vec<(&str, i64)> = Vec::new();
    for ((_, d), id) in queued.iter().zip(&all) {
        if !known.contains(&d.target_key) && !firsts.iter().any(|(k, _)| *k == d.target_key) {
            firsts.push((&d.target_key, *id));
        }
    }
    for chunk in chunked(&firsts) {
        let rows = (0..chunk.len()).map(|i| format!("($1, {})", params(i * 2 + 2, 2))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO delivery_queues (tenant_id, target_key, low_id) VALUES {rows} \
             ON CONFLICT (tenant_id, target_key) DO NOTHING"
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql)).bind(tenant.get());
        for (key, id) in chunk {
            insert = insert.bind(*key).bind(*id);
        }
        insert.execute(&mut *conn).await?;
    }
    Ok(all)
}

/// Takes the tenant's right to queue deliveries until the transaction ends
/// (PostgreSQL: the tenant's row, `FOR UPDATE`; SQLite has one writer).
/// Every transaction that queues deliveries takes it ([`enqueue_many`] does,
/// and a transaction that locks other rows first takes it at its start, so
/// that two never wait on each other): a tenant's delivery ids are then
/// drawn and committed in one order, so no delivery ever appears below a
/// head the engine has seen, and a queue's bound ([`heads`]) may rise to
/// it.
pub async fn lock_tenant_for_enqueue(conn: &mut Conn, tenant: TenantId) -> StoreResult<()> {
    if is_postgres(conn) {
        sqlx::query("SELECT tenant_id FROM tenants WHERE tenant_id = $1 FOR UPDATE")
            .bind(tenant.get())
            .fetch_optional(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Leases a delivery to the caller until `until` (wall-clock seconds), so no
/// worker claims it meanwhile (a delivery sent at once by its creator).
pub async fn hold(conn: &mut Conn, tenant: TenantId, id: i64, until: i64) -> StoreResult<()> {
    sqlx::query("UPDATE deliveries SET lease_until = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(until)
        .bind(tenant.get())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The tenants with work for the engine: events not yet fanned out, or
/// deliveries waiting (whether a queue's head is due is then [`has_due`]'s
/// question). Each tenant costs two index probes (into the partial indexes
/// of waiting rows), however long its history and however many deliveries
/// wait behind a failing target.
pub async fn tenants_with_work(conn: &mut Conn) -> StoreResult<Vec<TenantId>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT t.tenant_id FROM tenants t \
         WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = t.tenant_id AND d.state IN ('pending', 'failed')) \
            OR EXISTS (SELECT 1 FROM outbox o WHERE o.tenant_id = t.tenant_id AND o.dispatched = 0) \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

/// The head of a target queue: its first waiting delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub target_key: String,
    pub id: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    /// The queue's bound when the head was found (no delivery of the queue
    /// below it waits).
    pub low: i64,
}

impl Head {
    /// Due by the domain clock and not leased by the wall clock.
    fn ready(&self, now_s: i64, wall_now: i64) -> bool {
        self.next_attempt_at <= now_s && self.lease_until.is_none_or(|l| l <= wall_now)
    }
}

/// The first waiting delivery of each of a tenant's queues ([`heads`]).
const HEADS: &str = "SELECT h.target_key, d.id, d.next_attempt_at, d.lease_until, h.low_id FROM \
     (SELECT q.target_key, q.low_id, (SELECT w.id FROM deliveries w WHERE w.tenant_id = q.tenant_id \
        AND w.target_key = q.target_key AND w.state IN ('pending', 'failed') AND w.id >= q.low_id \
        ORDER BY w.id LIMIT 1) AS head FROM delivery_queues q WHERE q.tenant_id = $1) h \
     JOIN deliveries d ON d.tenant_id = $1 AND d.id = h.head ORDER BY d.id";

/// The heads of the tenant's target queues, in id order: the first waiting
/// delivery of each queue, in one statement. Each queue is one row of
/// `delivery_queues` (migration 0018) with its bound: no delivery of the
/// queue below it waits, so the head is one seek from the bound in the
/// partial index of waiting rows. The cost grows with the number of queues,
/// never with the deliveries waiting in them, nor with the delivered ones
/// whose index entries PostgreSQL keeps until vacuum (a seek from the start
/// of a busy queue stepped over thousands).
///
/// The bound rises with the queue: to each head a claim finds
/// ([`claim_batches`]), and past each batch once recorded
/// ([`advance_queue`]). It is raised only from the value it was read at,
/// so a delivery made to wait again meanwhile (which lowers it,
/// [`requeue`]) is never skipped.
pub async fn heads(conn: &mut Conn, tenant: TenantId) -> StoreResult<Vec<Head>> {
    let rows = sqlx::query(HEADS).bind(tenant.get()).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(Head {
                target_key: r.try_get(0)?,
                id: r.try_get(1)?,
                next_attempt_at: r.try_get(2)?,
                lease_until: r.try_get(3)?,
                low: r.try_get(4)?,
            })
        })
        .collect()
}

/// Raises the bound of the tenant's queue `target_key` from `from` to `to`
/// (no delivery of the queue below `to` waits), unless it moved since it
/// was read at `from`.
async fn raise_bound(conn: &mut Conn, tenant: TenantId, target_key: &str, from: i64, to: i64) -> StoreResult<()> {
    if to > from {
        sqlx::query("UPDATE delivery_queues SET low_id = $1 WHERE tenant_id = $2 AND target_key = $3 AND low_id = $4")
            .bind(to)
            .bind(tenant.get())
            .bind(target_key)
            .bind(from)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// After a batch claimed at `head` is recorded, with the `outcomes` of
/// what was sent and the rest let go from `unsent_from`: the queue's first
/// delivery that may still wait is the first that failed, else the first
/// not sent, else the one after the last sent, so its bound rises there,
/// unless it moved since the claim.
pub async fn advance_queue(
    conn: &mut Conn,
    tenant: TenantId,
    target_key: &str,
    head: i64,
    outcomes: &[Outcome<'_>],
    unsent_from: Option<i64>,
) -> StoreResult<()> {
    let failed = outcomes.iter().find(|o| o.state() == "failed").map(|o| o.id);
    match failed.or(unsent_from).or_else(|| outcomes.last().map(|o| o.id + 1)) {
        Some(next) => raise_bound(conn, tenant, target_key, head, next).await,
        None => Ok(()),
    }
}

/// Sets the bound of the tenant's queue `target_key` to its first waiting
/// delivery: after deliveries of it were made to wait again (their ids may
/// lie below the bound).
pub async fn requeue(conn: &mut Conn, tenant: TenantId, target_key: &str) -> StoreResult<()> {
    crate::delivery_work::note(tenant);
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(id) FROM deliveries WHERE tenant_id = $1 AND target_key = $2 AND state IN ('pending', 'failed')",
    )
    .bind(tenant.get())
    .bind(target_key)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(first) = first {
        sqlx::query(
            "INSERT INTO delivery_queues (tenant_id, target_key, low_id) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, target_key) DO UPDATE SET low_id = excluded.low_id \
             WHERE delivery_queues.low_id > excluded.low_id",
        )
        .bind(tenant.get())
        .bind(target_key)
        .bind(first)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// When the next waiting delivery falls due: the earliest next attempt (on
/// the injected clock) and the earliest lease of a waiting delivery to run
/// out (wall clock, a crashed worker's), each if any.
pub async fn next_due(conn: &mut Conn, wall_now: i64) -> StoreResult<(Option<i64>, Option<i64>)> {
    let attempt: Option<i64> =
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM deliveries WHERE state IN ('pending', 'failed')")
            .fetch_one(&mut *conn)
            .await?;
    let lease: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(lease_until) FROM deliveries WHERE state IN ('pending', 'failed') AND lease_until > $1",
    )
    .bind(wall_now)
    .fetch_one(&mut *conn)
    .await?;
    Ok((attempt, lease))
}

/// Locks the tenant for dispatching (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
/// one node dispatches a tenant's events at a time and keeps their order);
/// `false` when another node holds it.
pub async fn lock_tenant_for_dispatch(conn: &mut Conn, tenant: TenantId) -> StoreResult<bool> {
    if !is_postgres(conn) {
        return Ok(true);
    }
    let row: Option<i64> =
        sqlx::query_scalar("SELECT tenant_id FROM tenants WHERE tenant_id = $1 FOR UPDATE SKIP LOCKED")
            .bind(tenant.get())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.is_some())
}

/// The tenant's events not yet fanned out, oldest first.
pub async fn undispatched(conn: &mut Conn, tenant: TenantId, limit: i64) -> StoreResult<Vec<StoredEvent>> {
    let rows = sqlx::query(
        "SELECT seq, kind, aggregate, aggregate_id, data, created_at FROM outbox \
         WHERE tenant_id = $1 AND dispatched = 0 ORDER BY seq LIMIT $2",
    )
    .bind(tenant.get())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// Whether the tenant has events not yet fanned out (a cheap read before the
/// dispatch transaction).
pub async fn has_undispatched(conn: &mut Conn, tenant: TenantId) -> StoreResult<bool> {
    let row: Option<i64> = sqlx::query_scalar("SELECT seq FROM outbox WHERE tenant_id = $1 AND dispatched = 0 LIMIT 1")
        .bind(tenant.get())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Whether one of the tenant's target queues has a head (its first waiting
/// delivery) that is due and free: a cheap read ([`heads`]) before the
/// claiming transaction. Deliveries waiting behind a head in flight or in
/// retry do not count.
pub async fn has_due(conn: &mut Conn, tenant: TenantId, now: Timestamp, wall_now: i64) -> StoreResult<bool> {
    let now_s = secs(now);
    Ok(heads(conn, tenant).await?.iter().any(|h| h.ready(now_s, wall_now)))
}

/// Marks events fanned out.
pub async fn mark_dispatched(conn: &mut Conn, tenant: TenantId, seqs: &[i64]) -> StoreResult<()> {
    for chunk in chunked(seqs) {
        let sql =
            format!("UPDATE outbox SET dispatched = 1 WHERE tenant_id = $1 AND seq IN ({})", params(2, chunk.len()));
        let mut update = sqlx::query(AssertSqlSafe(sql)).bind(tenant.get());
        for seq in chunk {
            update = update.bind(*seq);
        }
        update.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The batch a worker claimed from one target queue: its deliveries in queue
/// order, leased until `held` (wall-clock seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub tenant_id: TenantId,
    pub target_key: String,
    pub held: i64,
    pub deliveries: Vec<Delivery>,
}

impl Batch {
    /// The first and last delivery ids (the batch is a run of its queue's
    /// waiting deliveries between them).
    pub fn range(&self) -> (i64, i64) {
        (self.deliveries.first().map_or(0, |d| d.id), self.deliveries.last().map_or(-1, |d| d.id))
    }
}

/// Claims, for each of the tenant's target queues whose head (first waiting
/// delivery) is due by the domain clock (`now`) and free (by the wall clock,
/// `wall_now`), the run of up to `per_target` waiting deliveries that starts
/// at the head and are all due and free, in queue order: one batch per
/// target, leased until `wall_now + lease_seconds` (see [`claim_run`]).
/// The bound of each queue rises to its head.
pub async fn claim_batches(
    conn: &mut Conn,
    tenant: TenantId,
    now: Timestamp,
    wall_now: i64,
    lease_seconds: i64,
    per_target: i64,
) -> StoreResult<Vec<Batch>> {
    let now_s = secs(now);
    let held = wall_now + lease_seconds;
    let mut batches = Vec::new();
    let heads = heads(conn, tenant).await?;
    for h in &heads {
        raise_bound(conn, tenant, &h.target_key, h.low, h.id).await?;
    }
    for h in heads.into_iter().filter(|h| h.ready(now_s, wall_now)) {
        let run = Run { tenant, now_s, wall_now, held, per_target };
        if let Some(batch) = claim_run(conn, &run, h.target_key, h.id).await? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// Claims the next batch of one queue, as [`claim_batches`] does for each:
/// the run of due and free deliveries from the queue's head, found from its
/// bound. A worker that has just recorded a batch of the queue claims the
/// next one so, in the same transaction, rather than wait for the engine's
/// next pass.
pub async fn claim_queue(
    conn: &mut Conn,
    tenant: TenantId,
    target_key: &str,
    now: Timestamp,
    wall_now: i64,
    lease_seconds: i64,
    per_target: i64,
) -> StoreResult<Option<Batch>> {
    let low: Option<i64> =
        sqlx::query_scalar("SELECT low_id FROM delivery_queues WHERE tenant_id = $1 AND target_key = $2")
            .bind(tenant.get())
            .bind(target_key)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(low) = low else { return Ok(None) };
    let run = Run { tenant, now_s: secs(now), wall_now, held: wall_now + lease_seconds, per_target };
    let batch = claim_run(conn, &run, target_key.to_owned(), low).await?;
    if let Some(b) = &batch {
        raise_bound(conn, tenant, target_key, low, b.range().0).await?;
    }
    Ok(batch)
}

/// What a claim takes: the tenant's deliveries due by `now_s` (domain
/// clock) and free by `wall_now`, leased until `held`, at most `per_target`
/// a queue.
struct Run {
    tenant: TenantId,
    now_s: i64,
    wall_now: i64,
    held: i64,
    per_target: i64,
}

/// Claims the run of the queue `key` that starts at its first waiting
/// delivery from id `from` on (the queue's head: nothing below `from`
/// waits), if that one is due and free.
///
/// A queue belongs to whoever holds its head: on PostgreSQL the head is
/// locked (`FOR UPDATE SKIP LOCKED`) and its lease checked again before the
/// batch is leased, so two nodes never claim from one queue at once and the
/// queue's order is kept. The batch itself is leased in one `UPDATE ...
/// RETURNING` over the run's id range.
async fn claim_run(conn: &mut Conn, c: &Run, key: String, from: i64) -> StoreResult<Option<Batch>> {
    let (tenant, now_s, wall_now, held) = (c.tenant, c.now_s, c.wall_now, c.held);
    // The queue's first waiting deliveries: the run that is due and free.
    let queue = sqlx::query(
        "SELECT id, next_attempt_at, lease_until FROM deliveries WHERE tenant_id = $1 AND target_key = $2 \
         AND state IN ('pending', 'failed') AND id >= $3 ORDER BY id LIMIT $4",
    )
    .bind(tenant.get())
    .bind(&key)
    .bind(from)
    .bind(c.per_target.max(1))
    .fetch_all(&mut *conn)
    .await?;
    let mut run = Vec::new();
    for r in &queue {
        let (id, at, lease): (i64, i64, Option<i64>) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        if at > now_s || lease.is_some_and(|l| l > wall_now) {
            break;
        }
        run.push(id);
    }
    let Some(&head) = run.first() else { return Ok(None) };
    if is_postgres(conn) {
        let mine: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM deliveries WHERE tenant_id = $1 AND id = $2 AND state IN ('pending', 'failed') \
             AND (lease_until IS NULL OR lease_until <= $3) FOR UPDATE SKIP LOCKED",
        )
        .bind(tenant.get())
        .bind(head)
        .bind(wall_now)
        .fetch_optional(&mut *conn)
        .await?;
        if mine.is_none() {
            return Ok(None);
        }
    }
    let last = *run.last().unwrap_or(&head);
    let sql = format!(
        "UPDATE deliveries SET lease_until = $1 WHERE tenant_id = $2 AND target_key = $3 AND id >= $4 AND id <= $5 \
         AND state IN ('pending', 'failed') AND next_attempt_at <= $6 AND (lease_until IS NULL OR lease_until <= $7) \
         RETURNING {COLUMNS}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(held)
        .bind(tenant.get())
        .bind(&key)
        .bind(head)
        .bind(last)
        .bind(now_s)
        .bind(wall_now)
        .fetch_all(&mut *conn)
        .await?;
    let mut claimed = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    claimed.sort_by_key(|d| d.id);
    // Keep only the unbroken run from the head (a row enqueued or taken
    // meanwhile breaks it); what lies after a break is let go again.
    let kept = claimed.iter().zip(&run).take_while(|(d, id)| d.id == **id).count();
    if kept < claimed.len() {
        let from = claimed[kept].id;
        release(conn, tenant, &key, from, last, held).await?;
        claimed.truncate(kept);
    }
    Ok((!claimed.is_empty()).then_some(Batch { tenant_id: tenant, target_key: key, held, deliveries: claimed }))
}

/// Extends the lease a worker holds (`held`) on the waiting deliveries of
/// `target_key` between `from` and `to` to `until`; answers how many it
/// still held. The worker must send only what it still holds.
pub async fn renew_range(
    conn: &mut Conn,
    tenant: TenantId,
    target_key: &str,
    (from, to): (i64, i64),
    held: i64,
    until: i64,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE deliveries SET lease_until = $1 WHERE tenant_id = $2 AND target_key = $3 AND id >= $4 AND id <= $5 \
         AND lease_until = $6 AND state IN ('pending', 'failed')",
    )
    .bind(until)
    .bind(tenant.get())
    .bind(target_key)
    .bind(from)
    .bind(to)
    .bind(held)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Lets go of the waiting deliveries of `target_key` between `from` and `to`
/// that the caller holds (`held`) and did not send (a batch stopped at a
/// failed attempt): they are claimed again, in order, with their queue.
pub async fn release(
    conn: &mut Conn,
    tenant: TenantId,
    target_key: &str,
    from: i64,
    to: i64,
    held: i64,
) -> StoreResult<()> {
    crate::delivery_work::note(tenant);
    sqlx::query(
        "UPDATE deliveries SET lease_until = NULL WHERE tenant_id = $1 AND target_key = $2 AND id >= $3 AND id <= $4 \
         AND lease_until = $5 AND state IN ('pending', 'failed')",
    )
    .bind(tenant.get())
    .bind(target_key)
    .bind(from)
    .bind(to)
    .bind(held)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// HTTP status, when the target answered.
    pub status: Option<i64>,
    /// Why the attempt failed (connection refused, timeout, non-2xx).
    pub error: Option<String>,
    pub duration_ms: i64,
    pub ok: bool,
}

/// One attempt to record: the delivery, the attempt's outcome, when it was
/// made, and `retry_at`, when to try again after a failure (`None` when
/// attempts are exhausted: the delivery goes `dead`).
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub id: i64,
    pub attempt: &'a Attempt,
    pub at: Timestamp,
    pub retry_at: Option<Timestamp>,
}

impl Outcome<'_> {
    /// The delivery's state once this attempt is recorded.
    pub fn state(&self) -> &'static str {
        match (self.attempt.ok, self.retry_at) {
            (true, _) => "delivered",
            (false, Some(_)) => "failed",
            (false, None) => "dead",
        }
    }
}

/// Records attempts, in order; answers each delivery's new state. A batch
/// costs a handful of statements however long it is: the attempt rows in
/// multi-row inserts (each numbered after its delivery's recorded
/// attempts), the delivered ones settled together (one `UPDATE` per run of
/// equal status and second), and a failed or dead one alone.
pub async fn record_attempts(
    conn: &mut Conn,
    tenant: TenantId,
    outcomes: &[Outcome<'_>],
) -> StoreResult<Vec<&'static str>> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    // The queue's next batch may now be due.
    crate::delivery_work::note(tenant);
    for chunk in chunked(outcomes) {
        let rows = (0..chunk.len())
            .map(|i| {
                let p = |k: usize| format!("${}", i * 6 + k + 1);
                format!(
                    "({t}, {id}, (SELECT attempts + 1 FROM deliveries WHERE tenant_id = {t} AND id = {id}), {}, {}, {}, {})",
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    t = p(0),
                    id = p(1),
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, at, status, error, duration_ms) VALUES {rows}"
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql));
        for o in chunk {
            insert = insert
                .bind(tenant.get())
                .bind(o.id)
                .bind(secs(o.at))
                .bind(o.attempt.status)
                .bind(o.attempt.error.clone())
                .bind(o.attempt.duration_ms);
        }
        insert.execute(&mut *conn).await?;
    }
    let mut rest = outcomes;
    while let Some(first) = rest.first() {
        if !first.attempt.ok {
            settle_one(conn, tenant, first).await?;
            rest = &rest[1..];
            continue;
        }
        // A run of deliveries that went through with one status in one second.
        let key = (first.attempt.status, secs(first.at));
        let run = rest.iter().take_while(|o| o.attempt.ok && (o.attempt.status, secs(o.at)) == key).count();
        for chunk in chunked(&rest[..run]) {
            let sql = format!(
                "UPDATE deliveries SET attempts = attempts + 1, state = 'delivered', last_status = $1, last_error = NULL, \
                 next_attempt_at = $2, lease_until = NULL, delivered_at = $2 WHERE tenant_id = $3 AND id IN ({})",
                params(4, chunk.len())
            );
            let mut update = sqlx::query(AssertSqlSafe(sql)).bind(key.0).bind(key.1).bind(tenant.get());
            for o in chunk {
                update = update.bind(o.id);
            }
            let done = update.execute(&mut *conn).await?;
            if done.rows_affected() != chunk.len() as u64 {
                return Err(StoreError::Corrupt("a delivery being recorded vanished".into()));
            }
        }
        rest = &rest[run..];
    }
    Ok(outcomes.iter().map(Outcome::state).collect())
}

/// Settles a failed or dead attempt's delivery.
async fn settle_one(conn: &mut Conn, tenant: TenantId, o: &Outcome<'_>) -> StoreResult<()> {
    let next = o.retry_at.unwrap_or(o.at);
    let done = sqlx::query(
        "UPDATE deliveries SET attempts = attempts + 1, state = $1, last_status = $2, last_error = $3, next_attempt_at = $4, \
         lease_until = NULL, delivered_at = NULL WHERE tenant_id = $5 AND id = $6",
    )
    .bind(o.state())
    .bind(o.attempt.status)
    .bind(o.attempt.error.clone())
    .bind(secs(next))
    .bind(tenant.get())
    .bind(o.id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!("delivery {} vanished", o.id)));
    }
    Ok(())
}

/// One recorded attempt, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at: String,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// The attempts of a delivery, in order.
pub async fn attempts(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Vec<AttemptRow>> {
    let rows = sqlx::query(
        "SELECT attempt, at, status, error, duration_ms FROM delivery_attempts WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY attempt",
    )
    .bind(tenant.get())
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AttemptRow {
                attempt: r.try_get("attempt")?,
                at: ts(r.try_get("at")?)?.to_string(),
                status: r.try_get("status")?,
                error: r.try_get("error")?,
                duration_ms: r.try_get("duration_ms")?,
            })
        })
        .collect()
}

/// Reads one delivery.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Option<Delivery>> {
    let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2");
    let row = sqlx::query(AssertSqlSafe(sql)).bind(tenant.get()).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};

    async fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join("polyclinic-store-tests");
        std::fs::create_dir_all(&dir).expect("a directory for test databases");
        let path = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
        let store = Store::open(StoreOptions::new(format!("sqlite://{}", path.display()))).await.expect("a store");
        (store, path)
    }

    fn hook(target: usize) -> NewDelivery {
        NewDelivery {
            target_key: format!("test:{target}"),
            event: "AppointmentCreated".into(),
            channel: Channel::Http {
                url: format!("http://127.0.0.1:9/{target}"),
                headers: Vec::new(),
                content_type: "application/json".into(),
                body: "{}".into(),
            },
            retry_schedule: None,
        }
    }

    /// Many deliveries in few statements: ids ascend in the order given,
    /// attempts are numbered per delivery, and the walk over the queues
    /// reads only waiting rows whatever the history (the plan is the bundled
    /// SQLite's own).
    #[tokio::test]
    async fn batches_are_queued_recorded_and_walked_through_waiting_rows() {
        let (store, path) = store().await;
        let tenant = TenantId(7);
        let t0 = Timestamp::from_second(1_800_000_000).expect("an instant");
        let queued: Vec<(i64, NewDelivery)> =
            (0..150).map(|i| (i, hook(usize::try_from(i % 3).unwrap_or(0)))).collect();
        let ids = store
            .write(move |c| {
                Box::pin(async move {
                    enqueue_many(c, tenant, &queued, t0).await?;
                    let rows = sqlx::query("SELECT id, event_seq FROM deliveries WHERE tenant_id = $1 ORDER BY id")
                        .bind(tenant.get())
                        .fetch_all(&mut *c)
                        .await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
                        .collect::<StoreResult<Vec<_>>>()
                })
            })
            .await
            .expect("queued");
        assert_eq!(ids.len(), 150);
        assert_eq!(
            ids.iter().map(|r| r.1).collect::<Vec<_>>(),
            (0..150).collect::<Vec<_>>(),
            "ids follow the order given"
        );

        // Target 0's deliveries all go through but the last, which fails;
        // the failed one then goes through on its second attempt.
        let ok = Attempt { status: Some(200), error: None, duration_ms: 1, ok: true };
        let bad =
            Attempt { status: Some(503), error: Some("the target answered 503".into()), duration_ms: 1, ok: false };
        let target0: Vec<i64> = ids.iter().filter(|r| r.1 % 3 == 0).map(|r| r.0).collect();
        let last = *target0.last().expect("deliveries of target 0");
        let (ok2, bad2) = (ok.clone(), bad.clone());
        let states = store
            .write(move |c| {
                Box::pin(async move {
                    let mut outcomes: Vec<Outcome> =
                        target0.iter().map(|id| Outcome { id: *id, attempt: &ok2, at: t0, retry_at: None }).collect();
                    let n = outcomes.len();
                    outcomes[n - 1] = Outcome { id: last, attempt: &bad2, at: t0, retry_at: Some(t0) };
                    let first = record_attempts(c, tenant, &outcomes).await?;
                    let again = [Outcome { id: last, attempt: &ok2, at: t0, retry_at: None }];
                    let second = record_attempts(c, tenant, &again).await?;
                    for seq in 0..80 {
                        sqlx::query(
                            "INSERT INTO outbox (tenant_id, seq, kind, aggregate, aggregate_id, data, created_at) \
                             VALUES ($1, $2, 'AppointmentCreated', 'Appointment', '1', '{}', 0)",
                        )
                        .bind(tenant.get())
                        .bind(seq)
                        .execute(&mut *c)
                        .await?;
                    }
                    mark_dispatched(c, tenant, &(0..70).collect::<Vec<_>>()).await?;
                    Ok((first, second))
                })
            })
            .await
            .expect("recorded");
        assert_eq!(states.0.len(), 50);
        assert!(states.0[..49].iter().all(|s| *s == "delivered"), "{:?}", states.0);
        assert_eq!((states.0[49], states.1[0]), ("failed", "delivered"));
        let numbers =
            store.read(move |c| Box::pin(async move { attempts(c, tenant, last).await })).await.expect("attempts");
        assert_eq!(
            numbers.iter().map(|a| (a.attempt, a.status)).collect::<Vec<_>>(),
            vec![(1, Some(503)), (2, Some(200))]
        );
        let settled = store.read(move |c| Box::pin(async move { get(c, tenant, last).await })).await.expect("read");
        let settled = settled.expect("the delivery");
        assert_eq!((settled.state.as_str(), settled.attempts), ("delivered", 2));

        // The walk finds the heads of the two queues still waiting, through
        // the index of waiting rows.
        let (heads, plan) = store
            .read(move |c| {
                Box::pin(async move {
                    let plan: Vec<String> = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {HEADS}")))
                        .bind(tenant.get())
                        .fetch_all(&mut *c)
                        .await?
                        .iter()
                        .map(|r| r.try_get::<String, _>(3))
                        .collect::<Result<_, _>>()?;
                    Ok((heads(c, tenant).await?, plan))
                })
            })
            .await
            .expect("heads");
        assert_eq!(heads.iter().map(|h| h.target_key.as_str()).collect::<Vec<_>>(), vec!["test:1", "test:2"]);
        assert!(plan.iter().any(|p| p.contains("deliveries_queue_waiting")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.starts_with("SCAN") && !p.contains("delivery_queues")), "{plan:?}");
        let dispatched: Vec<i64> = store
            .read(move |c| {
                Box::pin(async move {
                    Ok(sqlx::query_scalar("SELECT seq FROM outbox WHERE dispatched = 1 ORDER BY seq")
                        .fetch_all(&mut *c)
                        .await?)
                })
            })
            .await
            .expect("the marked events");
        assert_eq!(dispatched, (0..70).collect::<Vec<_>>(), "64 + 4 + 1 + 1 events marked, the last 10 not");
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }

    /// A queue's bound follows its head: raised by a claim and past a
    /// recorded batch, lowered when dead deliveries are made to wait again;
    /// the heads are found from it.
    #[tokio::test]
    async fn a_queue_bound_rises_with_its_head_and_falls_back_to_what_waits_again() {
        let (store, path) = store().await;
        let tenant = TenantId(3);
        let t0 = Timestamp::from_second(1_800_000_000).expect("an instant");
        async fn bound(store: &Store, tenant: TenantId) -> i64 {
            store
                .read(move |c| {
                    Box::pin(async move {
                        Ok(sqlx::query_scalar::<_, i64>(
                            "SELECT low_id FROM delivery_queues WHERE tenant_id = $1 AND target_key = 'test:0'",
                        )
                        .bind(tenant.get())
                        .fetch_one(&mut *c)
                        .await?)
                    })
                })
                .await
                .expect("a bound")
        }
        let queued: Vec<(i64, NewDelivery)> = (0..10).map(|i| (i, hook(0))).collect();
        let ids = store
            .write(move |c| Box::pin(async move { enqueue_many(c, tenant, &queued, t0).await }))
            .await
            .expect("queued");
        assert_eq!(bound(&store, tenant).await, ids[0], "a new queue starts at its first delivery");

        // A claim of four, recorded: the bound moves past them.
        let ok = Attempt { status: Some(200), error: None, duration_ms: 1, ok: true };
        let batch = store
            .write(move |c| Box::pin(async move { claim_batches(c, tenant, t0, 0, 60, 4).await }))
            .await
            .expect("claimed");
        let claimed: Vec<i64> = batch[0].deliveries.iter().map(|d| d.id).collect();
        assert_eq!(claimed, ids[..4]);
        let head = ids[0];
        store
            .write(move |c| {
                Box::pin(async move {
                    let outcomes: Vec<Outcome> =
                        claimed.iter().map(|id| Outcome { id: *id, attempt: &ok, at: t0, retry_at: None }).collect();
                    record_attempts(c, tenant, &outcomes).await?;
                    advance_queue(c, tenant, "test:0", head, &outcomes, None).await
                })
            })
            .await
            .expect("recorded");
        assert_eq!(bound(&store, tenant).await, ids[4]);
        let found = store.read(move |c| Box::pin(async move { heads(c, tenant).await })).await.expect("heads");
        assert_eq!(found.iter().map(|h| (h.id, h.low)).collect::<Vec<_>>(), vec![(ids[4], ids[4])]);

        // A stale advance (from a bound that has moved) changes nothing.
        let (first, second, last) = (ids[0], ids[1], ids[9]);
        store
            .write(move |c| {
                Box::pin(async move {
                    let ok = Attempt { status: Some(200), error: None, duration_ms: 1, ok: true };
                    let sent = [Outcome { id: last, attempt: &ok, at: t0, retry_at: None }];
                    advance_queue(c, tenant, "test:0", head, &sent, None).await
                })
            })
            .await
            .expect("advanced");
        assert_eq!(bound(&store, tenant).await, ids[4]);

        // The first two were dead; made to wait again, the bound goes back.
        store
            .write(move |c| {
                Box::pin(async move {
                    sqlx::query("UPDATE deliveries SET state = 'dead' WHERE tenant_id = $1 AND id IN ($2, $3)")
                        .bind(tenant.get())
                        .bind(first)
                        .bind(second)
                        .execute(&mut *c)
                        .await?;
                    sqlx::query("UPDATE deliveries SET state = 'pending' WHERE tenant_id = $1 AND state = 'dead'")
                        .bind(tenant.get())
                        .execute(&mut *c)
                        .await?;
                    requeue(c, tenant, "test:0").await
                })
            })
            .await
            .expect("requeued");
        assert_eq!(bound(&store, tenant).await, ids[0]);
        let found = store.read(move |c| Box::pin(async move { heads(c, tenant).await })).await.expect("heads");
        assert_eq!(found.iter().map(|h| h.id).collect::<Vec<_>>(), vec![ids[0]]);
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
