//! Docplanner rate limits, per API client (credential): GET requests per hour
//! (default 8000) and writes — POST, PUT, PATCH, DELETE — per minute (default
//! 40), each counted in a fixed window aligned to the server clock's hour or
//! minute (so `--test-clock` moves it).
//!
//! Every limited response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//! `X-RateLimit-Used` and `X-RateLimit-Reset` (the window's end, ISO 8601 in
//! the tenant's zone). Over the limit: 429 in the Docplanner error shape, with
//! `Retry-After`; refused requests are not counted. A limit of 0 turns that
//! limit off, and its headers with it.
//!
//! The counters live in memory, per node: a restart forgets them, and behind
//! a load balancer over N nodes a client may make up to N times the limit.
//! Counting in the database would turn every GET into a write.

use super::{Client, DocplannerError, format_time};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use polyclinic_http::AppState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The configured limits; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// GET (and HEAD, OPTIONS) requests per clock hour.
    pub get_per_hour: u32,
    /// POST, PUT, PATCH and DELETE requests per clock minute.
    pub writes_per_minute: u32,
}

impl Limits {
    /// Docplanner's documented defaults: 8000 GET per hour, 40 writes per minute.
    pub const DOCPLANNER: Limits = Limits { get_per_hour: 8000, writes_per_minute: 40 };
    /// No limits (and no headers).
    pub const OFF: Limits = Limits { get_per_hour: 0, writes_per_minute: 0 };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DOCPLANNER
    }
}

/// Which counter a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    used: u32,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decision {
    allowed: bool,
    limit: u32,
    used: u32,
    reset: i64,
}

/// The per-node counters; cheap to clone.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limits: Limits,
    windows: Arc<Mutex<HashMap<(i64, Bucket), Window>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(Limits::default())
    }
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(limits: Limits) -> Self {
        RateLimiter { limits, windows: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Counts one request of `credential` at `now`; `None` when the bucket has
    /// no limit.
    fn take(&self, credential: i64, bucket: Bucket, now: i64) -> Option<Decision> {
        let (limit, span) = match bucket {
            Bucket::Read => (self.limits.get_per_hour, 3600),
            Bucket::Write => (self.limits.writes_per_minute, 60),
        };
        if limit == 0 {
            return None;
        }
        let start = now - now.rem_euclid(span);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.entry((credential, bucket)).or_insert(Window { start, used: 0 });
        if w.start != start {
            *w = Window { start, used: 0 };
        }
        let allowed = w.used < limit;
        if allowed {
            w.used += 1;
        }
        Some(Decision { allowed, limit, used: w.used, reset: start + span })
    }
}

fn bucket_of(method: &Method) -> Bucket {
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        Bucket::Read
    } else {
        Bucket::Write
    }
}

/// The middleware: runs after authentication (it needs the [`Client`]).
pub async fn limit(State((state, limiter)): State<(AppState, RateLimiter)>, req: Request, next: Next) -> Response {
    let Some((credential, tz)) = req.extensions().get::<Client>().map(|c| (c.credential.id.get(), c.tenant.tz()))
    else {
        return next.run(req).await;
    };
    let now = state.now();
    let Some(d) = limiter.take(credential, bucket_of(req.method()), now.as_second()) else {
        return next.run(req).await;
    };
    let mut response = if d.allowed {
        next.run(req).await
    } else {
        let mut r = DocplannerError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from((d.reset - now.as_second()).max(1)));
        r
    };
    let reset = Timestamp::from_second(d.reset).map(|t| format_time(t, &tz)).unwrap_or_default();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", (d.limit - d.used).to_string()),
        ("x-ratelimit-used", d.used.to_string()),
        ("x-ratelimit-reset", reset),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_refusals_are_not_counted() {
        let l = RateLimiter::new(Limits { get_per_hour: 2, writes_per_minute: 1 });
        let t = 1_900_000_000 - 1_900_000_000 % 3600 + 10; // 10 s into an hour
        let a = l.take(1, Bucket::Read, t).unwrap();
        assert_eq!((a.allowed, a.used, a.reset), (true, 1, t - 10 + 3600));
        assert!(l.take(1, Bucket::Read, t + 1).unwrap().allowed);
        let refused = l.take(1, Bucket::Read, t + 2).unwrap();
        assert_eq!((refused.allowed, refused.used), (false, 2));
        assert!(l.take(2, Bucket::Read, t).unwrap().allowed, "per client");
        assert!(l.take(1, Bucket::Write, t).unwrap().allowed, "writes count apart");
        assert!(!l.take(1, Bucket::Write, t + 5).unwrap().allowed);
        assert!(l.take(1, Bucket::Write, t - 10 + 60).unwrap().allowed, "a new minute");
        assert!(l.take(1, Bucket::Read, t - 10 + 3600).unwrap().allowed, "a new hour");
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let l = RateLimiter::new(Limits { get_per_hour: 0, writes_per_minute: 5 });
        assert_eq!(l.take(1, Bucket::Read, 0), None);
        assert!(l.take(1, Bucket::Write, 0).is_some());
    }
}
