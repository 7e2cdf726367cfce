//! The transactional outbox and id allocation.

use crate::{Conn, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::event::NewEvent;

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
    fn name(self) -> &'static str {
        match self {
            Seq::Entity => "seq_entity",
            Seq::Outbox => "seq_outbox",
            Seq::Delivery => "seq_delivery",
            Seq::Message => "seq_message",
        }
    }
}

/// Draws the next id of `seq`. PostgreSQL: a real sequence (no lock held to
/// commit). SQLite: a counter row, safe because there is one writer.
pub async fn next_id(conn: &mut Conn, seq: Seq) -> StoreResult<i64> {
    let id: i64 = if is_postgres(conn) {
        sqlx::query_scalar("SELECT nextval($1::regclass)").bind(seq.name()).fetch_one(&mut *conn).await?
    } else {
        sqlx::query_scalar("UPDATE id_sequences SET value = value + 1 WHERE name = $1 RETURNING value")
            .bind(seq.name())
            .fetch_one(&mut *conn)
            .await?
    };
    Ok(id)
}

/// Whether `conn` is a PostgreSQL connection.
pub fn is_postgres(conn: &Conn) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Appends events to the outbox inside the caller's transaction.
pub async fn append(conn: &mut Conn, tenant: TenantId, now: Timestamp, events: &[NewEvent]) -> StoreResult<()> {
    for e in events {
        let seq = next_id(conn, Seq::Outbox).await?;
        sqlx::query(
            "INSERT INTO outbox (tenant_id, seq, kind, aggregate, aggregate_id, data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant.get())
        .bind(seq)
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
