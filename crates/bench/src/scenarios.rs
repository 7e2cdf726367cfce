//! The scenarios' requests and how their answers count, and the check after
//! every booking scenario: every booked appointment read back through the
//! API, and no two of one practitioner overlapping.
//!
//! | scenario | request | success | expected conflict |
//! |---|---|---|---|
//! | `baseline` | `GET /` on the bare route | 200 | — |
//! | `read` | Embassy `GET /embassy/Appointment/{id}`, random of the read set | 200 | — |
//! | `dp-read` | Docplanner `GET .../bookings/{id}`, random of its read set | 200 | — |
//! | `book` | Embassy `POST /embassy/Appointment`, `Prefer: return=minimal` | 201 | 422 `AllPractionersAreNotAvailable` |
//! | `dp-book` | Docplanner `POST .../slots/{start}/book`, 15 minutes | 2xx | 404 "Requested target slot ... not found" |
//! | `dp-slots` | Docplanner `GET .../slots?with=slot.services`, 30 days of one address (`slots.rs`) | 200 | — |

use crate::load::{Conn, Load, Outcome, Target, path};
use crate::world::{Booked, SLOT_MINUTES, Slot, SlotPool, Via, World, rfc3339};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const API_KEY: HeaderName = HeaderName::from_static("x-visiba-care-api-key");
const PREFER: HeaderName = HeaderName::from_static("prefer");
const PRACTITIONER_VISIBA: &str = "http://schema.visibacare.com/identifier/practitioner/visibaid";
const PATIENT_VISIBA: &str = "http://schema.visibacare.com/identifier/patient/visibaid";
const SERVICE_VISIBA: &str = "http://schema.visibacare.com/identifier/healthcaresservice/visibaid";

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("invalid"))
}

/// GETs of a fixed list of paths, picked at random; 200 is a success.
pub struct Gets {
    target: Target,
    uris: Vec<Uri>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Gets {
    /// The bare route of the `baseline`.
    pub fn baseline(target: &Target) -> anyhow::Result<Gets> {
        Ok(Gets { target: target.clone(), uris: vec![path("/")?], headers: Vec::new() })
    }

    /// Embassy reads of the read set.
    pub fn embassy(world: &World) -> anyhow::Result<Gets> {
        let uris =
            world.read_set.iter().map(|b| path(format!("/embassy/Appointment/{}", b.id))).collect::<Result<_, _>>()?;
        Ok(Gets { target: world.target.clone(), uris, headers: vec![(API_KEY, header(&world.embassy_key))] })
    }

    /// Docplanner reads of its read set.
    pub fn docplanner(world: &World) -> anyhow::Result<Gets> {
        let dp = world.docplanner.as_ref().ok_or_else(|| anyhow::anyhow!("Docplanner is not set up"))?;
        let uris = world
            .dp_read_set
            .iter()
            .map(|b| path(format!("{}/bookings/{}", dp.addresses[b.practitioner], b.id)))
            .collect::<Result<_, _>>()?;
        Ok(Gets { target: world.target.clone(), uris, headers: vec![(AUTHORIZATION, header(&dp.authorization))] })
    }
}

impl Load for Gets {
    type Ctx = ();
    type Kept = ();

    fn request(&self, _: usize, conn: &mut Conn) -> (Request<Full<Bytes>>, ()) {
        let uri = if self.uris.len() == 1 { &self.uris[0] } else { &self.uris[conn.rng.below(self.uris.len())] };
        (self.target.request(Method::GET, uri.clone(), &self.headers, Bytes::new()), ())
    }

    fn answer(&self, _: (), status: StatusCode, _: &HeaderMap, _: &Bytes, _: &mut Vec<()>) -> Outcome {
        if status == StatusCode::OK { Outcome::Success } else { Outcome::Unexpected }
    }
}

/// Embassy bookings (`book`): practitioner and start from the slot pool, a
/// random patient, the one healthcare service.
pub struct EmbassyBook {
    target: Target,
    world: Arc<BookingWorld>,
    headers: Vec<(HeaderName, HeaderValue)>,
    uri: Uri,
    conflict_percent: u32,
}

/// What the booking loads need of the world, shared with their threads.
pub struct BookingWorld {
    pub pool: Arc<SlotPool>,
    pub practitioners: Vec<String>,
    pub patients: Vec<String>,
    pub service: String,
    /// Docplanner: address paths and address services, by practitioner.
    pub dp_addresses: Vec<String>,
    pub dp_services: Vec<String>,
    pub dp_authorization: String,
}

impl World {
    /// What the booking loads share with the generator's threads.
    pub fn booking_world(&self) -> Arc<BookingWorld> {
        let dp = self.docplanner.as_ref();
        Arc::new(BookingWorld {
            pool: self.pool.clone(),
            practitioners: self.practitioners.clone(),
            patients: self.patients.clone(),
            service: self.service.clone(),
            dp_addresses: dp.map(|d| d.addresses.clone()).unwrap_or_default(),
            dp_services: dp.map(|d| d.services.clone()).unwrap_or_default(),
            dp_authorization: dp.map(|d| d.authorization.clone()).unwrap_or_default(),
        })
    }
}

impl EmbassyBook {
    pub fn new(world: &World, shared: Arc<BookingWorld>, conflict_percent: u32) -> anyhow::Result<EmbassyBook> {
        Ok(EmbassyBook {
            target: world.target.clone(),
            world: shared,
            headers: vec![
                (API_KEY, header(&world.embassy_key)),
                (CONTENT_TYPE, HeaderValue::from_static("application/fhir+json")),
                (PREFER, HeaderValue::from_static("return=minimal")),
            ],
            uri: path("/embassy/Appointment")?,
            conflict_percent,
        })
    }
}

/// The slot a booking asked for, and whether a refusal is expected.
pub struct Asked {
    slot: Slot,
}

impl Load for EmbassyBook {
    type Ctx = Asked;
    type Kept = Booked;

    fn request(&self, _: usize, conn: &mut Conn) -> (Request<Full<Bytes>>, Asked) {
        let w = &self.world;
        let (slot, injected) = w.pool.take(&mut conn.rng, self.conflict_percent);
        // A collision aims 5 minutes late: it overlaps the slot it races
        // and the next one, and tests the guard with unequal intervals.
        let start = slot.start + if injected { 300 } else { 0 };
        let end = start + SLOT_MINUTES * 60;
        let patient = &w.patients[conn.rng.below(w.patients.len())];
        let body = format!(
            r#"{{"resourceType":"Appointment","status":"booked","start":"{}","end":"{}","participant":[{{"type":[{{"coding":[{{"code":"PPRF"}}]}}],"actor":{{"type":"Practitioner","identifier":{{"system":"{PRACTITIONER_VISIBA}","value":"{}"}}}}}},{{"actor":{{"type":"Patient","identifier":{{"system":"{PATIENT_VISIBA}","value":"{patient}"}}}}}},{{"actor":{{"type":"HealthcareService","identifier":{{"system":"{SERVICE_VISIBA}","value":"{}"}}}}}}]}}"#,
            utc(start),
            utc(end),
            w.practitioners[slot.practitioner],
            w.service,
        );
        (self.target.request(Method::POST, self.uri.clone(), &self.headers, Bytes::from(body)), Asked { slot })
    }

    fn answer(
        &self,
        asked: Asked,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
        kept: &mut Vec<Booked>,
    ) -> Outcome {
        if status == StatusCode::CREATED {
            let id = headers
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                .filter(|id| !id.is_empty());
            return match id {
                Some(id) => {
                    kept.push(Booked { id: id.to_owned(), practitioner: asked.slot.practitioner, via: Via::Embassy });
                    Outcome::Success
                }
                None => Outcome::Unexpected,
            };
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY && contains(body, b"AllPractionersAreNotAvailable") {
            return Outcome::Conflict;
        }
        Outcome::Unexpected
    }
}

/// Docplanner bookings (`dp-book`): `POST .../slots/{start}/book` at a slot
/// of the pool, a new patient each time.
pub struct DocplannerBook {
    target: Target,
    world: Arc<BookingWorld>,
    headers: Vec<(HeaderName, HeaderValue)>,
    conflict_percent: u32,
}

impl DocplannerBook {
    pub fn new(world: &World, shared: Arc<BookingWorld>, conflict_percent: u32) -> DocplannerBook {
        let headers = vec![
            (AUTHORIZATION, header(&shared.dp_authorization)),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        ];
        DocplannerBook { target: world.target.clone(), world: shared, headers, conflict_percent }
    }
}

impl Load for DocplannerBook {
    type Ctx = Asked;
    type Kept = Booked;

    fn request(&self, ticket: usize, conn: &mut Conn) -> (Request<Full<Bytes>>, Asked) {
        let w = &self.world;
        // Docplanner books on the computed grid only: a collision takes the same start.
        let (slot, _) = w.pool.take(&mut conn.rng, self.conflict_percent);
        let uri =
            format!("{}/slots/{}/book", w.dp_addresses[slot.practitioner], rfc3339(slot.start).replace('+', "%2B"));
        let n = ticket % 10_000_000;
        let body = format!(
            r#"{{"address_service_id":"{}","duration":{SLOT_MINUTES},"patient":{{"name":"Bench","surname":"Patient{n}","phone":"+4670{n:07}"}}}}"#,
            w.dp_services[slot.practitioner]
        );
        let uri = path(uri).unwrap_or_else(|_| Uri::from_static("/invalid"));
        (self.target.request(Method::POST, uri, &self.headers, Bytes::from(body)), Asked { slot })
    }

    fn answer(&self, asked: Asked, status: StatusCode, _: &HeaderMap, body: &Bytes, kept: &mut Vec<Booked>) -> Outcome {
        if status.is_success() {
            let id = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["id"].as_str().map(str::to_owned));
            return match id {
                Some(id) => {
                    kept.push(Booked { id, practitioner: asked.slot.practitioner, via: Via::Docplanner });
                    Outcome::Success
                }
                None => Outcome::Unexpected,
            };
        }
        if status == StatusCode::NOT_FOUND && contains(body, b"Requested target slot") {
            return Outcome::Conflict;
        }
        Outcome::Unexpected
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `2030-01-02T08:15:00Z`.
fn utc(s: i64) -> String {
    jiff::Timestamp::from_second(s).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_string()
}

// ------------------------------------------------------------ the read-back

/// One booked appointment as the API shows it on reading it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    pub practitioner: String,
    pub start: i64,
    pub end: i64,
    /// Whether it still holds its time (not cancelled or moved).
    pub active: bool,
}

/// Reads back a list of booked appointments, each through the dialect that
/// booked it (run with [`crate::load::Stop::Count`] of the list's length:
/// ticket `i` reads entry `i`).
pub struct ReadBack {
    target: Target,
    entries: Vec<(Uri, Booked)>,
    embassy: Vec<(HeaderName, HeaderValue)>,
    docplanner: Vec<(HeaderName, HeaderValue)>,
    practitioners: Vec<String>,
}

impl ReadBack {
    pub fn new(world: &World) -> anyhow::Result<ReadBack> {
        let dp = world.docplanner.as_ref();
        let mut entries = Vec::with_capacity(world.ledger.len());
        for b in &world.ledger {
            let uri = match (b.via, dp) {
                (Via::Embassy, _) => path(format!("/embassy/Appointment/{}", b.id))?,
                (Via::Docplanner, Some(dp)) => path(format!("{}/bookings/{}", dp.addresses[b.practitioner], b.id))?,
                (Via::Docplanner, None) => anyhow::bail!("a Docplanner booking without Docplanner set up"),
            };
            entries.push((uri, b.clone()));
        }
        Ok(ReadBack {
            target: world.target.clone(),
            entries,
            embassy: vec![(API_KEY, header(&world.embassy_key))],
            docplanner: dp.map(|dp| vec![(AUTHORIZATION, header(&dp.authorization))]).unwrap_or_default(),
            practitioners: world.practitioners.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What a read-back found.
pub enum ReadResult {
    Seen(Seen),
    /// A booked appointment that did not read back (status, id, body).
    Missing(u16, String, String),
}

impl Load for ReadBack {
    type Ctx = usize;
    type Kept = ReadResult;

    fn request(&self, ticket: usize, _: &mut Conn) -> (Request<Full<Bytes>>, usize) {
        let (uri, b) = &self.entries[ticket % self.entries.len()];
        let headers = if b.via == Via::Embassy { &self.embassy } else { &self.docplanner };
        (self.target.request(Method::GET, uri.clone(), headers, Bytes::new()), ticket)
    }

    fn answer(
        &self,
        ticket: usize,
        status: StatusCode,
        _: &HeaderMap,
        body: &Bytes,
        kept: &mut Vec<ReadResult>,
    ) -> Outcome {
        let (_, b) = &self.entries[ticket % self.entries.len()];
        let parsed = if status == StatusCode::OK {
            serde_json::from_slice::<Value>(body).ok().and_then(|v| match b.via {
                Via::Embassy => seen_embassy(&v),
                Via::Docplanner => seen_docplanner(&v, &self.practitioners[b.practitioner]),
            })
        } else {
            None
        };
        match parsed {
            Some(seen) => {
                kept.push(ReadResult::Seen(seen));
                Outcome::Success
            }
            None => {
                kept.push(ReadResult::Missing(
                    status.as_u16(),
                    b.id.clone(),
                    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
                ));
                Outcome::Unexpected
            }
        }
    }
}

fn instant(v: &Value) -> Option<i64> {
    v.as_str()?.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// An Embassy Appointment: its primary performer, start and end.
fn seen_embassy(v: &Value) -> Option<Seen> {
    let practitioner = v["participant"].as_array()?.iter().find_map(|p| {
        let actor = &p["actor"];
        (actor["type"] == "Practitioner" && actor["identifier"]["system"] == PRACTITIONER_VISIBA)
            .then(|| actor["identifier"]["value"].as_str().map(str::to_owned))
            .flatten()
    })?;
    Some(Seen {
        id: v["id"].as_str()?.to_owned(),
        practitioner,
        start: instant(&v["start"])?,
        end: instant(&v["end"])?,
        active: !matches!(v["status"].as_str(), Some("cancelled" | "noshow" | "entered-in-error")),
    })
}

/// A Docplanner booking (the doctor is the one of the address it was read under).
fn seen_docplanner(v: &Value, practitioner: &str) -> Option<Seen> {
    Some(Seen {
        id: v["id"].as_str()?.to_owned(),
        practitioner: practitioner.to_owned(),
        start: instant(&v["start_at"])?,
        end: instant(&v["end_at"])?,
        active: v["status"].as_str() == Some("booked"),
    })
}

/// Every pair of active appointments of one practitioner whose times
/// overlap (`[start, end)` intervals): empty when the guard held.
pub fn overlaps(seen: &[Seen]) -> Vec<(Seen, Seen)> {
    let mut by_practitioner: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.active) {
        by_practitioner.entry(&s.practitioner).or_default().push(s);
    }
    let mut found = Vec::new();
    for list in by_practitioner.values_mut() {
        list.sort_by_key(|s| (s.start, s.end));
        // The latest-ending appointment so far: an appointment starting before
        // its end overlaps it (whatever lies between them).
        let mut reach: Option<&Seen> = None;
        for &s in list.iter() {
            if let Some(r) = reach
                && s.start < r.end
            {
                found.push((r.clone(), s.clone()));
            }
            if reach.is_none_or(|r| s.end > r.end) {
                reach = Some(s);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seen(id: &str, practitioner: &str, start: i64, end: i64) -> Seen {
        Seen { id: id.into(), practitioner: practitioner.into(), start, end, active: true }
    }

    #[test]
    fn touching_appointments_do_not_overlap() {
        let list = [seen("1", "p", 0, 900), seen("2", "p", 900, 1800), seen("3", "q", 0, 900)];
        assert!(overlaps(&list).is_empty());
    }

    #[test]
    fn overlaps_of_one_practitioner_are_found() {
        let list = [seen("1", "p", 0, 900), seen("2", "p", 300, 1200), seen("3", "q", 300, 1200)];
        let found = overlaps(&list);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0.id.as_str(), found[0].1.id.as_str()), ("1", "2"));
    }

    #[test]
    fn a_long_appointment_overlaps_one_that_starts_after_a_short_one() {
        let list = [seen("long", "p", 0, 3600), seen("short", "p", 100, 200), seen("later", "p", 1800, 2700)];
        let ids: Vec<_> = overlaps(&list).into_iter().map(|(a, b)| (a.id, b.id)).collect();
        assert_eq!(ids, vec![("long".to_owned(), "short".to_owned()), ("long".to_owned(), "later".to_owned())]);
    }

    #[test]
    fn cancelled_appointments_hold_no_time() {
        let mut gone = seen("1", "p", 0, 900);
        gone.active = false;
        assert!(overlaps(&[gone, seen("2", "p", 0, 900)]).is_empty());
    }

    #[test]
    fn read_backs_are_parsed_from_both_dialects() {
        let embassy = json!({"resourceType": "Appointment", "id": "7", "status": "booked",
            "start": "2030-01-02T08:00:00Z", "end": "2030-01-02T08:15:00Z",
            "participant": [{"actor": {"type": "Patient", "identifier": {"system": PATIENT_VISIBA, "value": "3"}}},
                            {"type": [{"coding": [{"code": "PPRF"}]}], "actor": {"type": "Practitioner", "identifier": {"system": PRACTITIONER_VISIBA, "value": "12"}}}]});
        let s = seen_embassy(&embassy).expect("parsed");
        assert_eq!((s.id.as_str(), s.practitioner.as_str(), s.end - s.start, s.active), ("7", "12", 900, true));
        let dp = json!({"id": "8", "status": "booked", "start_at": "2030-01-02T09:00:00+01:00", "end_at": "2030-01-02T09:15:00+01:00"});
        let d = seen_docplanner(&dp, "12").expect("parsed");
        assert_eq!((d.start, d.end - d.start), (s.start, 900));
    }
}
