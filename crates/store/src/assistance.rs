//! Assistance requests (Solo "Virtual Nursing and Sitting"): a care
//! location's device asks for a nurse or sitter. A location has at most one
//! open (current) request, enforced by the database: the partial unique
//! index `assistance_requests_current (tenant_id, care_location_id) WHERE
//! open = 1` (migration 0011, both engines).
//!
//! [`open`] is race-free on both engines without a prior read: it inserts
//! with `ON CONFLICT ... DO NOTHING` on that index. When a concurrent or
//! earlier request holds the slot, nothing is written (PostgreSQL waits for
//! the other transaction and then skips the row; SQLite's single writer
//! serialises anyway) and the current request is answered instead. A
//! created request appends its `AssistanceRequested` event in the same
//! transaction.
//!
//! `status`, `open`, `created_at` and `finished_at` are columns (they change
//! or are queried); `doc` is the request as the dialect shows it at its
//! creation (the location, the patient in the bed, ...), sealed under the
//! server key by the caller: it holds patient data, and the store never
//! reads it.

use crate::catalog::{self, Table};
use crate::outbox::append;
use crate::{Conn, StoreResult, secs, ts};
use jiff::Timestamp;
use polyclinic_core::care::CareLocation;
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::{CareLocationId, CoreError, TenantId};
use serde_json::json;
use sqlx::Row;

/// The status of a request just made (Solo's word).
pub const INCOMPLETE: &str = "incomplete";
/// The status of a request cancelled by `DELETE` (Solo's word).
pub const CANCELLED: &str = "cancelled";

/// An assistance request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistanceRequest {
    /// A UUID, lowercase and hyphenated.
    pub id: String,
    pub care_location_id: CareLocationId,
    pub status: String,
    /// Whether it is the location's current request.
    pub open: bool,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The request as shown at its creation, sealed JSON.
    pub sealed_doc: String,
}

/// What [`open`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The request was stored; it is the location's current one.
    Created(AssistanceRequest),
    /// The location already had a current request (this one); nothing was
    /// written.
    Existing(AssistanceRequest),
}

const COLUMNS: &str = "id, care_location_id, status, open, created_at, finished_at, doc";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<AssistanceRequest> {
    Ok(AssistanceRequest {
        id: r.try_get("id")?,
        care_location_id: CareLocationId(r.try_get("care_location_id")?),
        status: r.try_get("status")?,
        open: r.try_get::<i64, _>("open")? != 0,
        created_at: ts(r.try_get("created_at")?)?,
        finished_at: r.try_get::<Option<i64>, _>("finished_at")?.map(ts).transpose()?,
        sealed_doc: r.try_get("doc")?,
    })
}

/// The tenant's care locations (seed data), by id: the set an assistance
/// request's address is matched against.
pub async fn care_locations(conn: &mut Conn, tenant: TenantId) -> StoreResult<Vec<CareLocation>> {
    catalog::list(conn, Table::CareLocations, tenant).await
}

/// The location's current (open) request, if any.
pub async fn current(
    conn: &mut Conn,
    tenant: TenantId,
    location: CareLocationId,
) -> StoreResult<Option<AssistanceRequest>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM assistance_requests WHERE tenant_id = $1 AND care_location_id = $2 AND open = 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.get())
        .bind(location.get())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Makes `request` (open, its id, location, status, creation time and sealed
/// document chosen by the caller) the location's current request, with its
/// `AssistanceRequested` event; or, when the location already has a current
/// request, answers that one and writes nothing.
pub async fn open(conn: &mut Conn, tenant: TenantId, request: &AssistanceRequest) -> StoreResult<Opened> {
    // Twice at most: a current request cancelled between the refused insert
    // and the read that looks for it leaves the slot free for a second try.
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO assistance_requests (tenant_id, id, care_location_id, status, open, created_at, finished_at, doc) \
             VALUES ($1, $2, $3, $4, 1, $5, NULL, $6) \
             ON CONFLICT (tenant_id, care_location_id) WHERE open = 1 DO NOTHING",
        )
        .bind(tenant.get())
        .bind(&request.id)
        .bind(request.care_location_id.get())
        .bind(&request.status)
        .bind(secs(request.created_at))
        .bind(&request.sealed_doc)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return created(conn, tenant, request).await;
        }
        if let Some(existing) = current(conn, tenant, request.care_location_id).await? {
            return Ok(Opened::Existing(existing));
        }
    }
    Err(CoreError::Conflict { entity: "assistance request", id: request.care_location_id.to_string() }.into())
}

/// Appends the event of a request just stored and answers it.
async fn created(conn: &mut Conn, tenant: TenantId, request: &AssistanceRequest) -> StoreResult<Opened> {
    append(
        conn,
        tenant,
        request.created_at,
        &[NewEvent::new(
            EventKind::AssistanceRequested,
            "assistance_request",
            &request.id,
            json!({"request_id": request.id, "care_location_id": request.care_location_id.to_string(),
                   "status": request.status}),
        )],
    )
    .await?;
    let mut created = request.clone();
    created.open = true;
    created.finished_at = None;
    Ok(Opened::Created(created))
}

/// Cancels the location's current request at `now` (status
/// [`CANCELLED`], no longer open); answers it as it now is, or `None` when
/// the location has no current request.
pub async fn cancel(
    conn: &mut Conn,
    tenant: TenantId,
    location: CareLocationId,
    now: Timestamp,
) -> StoreResult<Option<AssistanceRequest>> {
    let Some(mut request) = current(conn, tenant, location).await? else {
        return Ok(None);
    };
    let changed = sqlx::query(
        "UPDATE assistance_requests SET status = $1, open = 0, finished_at = $2 \
         WHERE tenant_id = $3 AND id = $4 AND open = 1",
    )
    .bind(CANCELLED)
    .bind(secs(now))
    .bind(tenant.get())
    .bind(&request.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed == 0 {
        // Cancelled by a concurrent call between the read and the update.
        return Ok(None);
    }
    request.status = CANCELLED.to_owned();
    request.open = false;
    request.finished_at = Some(now);
    Ok(Some(request))
}
