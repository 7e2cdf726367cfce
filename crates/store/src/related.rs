//! Related persons (representatives) a tenant knows, found again by
//! identifier: national id and Visiba id through the unique identifier index,
//! phone numbers through `related_person_phones` (they need not be unique).

use crate::catalog::{claim_identifier, find_by_identifier};
use crate::outbox::{Seq, next_id};
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::patient::{ContactSystem, RelatedPerson};
use sqlx::Row;

const ENTITY: &str = "related_person";

/// Stores a related person; answers its id. Its identifiers must be free.
pub async fn create(conn: &mut Conn, tenant: TenantId, rp: &RelatedPerson, now: Timestamp) -> StoreResult<i64> {
    let id = next_id(conn, Seq::Entity).await?;
    for i in &rp.identifiers {
        claim_identifier(conn, tenant, ENTITY, &i.system, &i.value, id).await?;
    }
    sqlx::query("INSERT INTO related_persons (tenant_id, id, created_at, doc) VALUES ($1, $2, $3, $4)")
        .bind(tenant.get())
        .bind(id)
        .bind(secs(now))
        .bind(serde_json::to_string(rp)?)
        .execute(&mut *conn)
        .await?;
    let mut phones: Vec<&str> = rp
        .telecom
        .iter()
        .filter(|c| matches!(c.system, ContactSystem::Phone | ContactSystem::Sms))
        .map(|c| c.value.as_str())
        .collect();
    phones.sort_unstable();
    phones.dedup();
    for phone in phones {
        sqlx::query("INSERT INTO related_person_phones (tenant_id, value, related_person_id) VALUES ($1, $2, $3)")
            .bind(tenant.get())
            .bind(phone)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

/// Reads one.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Option<RelatedPerson>> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM related_persons WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// The related persons with identifier `system|value` (at most one).
pub async fn find_by(conn: &mut Conn, tenant: TenantId, system: &str, value: &str) -> StoreResult<Vec<RelatedPerson>> {
    match find_by_identifier(conn, tenant, ENTITY, system, value).await? {
        Some(id) => Ok(get(conn, tenant, id).await?.into_iter().collect()),
        None => Ok(Vec::new()),
    }
}

/// The related persons whose phone is `phone` (normalised); may be several.
pub async fn find_by_phone(conn: &mut Conn, tenant: TenantId, phone: &str) -> StoreResult<Vec<RelatedPerson>> {
    let rows = sqlx::query(
        "SELECT r.doc FROM related_person_phones p JOIN related_persons r \
         ON r.tenant_id = p.tenant_id AND r.id = p.related_person_id \
         WHERE p.tenant_id = $1 AND p.value = $2 ORDER BY p.related_person_id",
    )
    .bind(tenant.get())
    .bind(phone)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let rp: RelatedPerson = serde_json::from_str(&r.try_get::<String, _>(0)?)?;
        if rp.telecom.iter().any(|c| matches!(c.system, ContactSystem::Phone | ContactSystem::Sms) && c.value == phone)
        {
            out.push(rp);
        }
    }
    Ok(out)
}
