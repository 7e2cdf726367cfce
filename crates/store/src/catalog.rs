//! The catalogue: practitioners, healthcare services, facilities, addresses,
//! address services, care locations, the shared dictionaries (services,
//! insurance providers) kept under tenant 0, and the insurance providers
//! accepted at each address.
//!
//! These tables share one shape (`tenant_id, id, [key], ..., doc`), so one set
//! of helpers reads and writes them; the table name always comes from the
//! [`Table`] enum, never from input.

use crate::availability_generation::{Resource, touch};
use crate::outbox::{Seq, append, next_id};
use crate::{Conn, StoreError, StoreResult};
use jiff::Timestamp;
use polyclinic_core::care::CareLocation;
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::facility::{
    Address, AddressInsuranceProvider, AddressService, Facility, InsuranceProvider, Service,
};
use polyclinic_core::practitioner::Practitioner;
use polyclinic_core::service::HealthcareService;
use polyclinic_core::{AddressId, AddressServiceId, CoreError, InsuranceProviderId, TenantId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sqlx::AssertSqlSafe;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The tenant that owns the shared dictionaries.
pub const SHARED: TenantId = TenantId(0);

/// Counts the changes this process made to the catalogue's document tables
/// (see [`catalog_epoch`]).
static CATALOG_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The number of changes this process has made so far to the catalogue's
/// document tables (practitioners, healthcare services, facilities,
/// addresses, address services, care locations, the shared dictionaries).
/// An in-memory [`Snapshot`] (`polyclinic_http::cache`) is kept only while
/// this number is the one read before loading it.
///
/// Every function of this module that writes those tables calls
/// [`catalog_changed`] inside its transaction; callers that can, call it
/// again once the transaction has committed, so that a snapshot loaded from
/// the old rows between the two is dropped too. Changes made by other
/// processes are not counted: the cache's time to live bounds how long they
/// go unseen.
pub fn catalog_epoch() -> u64 {
    CATALOG_EPOCH.load(Ordering::Acquire)
}

/// Records a change of the catalogue (see [`catalog_epoch`]).
pub fn catalog_changed() {
    CATALOG_EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// Document tables of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Practitioners,
    HealthcareServices,
    Facilities,
    Addresses,
    AddressServices,
    CareLocations,
    Services,
    InsuranceProviders,
}

impl Table {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Practitioners => "practitioners",
            Table::HealthcareServices => "healthcare_services",
            Table::Facilities => "facilities",
            Table::Addresses => "addresses",
            Table::AddressServices => "address_services",
            Table::CareLocations => "care_locations",
            Table::Services => "services",
            Table::InsuranceProviders => "insurance_providers",
        }
    }

    fn entity(self) -> &'static str {
        match self {
            Table::Practitioners => "practitioner",
            Table::HealthcareServices => "healthcare service",
            Table::Facilities => "facility",
            Table::Addresses => "address",
            Table::AddressServices => "address service",
            Table::CareLocations => "care location",
            Table::Services => "service",
            Table::InsuranceProviders => "insurance provider",
        }
    }
}

/// Reads one document by id; `None` when the tenant has no such row.
pub async fn get<T: DeserializeOwned>(
    conn: &mut Conn,
    table: Table,
    tenant: TenantId,
    id: i64,
) -> StoreResult<Option<T>> {
    let sql = format!("SELECT doc FROM {} WHERE tenant_id = $1 AND id = $2", table.name());
    let doc: Option<String> =
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(tenant.get()).bind(id).fetch_optional(&mut *conn).await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Reads one document by id, or the domain's not-found error.
pub async fn require<T: DeserializeOwned>(conn: &mut Conn, table: Table, tenant: TenantId, id: i64) -> StoreResult<T> {
    get(conn, table, tenant, id).await?.ok_or_else(|| CoreError::not_found(table.entity(), id).into())
}

/// Every document of the tenant, by id.
pub async fn list<T: DeserializeOwned>(conn: &mut Conn, table: Table, tenant: TenantId) -> StoreResult<Vec<T>> {
    let sql = format!("SELECT doc FROM {} WHERE tenant_id = $1 ORDER BY id", table.name());
    let docs: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql)).bind(tenant.get()).fetch_all(&mut *conn).await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

/// The id of the row with seed key `key`, if any.
pub async fn id_by_key(conn: &mut Conn, table: Table, tenant: TenantId, key: &str) -> StoreResult<Option<i64>> {
    let sql = format!("SELECT id FROM {} WHERE tenant_id = $1 AND key = $2", table.name());
    Ok(sqlx::query_scalar(AssertSqlSafe(sql)).bind(tenant.get()).bind(key).fetch_optional(&mut *conn).await?)
}

/// Records a change of addresses or address services, which the free
/// starts of addresses depend on (see [`crate::availability_generation`]).
async fn touch_availability(conn: &mut Conn, table: Table, tenant: TenantId) -> StoreResult<()> {
    if matches!(table, Table::Addresses | Table::AddressServices) {
        touch(conn, tenant, &[Resource::Catalogue]).await?;
    }
    Ok(())
}

/// Extra indexed columns written beside the document.
pub type Columns<'a> = &'a [(&'static str, Option<i64>)];

/// Inserts or replaces a row by id.
async fn put(
    conn: &mut Conn,
    table: Table,
    tenant: TenantId,
    id: i64,
    key: Option<&str>,
    cols: Columns<'_>,
    doc: String,
) -> StoreResult<()> {
    catalog_changed();
    touch_availability(conn, table, tenant).await?;
    let mut names = vec!["tenant_id", "id", "doc"];
    if key.is_some() {
        names.push("key");
    }
    names.extend(cols.iter().map(|(c, _)| *c));
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = names[2..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (tenant_id, id) DO UPDATE SET {}",
        table.name(),
        names.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant.get()).bind(id).bind(doc);
    if let Some(k) = key {
        q = q.bind(k.to_owned());
    }
    for (_, v) in cols {
        q = q.bind(*v);
    }
    q.execute(&mut *conn).await.map_err(crate::db::map_constraint)?;
    Ok(())
}

/// Inserts or updates a keyed row (seed data): keeps the id of an existing
/// key, draws a new one otherwise. `build` receives the id and returns the
/// document to store.
pub async fn upsert_keyed<T: Serialize>(
    conn: &mut Conn,
    table: Table,
    tenant: TenantId,
    key: &str,
    cols: Columns<'_>,
    build: impl FnOnce(i64) -> Result<T, CoreError>,
) -> StoreResult<i64> {
    let id = match id_by_key(conn, table, tenant, key).await? {
        Some(id) => id,
        None => next_id(conn, Seq::Entity).await?,
    };
    let doc = serde_json::to_string(&build(id)?)?;
    put(conn, table, tenant, id, Some(key), cols, doc).await?;
    Ok(id)
}

/// Inserts or replaces an unkeyed row by id.
pub async fn save<T: Serialize>(
    conn: &mut Conn,
    table: Table,
    tenant: TenantId,
    id: i64,
    cols: Columns<'_>,
    value: &T,
) -> StoreResult<()> {
    put(conn, table, tenant, id, None, cols, serde_json::to_string(value)?).await
}

/// Deletes a row; answers whether it existed.
pub async fn delete(conn: &mut Conn, table: Table, tenant: TenantId, id: i64) -> StoreResult<bool> {
    catalog_changed();
    touch_availability(conn, table, tenant).await?;
    let sql = format!("DELETE FROM {} WHERE tenant_id = $1 AND id = $2", table.name());
    let r = sqlx::query(AssertSqlSafe(sql)).bind(tenant.get()).bind(id).execute(&mut *conn).await?;
    Ok(r.rows_affected() > 0)
}

/// A practitioner by id.
pub async fn practitioner(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Option<Practitioner>> {
    get(conn, Table::Practitioners, tenant, id).await
}

/// A healthcare service by id.
pub async fn healthcare_service(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Option<HealthcareService>> {
    get(conn, Table::HealthcareServices, tenant, id).await
}

/// A healthcare service by id, read to book into it: on PostgreSQL the row
/// stays locked (`FOR UPDATE`) until the transaction ends, so that two
/// bookings of one waiting room count its load one after the other; SQLite's
/// single writer already runs one command at a time.
pub async fn healthcare_service_for_update(
    conn: &mut Conn,
    tenant: TenantId,
    id: i64,
) -> StoreResult<Option<HealthcareService>> {
    let sql = if crate::outbox::is_postgres(conn) {
        "SELECT doc FROM healthcare_services WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    } else {
        "SELECT doc FROM healthcare_services WHERE tenant_id = $1 AND id = $2"
    };
    let doc: Option<String> = sqlx::query_scalar(sql).bind(tenant.get()).bind(id).fetch_optional(&mut *conn).await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// A facility by id.
pub async fn facility(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Option<Facility>> {
    get(conn, Table::Facilities, tenant, id).await
}

/// An address by id.
pub async fn address(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Option<Address>> {
    get(conn, Table::Addresses, tenant, id).await
}

/// The addresses of a facility.
pub async fn addresses_of_facility(conn: &mut Conn, tenant: TenantId, facility: i64) -> StoreResult<Vec<Address>> {
    let docs: Vec<String> =
        sqlx::query_scalar("SELECT doc FROM addresses WHERE tenant_id = $1 AND facility_id = $2 ORDER BY id")
            .bind(tenant.get())
            .bind(facility)
            .fetch_all(&mut *conn)
            .await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

/// The addresses whose `practitioner_id` (or else `healthcare_service_id`) is `id`.
async fn addresses_where(
    conn: &mut Conn,
    tenant: TenantId,
    of_practitioner: bool,
    id: i64,
) -> StoreResult<Vec<Address>> {
    let sql = if of_practitioner {
        "SELECT doc FROM addresses WHERE tenant_id = $1 AND practitioner_id = $2 ORDER BY id"
    } else {
        "SELECT doc FROM addresses WHERE tenant_id = $1 AND healthcare_service_id = $2 ORDER BY id"
    };
    let docs: Vec<String> = sqlx::query_scalar(sql).bind(tenant.get()).bind(id).fetch_all(&mut *conn).await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

/// The addresses where a practitioner has a calendar.
pub async fn addresses_of_practitioner(
    conn: &mut Conn,
    tenant: TenantId,
    practitioner: i64,
) -> StoreResult<Vec<Address>> {
    addresses_where(conn, tenant, true, practitioner).await
}

/// The addresses linked to a healthcare service.
pub async fn addresses_of_service(conn: &mut Conn, tenant: TenantId, service: i64) -> StoreResult<Vec<Address>> {
    addresses_where(conn, tenant, false, service).await
}

/// The address services offered at an address.
pub async fn address_services(conn: &mut Conn, tenant: TenantId, address: i64) -> StoreResult<Vec<AddressService>> {
    let docs: Vec<String> =
        sqlx::query_scalar("SELECT doc FROM address_services WHERE tenant_id = $1 AND address_id = $2 ORDER BY id")
            .bind(tenant.get())
            .bind(address)
            .fetch_all(&mut *conn)
            .await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

/// A care location by id.
pub async fn care_location(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<Option<CareLocation>> {
    get(conn, Table::CareLocations, tenant, id).await
}

/// A tenant's catalogue as requests look it up, read at once: its
/// practitioners (by id, e-mail and HSA id), healthcare services,
/// facilities, addresses and address services (by id). What
/// `polyclinic_http::cache` keeps in memory, so that a request resolves
/// the catalogue without a query.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// By id.
    pub practitioners: Vec<Practitioner>,
    /// By id.
    pub healthcare_services: Vec<HealthcareService>,
    /// By id.
    pub facilities: Vec<Facility>,
    /// By id.
    pub addresses: Vec<Address>,
    /// By id.
    pub address_services: Vec<AddressService>,
    practitioner_ix: HashMap<i64, usize>,
    practitioner_by_email: HashMap<String, usize>,
    practitioner_by_hsa: HashMap<String, usize>,
    service_ix: HashMap<i64, usize>,
    facility_ix: HashMap<i64, usize>,
    address_ix: HashMap<i64, usize>,
    address_service_ix: HashMap<i64, usize>,
}

/// Positions by key; the first (lowest id) wins where two share a key.
fn index_by<T, K: std::hash::Hash + Eq>(items: &[T], key: impl Fn(&T) -> Option<K>) -> HashMap<K, usize> {
    let mut ix = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(k) = key(item) {
            ix.entry(k).or_insert(i);
        }
    }
    ix
}

impl Snapshot {
    /// Reads the tenant's catalogue (five statements on one connection).
    pub async fn load(conn: &mut Conn, tenant: TenantId) -> StoreResult<Snapshot> {
        let practitioners: Vec<Practitioner> = list(conn, Table::Practitioners, tenant).await?;
        let healthcare_services: Vec<HealthcareService> = list(conn, Table::HealthcareServices, tenant).await?;
        let facilities: Vec<Facility> = list(conn, Table::Facilities, tenant).await?;
        let addresses: Vec<Address> = list(conn, Table::Addresses, tenant).await?;
        let address_services: Vec<AddressService> = list(conn, Table::AddressServices, tenant).await?;
        Ok(Snapshot {
            practitioner_ix: index_by(&practitioners, |p| Some(p.id.get())),
            practitioner_by_email: index_by(&practitioners, |p| {
                p.email.as_ref().map(|e| e.as_str().to_ascii_lowercase())
            }),
            practitioner_by_hsa: index_by(&practitioners, |p| p.hsa_id.clone()),
            service_ix: index_by(&healthcare_services, |s| Some(s.id.get())),
            facility_ix: index_by(&facilities, |f| Some(f.id.get())),
            address_ix: index_by(&addresses, |a| Some(a.id.get())),
            address_service_ix: index_by(&address_services, |s| Some(s.id.get())),
            practitioners,
            healthcare_services,
            facilities,
            addresses,
            address_services,
        })
    }

    /// A practitioner by id.
    pub fn practitioner(&self, id: i64) -> Option<&Practitioner> {
        self.practitioner_ix.get(&id).map(|i| &self.practitioners[*i])
    }

    /// The practitioner (the lowest id) with this e-mail address, compared
    /// without regard to ASCII case.
    pub fn practitioner_by_email(&self, email: &str) -> Option<&Practitioner> {
        self.practitioner_by_email.get(&email.to_ascii_lowercase()).map(|i| &self.practitioners[*i])
    }

    /// The practitioner (the lowest id) with this HSA id.
    pub fn practitioner_by_hsa(&self, hsa_id: &str) -> Option<&Practitioner> {
        self.practitioner_by_hsa.get(hsa_id).map(|i| &self.practitioners[*i])
    }

    /// A healthcare service by id.
    pub fn healthcare_service(&self, id: i64) -> Option<&HealthcareService> {
        self.service_ix.get(&id).map(|i| &self.healthcare_services[*i])
    }

    /// A facility by id.
    pub fn facility(&self, id: i64) -> Option<&Facility> {
        self.facility_ix.get(&id).map(|i| &self.facilities[*i])
    }

    /// An address by id.
    pub fn address(&self, id: i64) -> Option<&Address> {
        self.address_ix.get(&id).map(|i| &self.addresses[*i])
    }

    /// The addresses of a facility, by id.
    pub fn addresses_of_facility(&self, facility: i64) -> impl Iterator<Item = &Address> {
        self.addresses.iter().filter(move |a| a.facility_id.get() == facility)
    }

    /// An address service by id.
    pub fn address_service(&self, id: i64) -> Option<&AddressService> {
        self.address_service_ix.get(&id).map(|i| &self.address_services[*i])
    }
}

/// The shared service dictionary.
pub async fn services(conn: &mut Conn) -> StoreResult<Vec<Service>> {
    list(conn, Table::Services, SHARED).await
}

/// The shared insurance providers.
pub async fn insurance_providers(conn: &mut Conn) -> StoreResult<Vec<InsuranceProvider>> {
    list(conn, Table::InsuranceProviders, SHARED).await
}

/// Registers identifier `system|value` for an entity; a value already used by
/// another entity of the same kind is refused.
pub async fn claim_identifier(
    conn: &mut Conn,
    tenant: TenantId,
    entity: &'static str,
    system: &str,
    value: &str,
    id: i64,
) -> StoreResult<()> {
    let owner: Option<i64> = sqlx::query_scalar(
        "SELECT entity_id FROM identifiers WHERE tenant_id = $1 AND entity = $2 AND system = $3 AND value = $4",
    )
    .bind(tenant.get())
    .bind(entity)
    .bind(system)
    .bind(value)
    .fetch_optional(&mut *conn)
    .await?;
    match owner {
        Some(o) if o == id => Ok(()),
        Some(_) => Err(CoreError::AlreadyExists { entity, key: format!("identifier {system}") }.into()),
        None => {
            sqlx::query(
                "INSERT INTO identifiers (tenant_id, entity, system, value, entity_id) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant.get())
            .bind(entity)
            .bind(system)
            .bind(value)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(crate::db::map_constraint)?;
            Ok(())
        }
    }
}

/// Drops every identifier of an entity (before re-registering the current set).
pub async fn release_identifiers(conn: &mut Conn, tenant: TenantId, entity: &'static str, id: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM identifiers WHERE tenant_id = $1 AND entity = $2 AND entity_id = $3")
        .bind(tenant.get())
        .bind(entity)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Finds an entity by identifier.
pub async fn find_by_identifier(
    conn: &mut Conn,
    tenant: TenantId,
    entity: &'static str,
    system: &str,
    value: &str,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT entity_id FROM identifiers WHERE tenant_id = $1 AND entity = $2 AND system = $3 AND value = $4",
    )
    .bind(tenant.get())
    .bind(entity)
    .bind(system)
    .bind(value)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The Docplanner address a booking of healthcare service `service` by
/// `practitioner` lands at: the address linked to the service whose doctor is
/// that practitioner (the first by id, when there are several). `None` when
/// the practitioner has no address of the service: a booking never lands at
/// another doctor's calendar, where it would hold that doctor's time.
pub async fn address_for_service(
    conn: &mut Conn,
    tenant: TenantId,
    service: i64,
    practitioner: Option<i64>,
) -> StoreResult<Option<Address>> {
    let Some(practitioner) = practitioner else { return Ok(None) };
    let doc: Option<String> = sqlx::query_scalar(
        "SELECT doc FROM addresses WHERE tenant_id = $1 AND healthcare_service_id = $2 AND practitioner_id = $3 \
         ORDER BY id LIMIT 1",
    )
    .bind(tenant.get())
    .bind(service)
    .bind(practitioner)
    .fetch_optional(&mut *conn)
    .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Replaces an address's document (its indexed columns do not change here).
pub async fn update_address(conn: &mut Conn, tenant: TenantId, a: &Address) -> StoreResult<()> {
    catalog_changed();
    touch_availability(conn, Table::Addresses, tenant).await?;
    let r = sqlx::query("UPDATE addresses SET doc = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(a.id.get())
        .bind(serde_json::to_string(a)?)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Err(CoreError::not_found("address", a.id).into());
    }
    Ok(())
}

/// A new address service id.
pub async fn new_address_service_id(conn: &mut Conn) -> StoreResult<AddressServiceId> {
    Ok(AddressServiceId(next_id(conn, Seq::Entity).await?))
}

/// The event about an address service: `{"address_id", "address_service"}`,
/// the service after the change (before it, for a deletion).
fn address_service_event(kind: EventKind, s: &AddressService) -> StoreResult<NewEvent> {
    let data = json!({"address_id": s.address_id.to_string(), "address_service": serde_json::to_value(s)?});
    Ok(NewEvent::new(kind, "address_service", s.id, data))
}

async fn put_address_service(conn: &mut Conn, tenant: TenantId, s: &AddressService) -> StoreResult<()> {
    let cols = [("address_id", Some(s.address_id.get())), ("service_id", Some(s.service_id.get()))];
    save(conn, Table::AddressServices, tenant, s.id.get(), &cols, s).await
}

/// Adds an address service (its id drawn with [`new_address_service_id`]) and
/// its `AddressServiceCreated` event. The same dictionary service twice at one
/// address is refused with `AlreadyExists`.
pub async fn create_address_service(
    conn: &mut Conn,
    tenant: TenantId,
    s: &AddressService,
    now: Timestamp,
) -> StoreResult<()> {
    put_address_service(conn, tenant, s).await?;
    append(conn, tenant, now, &[address_service_event(EventKind::AddressServiceCreated, s)?]).await
}

/// Replaces an address service and appends `AddressServiceChanged`.
pub async fn update_address_service(
    conn: &mut Conn,
    tenant: TenantId,
    s: &AddressService,
    now: Timestamp,
) -> StoreResult<()> {
    put_address_service(conn, tenant, s).await?;
    append(conn, tenant, now, &[address_service_event(EventKind::AddressServiceChanged, s)?]).await
}

/// Deletes an address service and appends `AddressServiceDeleted` with the
/// service as it was.
pub async fn delete_address_service(
    conn: &mut Conn,
    tenant: TenantId,
    s: &AddressService,
    now: Timestamp,
) -> StoreResult<()> {
    if !delete(conn, Table::AddressServices, tenant, s.id.get()).await? {
        return Err(CoreError::not_found("address service", s.id).into());
    }
    append(conn, tenant, now, &[address_service_event(EventKind::AddressServiceDeleted, s)?]).await
}

/// An insurance provider of the shared dictionary.
pub async fn insurance_provider(conn: &mut Conn, id: i64) -> StoreResult<Option<InsuranceProvider>> {
    get(conn, Table::InsuranceProviders, SHARED, id).await
}

/// The insurance providers accepted at an address, by provider id.
pub async fn address_insurance_providers(
    conn: &mut Conn,
    tenant: TenantId,
    address: AddressId,
) -> StoreResult<Vec<AddressInsuranceProvider>> {
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc FROM address_insurance_providers WHERE tenant_id = $1 AND address_id = $2 \
         ORDER BY insurance_provider_id",
    )
    .bind(tenant.get())
    .bind(address.get())
    .fetch_all(&mut *conn)
    .await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

/// One insurance provider of an address, if accepted there.
pub async fn address_insurance_provider(
    conn: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    provider: InsuranceProviderId,
) -> StoreResult<Option<AddressInsuranceProvider>> {
    let doc: Option<String> = sqlx::query_scalar(
        "SELECT doc FROM address_insurance_providers WHERE tenant_id = $1 AND address_id = $2 \
         AND insurance_provider_id = $3",
    )
    .bind(tenant.get())
    .bind(address.get())
    .bind(provider.get())
    .fetch_optional(&mut *conn)
    .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Adds or replaces an insurance provider of an address (with its plans).
pub async fn save_address_insurance_provider(
    conn: &mut Conn,
    tenant: TenantId,
    p: &AddressInsuranceProvider,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO address_insurance_providers (tenant_id, address_id, insurance_provider_id, doc) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, address_id, insurance_provider_id) \
         DO UPDATE SET doc = excluded.doc",
    )
    .bind(tenant.get())
    .bind(p.address_id.get())
    .bind(p.insurance_provider_id.get())
    .bind(serde_json::to_string(p)?)
    .execute(&mut *conn)
    .await
    .map_err(crate::db::map_constraint)?;
    Ok(())
}

/// Removes an insurance provider from an address; answers whether it was there.
pub async fn delete_address_insurance_provider(
    conn: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    provider: InsuranceProviderId,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "DELETE FROM address_insurance_providers WHERE tenant_id = $1 AND address_id = $2 \
         AND insurance_provider_id = $3",
    )
    .bind(tenant.get())
    .bind(address.get())
    .bind(provider.get())
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() > 0)
}
