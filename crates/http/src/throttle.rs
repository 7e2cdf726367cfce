//! Failed authentications, throttled: a caller that presents wrong
//! credentials too often is refused for the rest of the window, before its
//! credentials are even looked at, so secrets cannot be guessed at speed.
//!
//! Failures are counted per *subject* in fixed windows of the server clock
//! (so `--test-clock` moves them):
//!
//! | subject | counted on | default |
//! |---|---|---|
//! | a Docplanner client id | `/oauth/v2/token` with a wrong secret or unknown id | 10 failures a minute |
//! | a remote address (IPv6 by /64) | every failed authentication of every dialect and the admin API | 50 failures a minute |
//!
//! Once a subject reaches its limit, every request of that subject answers
//! 429 in the dialect's own shape with `Retry-After` until its window ends,
//! even one with the right credentials: a lockout that let correct guesses
//! through would still answer the guessing. Successful authentications are
//! not counted.
//!
//! The counters live in memory, per node, like the Docplanner rate limits.
//! Behind a reverse proxy every caller shares the proxy's address; the
//! per-address limit then applies to all of them together.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A remote address; IPv6 addresses count by their /64 network, and
    /// IPv4-mapped IPv6 addresses as the IPv4 address.
    Address(IpAddr),
    /// An OAuth client id (Docplanner).
    Client(String),
}

impl Subject {
    /// The subject of a peer address.
    pub fn address(peer: SocketAddr) -> Subject {
        Subject::Address(match peer.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut s = v6.segments();
                    s[4..].fill(0);
                    IpAddr::V6(s.into())
                }
            },
            v4 => v4,
        })
    }
}

/// The limits; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Failures of one client id per window.
    pub per_client: u32,
    /// Failures from one remote address per window.
    pub per_address: u32,
    /// The window, in seconds.
    pub window_seconds: i64,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits { per_client: 10, per_address: 50, window_seconds: 60 }
    }
}

/// Most subjects tracked at once; past it, expired windows are dropped, and
/// if that is not enough, new client ids are no longer tracked (addresses
/// still are, and they bound what one caller can try).
const MAX_SUBJECTS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    failures: u32,
}

/// The per-node failure counters; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AuthThrottle {
    limits: ThrottleLimits,
    windows: Arc<Mutex<HashMap<Subject, Window>>>,
}

impl AuthThrottle {
    /// A throttle with these limits.
    pub fn new(limits: ThrottleLimits) -> Self {
        AuthThrottle { limits, windows: Arc::default() }
    }

    fn limit(&self, subject: &Subject) -> u32 {
        match subject {
            Subject::Address(_) => self.limits.per_address,
            Subject::Client(_) => self.limits.per_client,
        }
    }

    fn window_start(&self, now: i64) -> i64 {
        let span = self.limits.window_seconds.max(1);
        now - now.rem_euclid(span)
    }

    /// `Err(retry_after_seconds)` when any of `subjects` has used up its
    /// failures in the current window.
    pub fn check(&self, subjects: &[Subject], now: i64) -> Result<(), i64> {
        let start = self.window_start(now);
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for s in subjects {
            let limit = self.limit(s);
            if limit == 0 {
                continue;
            }
            if let Some(w) = windows.get(s)
                && w.start == start
                && w.failures >= limit
            {
                return Err((start.saturating_add(self.limits.window_seconds.max(1)) - now).max(1));
            }
        }
        Ok(())
    }

    /// Counts one failed authentication against each of `subjects`.
    pub fn failed(&self, subjects: &[Subject], now: i64) {
        let start = self.window_start(now);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_SUBJECTS {
            windows.retain(|_, w| w.start == start);
        }
        for s in subjects {
            if self.limit(s) == 0 {
                continue;
            }
            if windows.len() >= MAX_SUBJECTS && matches!(s, Subject::Client(_)) && !windows.contains_key(s) {
                continue;
            }
            let w = windows.entry(s.clone()).or_insert(Window { start, failures: 0 });
            if w.start != start {
                *w = Window { start, failures: 0 };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }
}

/// The caller's address, when the server was started with connection info
/// (a router called directly, without a listener, has none).
pub fn peer_in(extensions: &axum::http::Extensions) -> Option<Subject> {
    extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| Subject::address(c.0))
}

/// The caller's address, from a whole request.
pub fn peer_of(req: &axum::extract::Request) -> Option<Subject> {
    peer_in(req.extensions())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Subject {
        Subject::address(s.parse().unwrap())
    }

    #[test]
    fn a_subject_is_locked_after_its_failures_until_the_window_ends() {
        let t = AuthThrottle::new(ThrottleLimits { per_client: 2, per_address: 3, window_seconds: 60 });
        let now = 1_900_000_020;
        let start = now - now % 60;
        let client = [Subject::Client("dp".into())];
        assert_eq!(t.check(&client, now), Ok(()));
        t.failed(&client, now);
        assert_eq!(t.check(&client, now), Ok(()));
        t.failed(&client, now + 1);
        assert_eq!(t.check(&client, now + 2), Err(start + 60 - (now + 2)));
        assert_eq!(t.check(&[Subject::Client("other".into())], now), Ok(()), "per client id");
        assert_eq!(t.check(&client, start + 60), Ok(()), "a new window");
    }

    #[test]
    fn addresses_count_apart_from_clients_and_ipv6_by_network() {
        let t = AuthThrottle::new(ThrottleLimits { per_client: 100, per_address: 2, window_seconds: 60 });
        t.failed(&[addr("[2001:db8:1:2:aaaa::1]:1000")], 0);
        t.failed(&[addr("[2001:db8:1:2:bbbb::2]:2000")], 0);
        assert!(t.check(&[addr("[2001:db8:1:2::9]:1")], 1).is_err(), "one /64");
        assert!(t.check(&[addr("[2001:db8:1:3::9]:1")], 1).is_ok(), "another /64");
        t.failed(&[addr("[::ffff:10.0.0.1]:1")], 0);
        t.failed(&[addr("10.0.0.1:2")], 0);
        assert!(t.check(&[addr("10.0.0.1:3")], 1).is_err(), "mapped IPv4 is the IPv4 address");
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let t = AuthThrottle::new(ThrottleLimits { per_client: 0, per_address: 1, window_seconds: 60 });
        let c = [Subject::Client("dp".into())];
        for _ in 0..5 {
            t.failed(&c, 0);
        }
        assert_eq!(t.check(&c, 0), Ok(()));
    }
}
