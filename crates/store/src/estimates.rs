//! Expected starts of video visits: derived from the practitioner's earlier
//! visits by the delay estimation (`core::delay`), written by the scheduler
//! and shown by the dialects. Not part of the appointment: a new estimate
//! changes no version and tells no subscriber.

use crate::{Conn, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::{AppointmentId, TenantId};

/// Records that `appointment` is expected to start at `expected`, or (with
/// `None`) that it is on time.
pub async fn set(
    conn: &mut Conn,
    tenant: TenantId,
    appointment: AppointmentId,
    expected: Option<Timestamp>,
) -> StoreResult<()> {
    match expected {
        Some(t) => {
            sqlx::query(
                "INSERT INTO expected_starts (tenant_id, appointment_id, expected_s) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, appointment_id) DO UPDATE SET expected_s = excluded.expected_s",
            )
            .bind(tenant.get())
            .bind(appointment.get())
            .bind(secs(t))
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM expected_starts WHERE tenant_id = $1 AND appointment_id = $2")
                .bind(tenant.get())
                .bind(appointment.get())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// When `appointment` is expected to start, if it is late.
pub async fn get(conn: &mut Conn, tenant: TenantId, appointment: AppointmentId) -> StoreResult<Option<Timestamp>> {
    let s: Option<i64> =
        sqlx::query_scalar("SELECT expected_s FROM expected_starts WHERE tenant_id = $1 AND appointment_id = $2")
            .bind(tenant.get())
            .bind(appointment.get())
            .fetch_optional(&mut *conn)
            .await?;
    s.map(crate::ts).transpose()
}
