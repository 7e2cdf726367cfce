//! The `dp-slots` scenario: Docplanner `GET .../slots?with=slot.services`
//! of 30 days of one address whose calendar has work periods (08:00-20:00
//! UTC every day, 15-minute slots), breaks (12:00-12:30 every day) and
//! bookings (09:00 and 15:00 every day), all read by every connection. This
//! is the availability cache's case: one address read again and again, its
//! starts computed once per change and rendered once per window.
//!
//! Preparing it adds the breaks and bookings to the world's first
//! Docplanner address (60 of the pool's 187,200 slots: other booking
//! scenarios that draw them see a taken slot, as rarely as that).

use crate::load::{Conn, Load, Outcome, Target, path};
use crate::world::{SLOT_MINUTES, Setup, World, rfc3339};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use serde_json::json;

/// Days read.
pub const DAYS: i64 = 30;

/// What the scenario reports.
pub const WHAT: &str = "Docplanner GET .../slots?with=slot.services, 30 days of one address \
    (15-minute slots 08:00-20:00, a break and two bookings a day)";

/// Reads of one address's slots.
pub struct SlotReads {
    target: Target,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Adds the breaks and bookings to the first Docplanner address (set up
/// beforehand) and answers the scenario's load.
pub async fn prepare(setup: &Setup, world: &World) -> anyhow::Result<SlotReads> {
    let dp = world.docplanner.as_ref().context("Docplanner is not set up")?;
    let (at, service) = (&dp.addresses[0], &dp.services[0]);
    let base = &world.target.base;
    let first = world.pool.first_day();
    for d in 0..DAYS {
        let day = first + d * 86_400;
        let r = setup
            .http
            .post(format!("{base}{at}/breaks"))
            .header("authorization", &dp.authorization)
            .json(&json!({"since": rfc3339(day + 12 * 3600), "till": rfc3339(day + 12 * 3600 + 1800)}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "adding a break: {} {}", r.status(), r.text().await?);
        for hour in [9, 15] {
            let start = rfc3339(day + hour * 3600).replace('+', "%2B");
            let body = json!({"address_service_id": service, "duration": SLOT_MINUTES,
                "patient": {"name": "Bench", "surname": "Slots", "phone": "+48123123123"}});
            let r = setup
                .http
                .post(format!("{base}{at}/slots/{start}/book"))
                .header("authorization", &dp.authorization)
                .json(&body)
                .send()
                .await?;
            // A slot another scenario took already is as good as booked.
            let status = r.status();
            anyhow::ensure!(
                status.is_success() || status == reqwest::StatusCode::NOT_FOUND,
                "booking a slot: {status} {}",
                r.text().await?
            );
        }
    }
    let range = format!(
        "start={}&end={}&with=slot.services",
        rfc3339(first).replace('+', "%2B"),
        rfc3339(first + DAYS * 86_400).replace('+', "%2B")
    );
    let authorization = HeaderValue::from_str(&dp.authorization).context("the Docplanner token")?;
    Ok(SlotReads {
        target: world.target.clone(),
        uri: path(format!("{at}/slots?{range}"))?,
        headers: vec![(AUTHORIZATION, authorization)],
    })
}

impl Load for SlotReads {
    type Ctx = ();
    type Kept = ();

    fn request(&self, _: usize, _: &mut Conn) -> (Request<Full<Bytes>>, ()) {
        (self.target.request(Method::GET, self.uri.clone(), &self.headers, Bytes::new()), ())
    }

    fn answer(&self, _: (), status: StatusCode, _: &HeaderMap, body: &Bytes, _: &mut Vec<()>) -> Outcome {
        // A calendar that offers nothing would be a cheap answer, not the one measured.
        if status == StatusCode::OK && body.len() > 1024 { Outcome::Success } else { Outcome::Unexpected }
    }
}
