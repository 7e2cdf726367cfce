//! What the scenarios run against: one fresh tenant, seeded through the
//! admin API (in-process or on a running server alike), with 50
//! practitioners in one healthcare service, one Docplanner address each
//! (one 15-minute address service, work periods 08:00-20:00 UTC), 64
//! patients; and the pool of free 15-minute slots every booking scenario
//! draws from.
//!
//! The slot pool is shared by every booking of the invocation (the read sets
//! booked beforehand included): slot `i` of the pool is a fixed pseudo-random
//! permutation of (practitioner, day, quarter hour), so the bookings land at
//! random free times all over the calendars, and no two draws of the pool
//! collide. Collisions are added on purpose, a few in a hundred
//! (`--conflict-percent`): such a booking aims at a slot handed out a moment
//! ago (often still in flight on another connection), shifted by 5 minutes
//! for Embassy, so that the double-booking guard is raced for real. Its
//! refusal is counted as a conflict, not an error; the overlap check after
//! the scenario is what proves the guard held.

use crate::load::{Rng, Target};
use anyhow::Context;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Practitioners of the bench tenant (the issue's `book`: 50).
pub const PRACTITIONERS: usize = 50;
/// Patients the Embassy bookings pick from.
pub const PATIENTS: usize = 64;
/// Days of the calendar, from the day after tomorrow (UTC): Docplanner takes
/// work periods up to 12 weeks ahead.
pub const DAYS: usize = 78;
/// Quarter hours of a working day, 08:00-20:00 UTC.
pub const QUARTERS: usize = 48;
/// First hour of a working day (UTC).
pub const FIRST_HOUR: i64 = 8;
/// A slot's length.
pub const SLOT_MINUTES: i64 = 15;

/// A 15-minute slot of one practitioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The practitioner's index (0..50), also the index of its address.
    pub practitioner: usize,
    /// Unix seconds.
    pub start: i64,
}

/// The free slots, drawn in a fixed pseudo-random order.
pub struct SlotPool {
    practitioners: usize,
    /// Midnight (UTC) of the first day, unix seconds.
    first_day: i64,
    size: usize,
    multiplier: usize,
    cursor: AtomicUsize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl SlotPool {
    pub fn new(practitioners: usize, first_day: i64) -> SlotPool {
        let size = practitioners * DAYS * QUARTERS;
        // i -> (i * multiplier + offset) mod size is a permutation when the
        // multiplier and the size have no common factor.
        let mut multiplier = 1_000_003usize;
        while gcd(multiplier, size) != 1 {
            multiplier += 2;
        }
        SlotPool { practitioners, first_day, size, multiplier, cursor: AtomicUsize::new(0) }
    }

    /// Slot `i` of the pool's order (past the end, it wraps: those collide).
    pub fn slot(&self, i: usize) -> Slot {
        let s = ((i % self.size) as u128 * self.multiplier as u128 + 12_345) % self.size as u128;
        let s = s as usize;
        let practitioner = s % self.practitioners;
        let rest = s / self.practitioners;
        let (day, quarter) = ((rest / QUARTERS) as i64, (rest % QUARTERS) as i64);
        Slot { practitioner, start: self.first_day + day * 86_400 + FIRST_HOUR * 3600 + quarter * SLOT_MINUTES * 60 }
    }

    /// The next free slot; or, `conflict_percent` times in 100, one that was
    /// just handed out (`true`: expect a refusal).
    pub fn take(&self, rng: &mut Rng, conflict_percent: u32) -> (Slot, bool) {
        let handed = self.cursor.load(Ordering::Relaxed);
        if handed > 0 && rng.percent(conflict_percent) {
            let back = 1 + rng.below(handed.min(8));
            return (self.slot(handed - back), true);
        }
        (self.slot(self.cursor.fetch_add(1, Ordering::Relaxed)), false)
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn first_day(&self) -> i64 {
        self.first_day
    }
}

/// Through which dialect an appointment was booked (and is read back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Embassy,
    Docplanner,
}

/// An appointment the bench booked (a 2xx answer).
#[derive(Debug, Clone)]
pub struct Booked {
    pub id: String,
    pub practitioner: usize,
    pub via: Via,
}

/// The Docplanner side of the tenant, set up when a Docplanner scenario runs.
pub struct Docplanner {
    /// `Bearer <token>`.
    pub authorization: String,
    /// `/api/v3/integration/facilities/{f}/doctors/{d}/addresses/{a}`, by practitioner.
    pub addresses: Vec<String>,
    /// The 15-minute address service of each address.
    pub services: Vec<String>,
}

/// The seeded tenant.
pub struct World {
    pub target: Target,
    pub embassy_key: String,
    /// Practitioner ids, by index.
    pub practitioners: Vec<String>,
    /// The healthcare service every practitioner is in.
    pub service: String,
    pub patients: Vec<String>,
    pub pool: Arc<SlotPool>,
    pub docplanner: Option<Docplanner>,
    /// Every appointment booked in this invocation.
    pub ledger: Vec<Booked>,
    /// Embassy appointments the `read` scenario picks from.
    pub read_set: Vec<Booked>,
    /// Docplanner bookings the `dp-read` scenario picks from.
    pub dp_read_set: Vec<Booked>,
    dp_client: (String, String),
    facility: String,
    addresses: Vec<String>,
    /// The tenant's seed key.
    pub tenant: String,
    /// The large dataset, when `--patients` / `--appointments` asked for one.
    pub bulk: Option<crate::bulk::Seeded>,
}

/// The setup's HTTP client (reqwest, on the caller's runtime): not measured.
pub struct Setup {
    pub http: reqwest::Client,
    pub admin_token: String,
}

impl Setup {
    fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.http.post(url)
    }
}

/// A Swedish national id (personnummer) born 1980-01-01, serial `n`, with
/// its Luhn check digit.
pub fn personnummer(n: usize) -> String {
    let body = format!("800101{:03}", n % 1000);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            d / 10 + d % 10
        })
        .sum();
    format!("19{body}{}", (10 - sum % 10) % 10)
}

async fn ok_json(r: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = r.status();
    let text = r.text().await.with_context(|| format!("{what}: reading the answer"))?;
    anyhow::ensure!(status.is_success(), "{what} answered {status}: {text}");
    if text.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_str(&text).with_context(|| format!("{what}: {text}"))
    }
}

fn location_id(r: &reqwest::Response) -> Option<String> {
    let l = r.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    Some(l.trim_end_matches('/').rsplit('/').next()?.to_owned())
}

impl World {
    /// Seeds a fresh tenant on `target` through the admin API, and creates
    /// its patients through Embassy.
    pub async fn seed(setup: &Setup, target: Target) -> anyhow::Result<World> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let tenant = format!("bench-{}", &run[..12]);
        let embassy_key = format!("bench-embassy-{run}");
        let dp_client = (format!("bench-dp-{}", &run[..12]), format!("bench-dp-secret-{run}"));
        let base = &target.base;
        let practitioners: Vec<Value> = (0..PRACTITIONERS)
            .map(|i| json!({"key": format!("p{i}"), "given": "Doc", "family": format!("Bench{i}"), "email": format!("p{i}.{run}@bench.test")}))
            .collect();
        let keys: Vec<String> = (0..PRACTITIONERS).map(|i| format!("p{i}")).collect();
        let addresses: Vec<Value> = (0..PRACTITIONERS)
            .map(|i| json!({"key": format!("a{i}"), "doctor": format!("p{i}"), "name": "Bench clinic", "street": "Bench 1", "city": "Warszawa"}))
            .collect();
        let seed = json!({
            "services": [{"id": "1", "name": "ablacja"}],
            "tenants": [{
                "key": tenant, "name": "Bench", "country": "SE", "language": "sv", "timezone": "UTC",
                "credentials": [{"dialect": "embassy", "api_key": embassy_key},
                                {"dialect": "docplanner", "client_id": dp_client.0, "client_secret": dp_client.1, "facilities": ["clinic"]}],
                "practitioners": practitioners,
                "healthcare_services": [{"key": "gp", "name": "GP", "practitioners": keys}],
                "facilities": [{"key": "clinic", "name": "Bench clinic", "addresses": addresses}]
            }]
        });
        let r = setup.post(format!("{base}/admin/seed")).bearer_auth(&setup.admin_token).json(&seed).send().await?;
        let ids = ok_json(r, "seeding the bench tenant (POST /admin/seed)").await?;
        let ids = &ids["tenants"][&tenant];
        let id = |kind: &str, key: String| -> anyhow::Result<String> {
            ids[kind][&key].as_str().map(str::to_owned).with_context(|| format!("no id for {kind} {key} in {ids}"))
        };
        let practitioners =
            (0..PRACTITIONERS).map(|i| id("practitioners", format!("p{i}"))).collect::<anyhow::Result<_>>()?;
        let addresses = (0..PRACTITIONERS).map(|i| id("addresses", format!("a{i}"))).collect::<anyhow::Result<_>>()?;
        let service = id("healthcare_services", "gp".into())?;
        let facility = id("facilities", "clinic".into())?;
        let mut patients = Vec::with_capacity(PATIENTS);
        for n in 0..PATIENTS {
            let r = setup
                .post(format!("{base}/embassy/Patient"))
                .header("X-Visiba-Care-API-Key", &embassy_key)
                .header("content-type", "application/fhir+json")
                .header("prefer", "return=minimal")
                .json(&json!({"resourceType": "Patient", "name": [{"given": ["Bench"], "family": format!("Patient{n}")}],
                              "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber",
                                              "value": personnummer(n)}]}))
                .send()
                .await?;
            let pid = location_id(&r);
            ok_json(r, "creating a patient (POST /embassy/Patient)").await?;
            patients.push(pid.context("creating a patient: no Location")?);
        }
        // The day after tomorrow, midnight UTC: clear of every booking notice
        // and of today's reminders.
        let today = jiff::Timestamp::now().as_second().div_euclid(86_400) * 86_400;
        Ok(World {
            target,
            embassy_key,
            practitioners,
            service,
            patients,
            pool: Arc::new(SlotPool::new(PRACTITIONERS, today + 2 * 86_400)),
            docplanner: None,
            ledger: Vec::new(),
            read_set: Vec::new(),
            dp_read_set: Vec::new(),
            dp_client,
            facility,
            addresses,
            tenant,
            bulk: None,
        })
    }

    /// Sets up the Docplanner side once: a token, one 15-minute address
    /// service per address, and work periods 08:00-20:00 UTC on every day
    /// of the pool.
    pub async fn docplanner(&mut self, setup: &Setup) -> anyhow::Result<&Docplanner> {
        if self.docplanner.is_none() {
            let base = &self.target.base;
            let token = setup
                .post(format!("{base}/oauth/v2/token"))
                .basic_auth(&self.dp_client.0, Some(&self.dp_client.1))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&scope=integration")
                .send()
                .await?;
            let token = ok_json(token, "a Docplanner token (POST /oauth/v2/token)").await?;
            let token = token["access_token"].as_str().context("no access_token")?.to_owned();
            let mut paths = Vec::with_capacity(PRACTITIONERS);
            let mut services = Vec::with_capacity(PRACTITIONERS);
            for (doctor, address) in self.practitioners.iter().zip(&self.addresses) {
                let at =
                    format!("/api/v3/integration/facilities/{}/doctors/{doctor}/addresses/{address}", self.facility);
                let r = setup
                    .post(format!("{base}{at}/services"))
                    .bearer_auth(&token)
                    .json(&json!({"service_id": "1", "price": 100}))
                    .send()
                    .await?;
                let service = location_id(&r);
                ok_json(r, "adding an address service").await?;
                let service = service.context("adding an address service: no Location")?;
                let periods: Vec<Value> = (0..DAYS as i64)
                    .map(|d| {
                        let day = self.pool.first_day() + d * 86_400;
                        json!({"start": rfc3339(day + FIRST_HOUR * 3600), "end": rfc3339(day + (FIRST_HOUR * 3600) + QUARTERS as i64 * SLOT_MINUTES * 60),
                               "address_services": [{"address_service_id": service, "duration": SLOT_MINUTES}]})
                    })
                    .collect();
                let r = setup
                    .http
                    .put(format!("{base}{at}/slots"))
                    .bearer_auth(&token)
                    .json(&json!({"slots": periods}))
                    .send()
                    .await?;
                ok_json(r, "replacing work periods (PUT .../slots)").await?;
                paths.push(at);
                services.push(service);
            }
            self.docplanner = Some(Docplanner { authorization: format!("Bearer {token}"), addresses: paths, services });
        }
        self.docplanner.as_ref().context("Docplanner set up")
    }
}

/// Unix seconds as `2030-01-02T08:00:00+00:00`.
pub fn rfc3339(s: i64) -> String {
    let t = jiff::Timestamp::from_second(s).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_pool_hands_out_every_slot_once() {
        let pool = SlotPool::new(PRACTITIONERS, 0);
        let mut seen = HashSet::new();
        let mut rng = Rng::new(1);
        for _ in 0..pool.size() {
            let (slot, injected) = pool.take(&mut rng, 0);
            assert!(!injected);
            assert!(slot.practitioner < PRACTITIONERS);
            let in_day = slot.start.rem_euclid(86_400);
            assert!((8 * 3600..20 * 3600).contains(&in_day) && in_day % 900 == 0, "{slot:?}");
            assert!(seen.insert(slot), "{slot:?} handed out twice");
        }
        // Past the end, the pool wraps (and such draws collide).
        assert!(seen.contains(&pool.take(&mut rng, 0).0));
    }

    #[test]
    fn injected_conflicts_aim_at_recent_slots() {
        let pool = SlotPool::new(PRACTITIONERS, 0);
        let mut rng = Rng::new(3);
        let recent: Vec<Slot> = (0..20).map(|_| pool.take(&mut rng, 0).0).collect();
        let (slot, injected) = pool.take(&mut rng, 100);
        assert!(injected);
        assert!(recent[12..].contains(&slot), "{slot:?}");
    }

    #[test]
    fn national_ids_carry_their_luhn_digit() {
        // The id the earlier bench used, known valid.
        assert_eq!(personnummer(123), "198001011231");
        assert_eq!(personnummer(0).len(), 12);
    }
}
