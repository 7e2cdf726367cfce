//! Solo encounter reports (`report_jobs`, migration 0011) and the one read
//! both Solo reports share: the tenant's visits of a range, a page at a
//! time, each with its patient.
//!
//! An encounter report is ordered (`pending`, its password sealed under the
//! server key, a [`JOB_KIND`] job armed in the same transaction), then built
//! by that job: the scheduler runs it inside the write transaction that
//! finishes the job, so the report turns `completed` (its archive in the
//! blob store, the sealed password cleared) or `failed` (with a reason) in
//! the same commit that drops the job. A crash mid-build rolls everything
//! back: the job is still due and runs again.
//!
//! Visits are read in pages by keyset on `(start_s, id)` over the index
//! `(tenant_id, start_s)`: each page is a short read, however many visits
//! the range holds, and a visit booked between two pages can never make the
//! next page repeat or skip one that was already there.

use crate::{Conn, StoreError, StoreResult, jobs, secs, ts};
use jiff::Timestamp;
use polyclinic_core::appointment::Appointment;
use polyclinic_core::patient::Patient;
use polyclinic_core::{CredentialId, PatientId, TenantId};
use sqlx::Row;
use std::collections::HashMap;

/// The kind of the job (`store::jobs`) that builds an encounter report; its
/// subject is the report id.
pub const JOB_KIND: &str = "solo-encounter-report";

/// Where an encounter report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStatus {
    /// Ordered; its job has not run yet.
    Pending,
    /// Built: the archive is in the blob store.
    Completed,
    /// The job could not build it (the reason is kept).
    Failed,
}

impl ReportStatus {
    /// The stored and shown word (Solo's).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Pending => "pending",
            ReportStatus::Completed => "completed",
            ReportStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "pending" => Ok(ReportStatus::Pending),
            "completed" => Ok(ReportStatus::Completed),
            "failed" => Ok(ReportStatus::Failed),
            other => Err(StoreError::Corrupt(format!("unknown report status {other:?}"))),
        }
    }
}

/// An encounter report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncounterReport {
    /// A UUID, lowercase and hyphenated.
    pub id: String,
    pub status: ReportStatus,
    /// The tenant's report preset it was ordered with (a UUID).
    pub preset_id: String,
    /// The visits starting in `[from, to]` (both ends included).
    pub from: Timestamp,
    pub to: Timestamp,
    /// The API key that ordered it.
    pub credential_id: Option<CredentialId>,
    /// The archive's password, sealed under the server key; only while
    /// pending.
    pub sealed_password: Option<String>,
    /// The archive in the blob store, once completed.
    pub blob_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

const COLUMNS: &str =
    "id, status, preset_id, from_s, to_s, credential_id, sealed_password, blob_id, error, created_at, finished_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<EncounterReport> {
    Ok(EncounterReport {
        id: r.try_get("id")?,
        status: ReportStatus::parse(&r.try_get::<String, _>("status")?)?,
        preset_id: r.try_get("preset_id")?,
        from: ts(r.try_get("from_s")?)?,
        to: ts(r.try_get("to_s")?)?,
        credential_id: r.try_get::<Option<i64>, _>("credential_id")?.map(CredentialId),
        sealed_password: r.try_get("sealed_password")?,
        blob_id: r.try_get("blob_id")?,
        error: r.try_get("error")?,
        created_at: ts(r.try_get("created_at")?)?,
        finished_at: r.try_get::<Option<i64>, _>("finished_at")?.map(ts).transpose()?,
    })
}

/// Orders a report: stores it (pending) and arms its job for `due`.
pub async fn create(conn: &mut Conn, tenant: TenantId, r: &EncounterReport, due: Timestamp) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO report_jobs (tenant_id, id, status, preset_id, from_s, to_s, credential_id, sealed_password, \
         blob_id, error, created_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(tenant.get())
    .bind(&r.id)
    .bind(r.status.as_str())
    .bind(&r.preset_id)
    .bind(secs(r.from))
    .bind(secs(r.to))
    .bind(r.credential_id.map(|c| c.get()))
    .bind(r.sealed_password.clone())
    .bind(r.blob_id.clone())
    .bind(r.error.clone())
    .bind(secs(r.created_at))
    .bind(r.finished_at.map(secs))
    .execute(&mut *conn)
    .await?;
    jobs::arm(conn, tenant, JOB_KIND, &r.id, due, &serde_json::json!({})).await
}

/// One report of the tenant.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: &str) -> StoreResult<Option<EncounterReport>> {
    let sql = format!("SELECT {COLUMNS} FROM report_jobs WHERE tenant_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// Marks a pending report completed with its archive, and forgets its
/// password; answers whether it was pending.
pub async fn complete(conn: &mut Conn, tenant: TenantId, id: &str, blob_id: &str, now: Timestamp) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE report_jobs SET status = 'completed', blob_id = $1, finished_at = $2, sealed_password = NULL, \
         error = NULL WHERE tenant_id = $3 AND id = $4 AND status = 'pending'",
    )
    .bind(blob_id)
    .bind(secs(now))
    .bind(tenant.get())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Marks a pending report failed with `reason`, and forgets its password;
/// answers whether it was pending.
pub async fn fail(conn: &mut Conn, tenant: TenantId, id: &str, reason: &str, now: Timestamp) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE report_jobs SET status = 'failed', error = $1, finished_at = $2, sealed_password = NULL \
         WHERE tenant_id = $3 AND id = $4 AND status = 'pending'",
    )
    .bind(reason)
    .bind(secs(now))
    .bind(tenant.get())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Where a page of visits ends: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub start_s: i64,
    pub id: i64,
}

/// A visit (an appointment of any dialect) with its patient, if it has one.
#[derive(Debug, Clone)]
pub struct Visit {
    pub appointment: Appointment,
    pub patient: Option<Patient>,
}

impl Visit {
    /// The cursor just after this visit.
    pub fn cursor(&self) -> Cursor {
        Cursor { start_s: self.appointment.interval.start.as_second(), id: self.appointment.id.get() }
    }
}

/// Up to `limit` of the tenant's visits starting in `[from, until)`, after
/// `after` (none: from the first), ordered by start then id; each with its
/// patient, read in one batch for the page. An empty page is the end.
pub async fn visits_page(
    conn: &mut Conn,
    tenant: TenantId,
    from: Timestamp,
    until: Timestamp,
    after: Option<Cursor>,
    limit: i64,
) -> StoreResult<Vec<Visit>> {
    // Ids are positive, so (from, 0) lies before every visit of the range.
    let after = after.unwrap_or(Cursor { start_s: secs(from), id: 0 });
    let rows = sqlx::query(
        "SELECT doc FROM appointments WHERE tenant_id = $1 AND start_s >= $2 AND start_s < $3 \
         AND (start_s > $4 OR (start_s = $4 AND id > $5)) ORDER BY start_s, id LIMIT $6",
    )
    .bind(tenant.get())
    .bind(secs(from))
    .bind(secs(until))
    .bind(after.start_s)
    .bind(after.id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let appointments = rows
        .iter()
        .map(|r| serde_json::from_str::<Appointment>(&r.try_get::<String, _>(0)?).map_err(StoreError::from))
        .collect::<StoreResult<Vec<_>>>()?;
    let mut ids: Vec<PatientId> = appointments.iter().filter_map(Appointment::patient).collect();
    ids.sort_unstable_by_key(|p| p.get());
    ids.dedup();
    let patients = patients_by_id(conn, tenant, &ids).await?;
    Ok(appointments
        .into_iter()
        .map(|a| {
            let patient = a.patient().and_then(|p| patients.get(&p.get()).cloned());
            Visit { appointment: a, patient }
        })
        .collect())
}

/// The tenant's patients among `ids`, by id, in one query.
async fn patients_by_id(conn: &mut Conn, tenant: TenantId, ids: &[PatientId]) -> StoreResult<HashMap<i64, Patient>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!("SELECT id, doc FROM patients WHERE tenant_id = $1 AND id IN ({})", placeholders.join(", "));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get());
    for id in ids {
        q = q.bind(id.get());
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("id")?;
            let doc: String = r.try_get("doc")?;
            Ok((id, serde_json::from_str::<Patient>(&doc)?))
        })
        .collect()
}
