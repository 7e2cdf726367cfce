//! The store's booking invariants on both engines: no double booking under
//! concurrency, cancelled time freed, events written with the change, tenants
//! isolated.

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use jiff::Timestamp;
use polyclinic_core::appointment::{Actor, ActorKind, Appointment, Participant, ParticipantRole, ParticipantWho};
use polyclinic_core::schedule::Interval;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::tenant::Dialect;
use polyclinic_core::{AddressId, CoreError, HealthcareServiceId, PractitionerId, TenantId};
use polyclinic_store::{StoreError, appointments, outbox, tenants};
use serde_json::Value;

pub(crate) struct Seeded {
    pub tenant: TenantId,
    pub ann: PractitionerId,
    pub gp: HealthcareServiceId,
    pub address: AddressId,
}

pub(crate) async fn seeded(app: &TestApp, key: &str) -> Seeded {
    let ids = app.seed(&acme_seed(key)).await;
    let t = &ids["tenants"][key];
    let id = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    Seeded {
        tenant: TenantId(id(&t["id"])),
        ann: PractitionerId(id(&t["practitioners"]["ann"])),
        gp: HealthcareServiceId(id(&t["healthcare_services"]["gp"])),
        address: AddressId(id(&t["addresses"]["obrzezna"])),
    }
}

pub(crate) fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub(crate) fn draft(
    s: &Seeded,
    practitioner: PractitionerId,
    address: Option<AddressId>,
    start: &str,
    end: &str,
) -> Appointment {
    let participants = vec![Participant {
        who: ParticipantWho::Practitioner(practitioner),
        roles: vec![ParticipantRole::PrimaryPerformer],
        video: None,
        required: None,
        status: None,
    }];
    let by = Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Embassy) };
    let mut a =
        Appointment::booked(Interval { start: ts(start), end: ts(end) }, participants, by, ts("2030-01-01T00:00:00Z"));
    a.healthcare_service_id = Some(s.gp);
    a.address_id = address;
    a
}

pub(crate) async fn book(app: &TestApp, tenant: TenantId, a: Appointment) -> Result<Appointment, StoreError> {
    let now = ts("2030-01-01T00:00:00Z");
    app.store
        .write(move |c| {
            Box::pin(async move {
                let mut a = a;
                a.id = appointments::new_id(c).await?;
                appointments::create(c, tenant, a, now).await
            })
        })
        .await
}

async fn events(app: &TestApp, tenant: TenantId) -> Vec<String> {
    let list = app.store.read(move |c| Box::pin(async move { outbox::list(c, tenant, 0, 1000).await })).await.unwrap();
    list.into_iter().filter(|e| e.aggregate == "appointment").map(|e| e.kind.as_str().to_owned()).collect()
}

fn is_slot_taken(r: &Result<Appointment, StoreError>) -> bool {
    matches!(r, Err(StoreError::Core(CoreError::SlotTaken { .. })))
}

async fn sixty_four_concurrent_bookings_commit_exactly_one(engine: Engine) {
    let app = spawn_app(engine).await;
    let s = seeded(&app, "acme").await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store_app = app.store.clone();
        let a = draft(&s, s.ann, Some(s.address), "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z");
        let tenant = s.tenant;
        tasks.push(tokio::spawn(async move {
            let now = ts("2030-01-01T00:00:00Z");
            store_app
                .write(move |c| {
                    Box::pin(async move {
                        let mut a = a;
                        a.id = appointments::new_id(c).await?;
                        appointments::create(c, tenant, a, now).await
                    })
                })
                .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.is_ok() {
            ok += 1;
        } else if is_slot_taken(&r) {
            conflicts += 1;
        } else {
            panic!("unexpected outcome: {r:?}");
        }
    }
    assert_eq!((ok, conflicts), (1, 63));
    let tenant = s.tenant;
    let (found, total) = app
        .store
        .read(move |c| {
            Box::pin(async move {
                appointments::search(c, tenant, &appointments::Search { limit: 100, ..Default::default() }).await
            })
        })
        .await
        .unwrap();
    assert_eq!((found.len(), total), (1, 1), "refused bookings wrote nothing");
    assert_eq!(events(&app, s.tenant).await, vec!["AppointmentCreated"], "one event, written with the booking");
    app.stop().await;
}

async fn touching_appointments_fit_and_overlapping_ones_do_not(engine: Engine) {
    let app = spawn_app(engine).await;
    let s = seeded(&app, "acme").await;
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z")).await.unwrap();
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-04T09:15:00Z", "2030-03-04T09:30:00Z")).await.unwrap();
    let clash = book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-04T09:29:00Z", "2030-03-04T09:44:00Z")).await;
    assert!(is_slot_taken(&clash), "{clash:?}");
    app.stop().await;
}

async fn the_address_is_guarded_too(engine: Engine) {
    let app = spawn_app(engine).await;
    let s = seeded(&app, "acme").await;
    let mut doc = acme_seed("acme");
    doc["tenants"][0]["practitioners"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"key": "bo", "given": "Bo", "family": "Lind"}));
    let ids = app.seed(&doc).await;
    let bo = PractitionerId(ids["tenants"]["acme"]["practitioners"]["bo"].as_str().unwrap().parse().unwrap());
    book(&app, s.tenant, draft(&s, s.ann, Some(s.address), "2030-03-04T09:00:00Z", "2030-03-04T10:00:00Z"))
        .await
        .unwrap();
    let other_doctor_same_address =
        book(&app, s.tenant, draft(&s, bo, Some(s.address), "2030-03-04T09:30:00Z", "2030-03-04T09:45:00Z")).await;
    assert!(is_slot_taken(&other_doctor_same_address));
    // The same doctor elsewhere (no address) is still busy; Bo without the address is free.
    book(&app, s.tenant, draft(&s, bo, None, "2030-03-04T09:30:00Z", "2030-03-04T09:45:00Z")).await.unwrap();
    app.stop().await;
}

async fn cancelling_frees_the_time_and_records_who(engine: Engine) {
    let app = spawn_app(engine).await;
    let s = seeded(&app, "acme").await;
    let a = book(&app, s.tenant, draft(&s, s.ann, Some(s.address), "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z"))
        .await
        .unwrap();
    let tenant = s.tenant;
    let cancelled = app
        .store
        .write(move |c| {
            Box::pin(async move {
                appointments::cancel(
                    c,
                    tenant,
                    a.id,
                    Actor { kind: ActorKind::User, dialect: Some(Dialect::Solo) },
                    Some("ill".into()),
                    ts("2030-01-02T00:00:00Z"),
                )
                .await
            })
        })
        .await
        .unwrap();
    assert_eq!(cancelled.status, AppointmentStatus::Cancelled);
    assert_eq!(cancelled.canceled_by.as_ref().map(|a| a.kind), Some(ActorKind::User));
    assert_eq!(cancelled.version, 2);
    // Cancelling twice is refused by the status machine.
    let again = app
        .store
        .write(move |c| {
            Box::pin(async move {
                appointments::cancel(
                    c,
                    tenant,
                    a.id,
                    Actor { kind: ActorKind::User, dialect: None },
                    None,
                    ts("2030-01-02T00:00:00Z"),
                )
                .await
            })
        })
        .await;
    assert!(matches!(again, Err(StoreError::Core(CoreError::InvalidTransition { .. }))), "{again:?}");
    book(&app, s.tenant, draft(&s, s.ann, Some(s.address), "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z"))
        .await
        .unwrap();
    assert_eq!(events(&app, s.tenant).await, vec!["AppointmentCreated", "AppointmentCancelled", "AppointmentCreated"]);
    app.stop().await;
}

async fn rescheduling_moves_the_held_time(engine: Engine) {
    let app = spawn_app(engine).await;
    let s = seeded(&app, "acme").await;
    let a = book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z")).await.unwrap();
    let b = book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-04T10:00:00Z", "2030-03-04T10:15:00Z")).await.unwrap();
    let tenant = s.tenant;
    let onto_b = Interval { start: ts("2030-03-04T10:05:00Z"), end: ts("2030-03-04T10:20:00Z") };
    let clash = app
        .store
        .write(move |c| {
            Box::pin(async move { appointments::reschedule(c, tenant, a.id, onto_b, ts("2030-01-02T00:00:00Z")).await })
        })
        .await;
    assert!(matches!(clash, Err(StoreError::Core(CoreError::SlotTaken { .. }))), "{clash:?}");
    let free = Interval { start: ts("2030-03-04T11:00:00Z"), end: ts("2030-03-04T11:15:00Z") };
    let moved = app
        .store
        .write(move |c| {
            Box::pin(async move { appointments::reschedule(c, tenant, a.id, free, ts("2030-01-02T00:00:00Z")).await })
        })
        .await
        .unwrap();
    assert_eq!(moved.interval, free);
    // The old time is free again.
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z")).await.unwrap();
    let stored =
        app.store.read(move |c| Box::pin(async move { appointments::get(c, tenant, b.id).await })).await.unwrap();
    assert_eq!(stored.map(|x| x.interval.start), Some(ts("2030-03-04T10:00:00Z")));
    app.stop().await;
}

async fn status_changes_follow_the_machine_and_emit_events(engine: Engine) {
    let app = spawn_app(engine).await;
    let s = seeded(&app, "acme").await;
    let a = book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z")).await.unwrap();
    let tenant = s.tenant;
    for to in [AppointmentStatus::Arrived, AppointmentStatus::ExamInProgress, AppointmentStatus::Completed] {
        app.store
            .write(move |c| {
                Box::pin(async move { appointments::set_status(c, tenant, a.id, to, ts("2030-03-04T09:00:00Z")).await })
            })
            .await
            .unwrap();
    }
    let back = app
        .store
        .write(move |c| {
            Box::pin(async move {
                appointments::set_status(c, tenant, a.id, AppointmentStatus::Arrived, ts("2030-03-04T09:20:00Z")).await
            })
        })
        .await;
    assert!(matches!(back, Err(StoreError::Core(CoreError::InvalidTransition { .. }))));
    let kinds = events(&app, s.tenant).await;
    assert_eq!(kinds.iter().filter(|k| *k == "AppointmentStatusChanged").count(), 3);
    assert_eq!(kinds.last().map(String::as_str), Some("AppointmentCompleted"));
    app.stop().await;
}

async fn tenants_see_only_their_own_data(engine: Engine) {
    let app = spawn_app(engine).await;
    let acme = seeded(&app, "acme").await;
    let other = seeded(&app, "other").await;
    let a = book(&app, acme.tenant, draft(&acme, acme.ann, None, "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z"))
        .await
        .unwrap();
    let other_tenant = other.tenant;
    let seen =
        app.store.read(move |c| Box::pin(async move { appointments::get(c, other_tenant, a.id).await })).await.unwrap();
    assert!(seen.is_none(), "another tenant's id is not found");
    // The same practitioner time in another tenant is free: busy time is per tenant.
    book(&app, other.tenant, draft(&other, other.ann, None, "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z"))
        .await
        .unwrap();
    // Each credential leads to its own tenant only.
    let found = app
        .store
        .read(|c| Box::pin(async move { tenants::authenticate(c, Dialect::Embassy, "emb-other-1").await }))
        .await
        .unwrap()
        .expect("credential found");
    assert_eq!(found.tenant_id, other.tenant);
    let wrong_dialect = app
        .store
        .read(|c| Box::pin(async move { tenants::authenticate(c, Dialect::Solo, "emb-other-1").await }))
        .await
        .unwrap();
    assert!(wrong_dialect.is_none(), "a key of one dialect does not open another");
    let client = app
        .store
        .read(|c| {
            Box::pin(async move { tenants::authenticate_client(c, Dialect::Docplanner, "dp-acme", "dp-secret").await })
        })
        .await
        .unwrap()
        .expect("docplanner client found");
    assert_eq!(client.tenant_id, acme.tenant);
    assert_eq!(client.config.facilities.len(), 1);
    let bad_secret = app
        .store
        .read(|c| {
            Box::pin(
                async move { tenants::authenticate_client(c, Dialect::Docplanner, "dp-acme", "wrong-secret").await },
            )
        })
        .await
        .unwrap();
    assert!(bad_secret.is_none());
    app.stop().await;
}

on_both_engines!(
    sixty_four_concurrent_bookings_commit_exactly_one,
    touching_appointments_fit_and_overlapping_ones_do_not,
    the_address_is_guarded_too,
    cancelling_frees_the_time_and_records_who,
    rescheduling_moves_the_held_time,
    status_changes_follow_the_machine_and_emit_events,
    tenants_see_only_their_own_data,
);
