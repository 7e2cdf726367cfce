//! The search scenarios (issue 15, "Search at 1 M appointments"): Embassy
//! `GET /embassy/Appointment` searches, each request a random key of the
//! world's own data, so they measure real result pages on the normal world
//! (the read set booked beforehand) and on the large one (`--patients N
//! --appointments M`, whose history lies in the weeks before the pool).
//!
//! | scenario | request |
//! |---|---|
//! | `search-service` | `healthcareServiceId` over one week (`start`/`end`), a random week holding appointments |
//! | `search-patient` | `patientId`, a random patient |
//! | `search-practitioner` | `practitionerId` over one week, a random practitioner and week |
//! | `search-phone` | `patientPhone`, a random patient's number, as `+46...` or `0046...` |
//!
//! Preparing `search-phone` on the normal world gives the world's patients
//! a phone number (`+4671` and the patient's index) through Embassy's
//! `PATCH /Patient/{id}`; the large world's patients have `+4670` and their
//! index already, and a sample of them is looked up by that number for
//! `search-patient`.

use crate::load::{Conn, Load, Outcome, Target, path};
use crate::world::{PRACTITIONERS, QUARTERS, Setup, World, rfc3339};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use serde_json::{Value, json};

const API_KEY: HeaderName = HeaderName::from_static("x-visiba-care-api-key");
const PATIENT_PHONE: &str = "http://schema.visibacare.com/identifier/patient/phonenumber";
/// Large-world patients sampled for `search-patient` and `search-phone`.
const SAMPLE: usize = 256;
const WEEK: i64 = 7 * 86_400;

/// Which search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Service,
    Patient,
    Practitioner,
    Phone,
}

impl Kind {
    /// What the scenario reports.
    pub fn what(self) -> &'static str {
        match self {
            Kind::Service => "Embassy GET /embassy/Appointment?healthcareServiceId&start&end, one week",
            Kind::Patient => "Embassy GET /embassy/Appointment?patientId, a random patient",
            Kind::Practitioner => "Embassy GET /embassy/Appointment?practitionerId&start&end, one week",
            Kind::Phone => "Embassy GET /embassy/Appointment?patientPhone, a random patient's number",
        }
    }
}

/// Searches over a fixed list of request paths, picked at random.
pub struct Searches {
    target: Target,
    uris: Vec<Uri>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The weeks (their first second) holding the world's appointments: the
/// large world's history before the pool, else the pool's weeks.
fn weeks(world: &World) -> Vec<i64> {
    let first = world.pool.first_day();
    match &world.bulk {
        Some(b) => {
            // The history runs back day by day from two days before the pool.
            let per_day = PRACTITIONERS * QUARTERS;
            let days = b.size.appointments.div_ceil(per_day).max(1) as i64;
            let end = first - 2 * 86_400;
            (1..=(days / 7).clamp(1, 52)).map(|k| end - k * WEEK).collect()
        }
        None => (0..(crate::world::DAYS as i64 / 7)).map(|k| first + k * WEEK).collect(),
    }
}

fn range(week: i64) -> String {
    format!("start={}&end={}", rfc3339(week).replace('+', "%2B"), rfc3339(week + WEEK).replace('+', "%2B"))
}

/// The patient number `n` of the normal world is given.
fn world_phone(n: usize) -> String {
    format!("+4671{n:07}")
}

/// The number of large-world patient `n` (`crate::bulk`).
fn bulk_phone(n: usize) -> String {
    format!("+4670{n:07}")
}

/// A spread of large-world patient indexes.
fn sample(patients: usize) -> Vec<usize> {
    let n = patients.min(SAMPLE);
    (0..n).map(|i| i * patients / n).collect()
}

/// Prepares `kind` on `world` and answers its load.
pub async fn prepare(setup: &Setup, world: &World, kind: Kind) -> anyhow::Result<Searches> {
    let key = HeaderValue::from_str(&world.embassy_key).context("the Embassy key")?;
    let base = &world.target.base;
    let bulk_patients = world.bulk.as_ref().map(|b| b.size.patients).filter(|n| *n > 0);
    let paths: Vec<String> = match kind {
        Kind::Service => {
            weeks(world).into_iter().map(|w| format!("healthcareServiceId={}&{}", world.service, range(w))).collect()
        }
        Kind::Practitioner => weeks(world)
            .into_iter()
            .flat_map(|w| world.practitioners.iter().map(move |p| format!("practitionerId={p}&{}", range(w))))
            .collect(),
        Kind::Patient => match bulk_patients {
            None => world.patients.iter().map(|p| format!("patientId={p}")).collect(),
            Some(n) => {
                let mut out = Vec::new();
                for i in sample(n) {
                    let phone = bulk_phone(i).replace('+', "%2B");
                    let r = setup
                        .http
                        .get(format!("{base}/embassy/Patient?identifier={PATIENT_PHONE}|{phone}"))
                        .header("X-Visiba-Care-API-Key", &world.embassy_key)
                        .send()
                        .await?;
                    anyhow::ensure!(r.status().is_success(), "looking up a patient by phone: {}", r.status());
                    let found: Value = r.json().await?;
                    let id = found["entry"][0]["resource"]["id"].as_str().context("a large-world patient by phone")?;
                    out.push(format!("patientId={id}"));
                }
                out
            }
        },
        Kind::Phone => {
            let phones: Vec<String> = match bulk_patients {
                Some(n) => sample(n).into_iter().map(bulk_phone).collect(),
                None => {
                    for (n, id) in world.patients.iter().enumerate() {
                        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
                            {"name": "type", "valueCode": "replace"},
                            {"name": "path", "valueString": "/phoneNumber"},
                            {"name": "value", "valueString": world_phone(n)}]}]});
                        let r = setup
                            .http
                            .patch(format!("{base}/embassy/Patient/{id}"))
                            .header("X-Visiba-Care-API-Key", &world.embassy_key)
                            .header("content-type", "application/fhir+json")
                            .json(&body)
                            .send()
                            .await?;
                        let status = r.status();
                        anyhow::ensure!(status.is_success(), "giving a patient a phone: {status} {}", r.text().await?);
                    }
                    (0..world.patients.len()).map(world_phone).collect()
                }
            };
            // Half as E.164 (the `+` escaped), half with `00` for the `+`.
            phones
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let form = if i % 2 == 0 { p.replace('+', "%2B") } else { p.replace('+', "00") };
                    format!("patientPhone={form}")
                })
                .collect()
        }
    };
    anyhow::ensure!(!paths.is_empty(), "{kind:?}: no search keys in the world");
    // The searches must find something: empty answers are not what is measured.
    let mut found = false;
    for probe in paths.iter().take(20) {
        let r = setup
            .http
            .get(format!("{base}/embassy/Appointment?{probe}"))
            .header("X-Visiba-Care-API-Key", &world.embassy_key)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.with_context(|| format!("{kind:?}: a probe answered {status}"))?;
        anyhow::ensure!(status.is_success(), "{kind:?}: a probe search answered {status}: {body}");
        if body["entry"].as_array().is_some_and(|e| !e.is_empty()) {
            found = true;
            break;
        }
    }
    anyhow::ensure!(found, "{kind:?}: the probe searches found nothing; is the read set booked?");
    let uris = paths.iter().map(|p| path(format!("/embassy/Appointment?{p}"))).collect::<anyhow::Result<_>>()?;
    Ok(Searches { target: world.target.clone(), uris, headers: vec![(API_KEY, key)] })
}

impl Load for Searches {
    type Ctx = ();
    type Kept = ();

    fn request(&self, _: usize, conn: &mut Conn) -> (Request<Full<Bytes>>, ()) {
        let uri = &self.uris[conn.rng.below(self.uris.len())];
        (self.target.request(Method::GET, uri.clone(), &self.headers, Bytes::new()), ())
    }

    fn answer(&self, _: (), status: StatusCode, _: &HeaderMap, _: &Bytes, _: &mut Vec<()>) -> Outcome {
        if status == StatusCode::OK { Outcome::Success } else { Outcome::Unexpected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_spreads_over_every_patient() {
        assert_eq!(sample(3), vec![0, 1, 2]);
        let s = sample(100_000);
        assert_eq!((s.len(), s[0], s[1]), (SAMPLE, 0, 390));
        assert!(s.iter().all(|n| *n < 100_000));
    }

    #[test]
    fn phones_are_the_forms_the_worlds_hold() {
        assert_eq!(bulk_phone(42), "+46700000042");
        assert_eq!(world_phone(7), "+46710000007");
    }
}
