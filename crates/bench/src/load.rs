//! The load generator: N keep-alive HTTP/1.1 connections
//! (`hyper::client::conn::http1`), each one task sending its next request as
//! soon as the previous answer is read (closed loop, as `wrk` does), for a
//! warm-up and then a measured window, or for a fixed count of requests.
//!
//! It runs on threads of its own, one `current_thread` tokio runtime per
//! thread with its share of the connections, never on the server's runtime:
//! a connection task and the HTTP connection it drives stay on one thread
//! (no cross-thread wake-ups per request, as `wrk`'s one event loop per
//! thread), and the server's work-stealing workers never run the
//! generator's tasks (nor wait behind them). Both share the machine's cores
//! through the kernel's scheduler, as a separate `wrk` process would.
//!
//! The connection's own future is polled in the same task as its requests
//! (`select!`), so that a request costs no task switch. A request is built by
//! a [`Load`], which also judges each answer and may keep something from it
//! (the id of a booking). Only answers completed inside the measured window
//! are counted; [`Load::answer`] sees every answer (a booking made during the
//! warm-up is read back too).

use crate::stats::Tally;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The server the load goes to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    pub addr: SocketAddr,
    pub host: HeaderValue,
}

impl Target {
    /// Reads `http://host:port` (a path after it is ignored; TLS is not
    /// supported: the bench measures the server, not a TLS stack).
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
        anyhow::ensure!(uri.scheme_str() == Some("http"), "`{url}`: only http:// is supported");
        let authority = uri.authority().with_context(|| format!("`{url}` has no host"))?.clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = (authority.host(), port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        Ok(Target {
            base: format!("http://{authority}"),
            addr,
            host: HeaderValue::from_str(authority.as_str()).context("host header")?,
        })
    }

    /// The target of a server bound to `addr`.
    pub fn local(addr: SocketAddr) -> Target {
        let authority = addr.to_string();
        Target {
            base: format!("http://{authority}"),
            addr,
            host: HeaderValue::from_str(&authority).unwrap_or(HeaderValue::from_static("localhost")),
        }
    }

    /// A request to `uri` (a path) with the Host header and `headers`.
    pub fn request(
        &self,
        method: Method,
        uri: Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(HOST, self.host.clone());
        for (name, value) in headers {
            h.insert(name.clone(), value.clone());
        }
        req
    }
}

/// A path as a request URI; paths the bench builds are always valid.
pub fn path(p: impl Into<Bytes>) -> anyhow::Result<Uri> {
    let p = p.into();
    Uri::from_maybe_shared(p.clone()).with_context(|| format!("invalid path {:?}", String::from_utf8_lossy(&p)))
}

/// How an answer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The expected refusal of a taken slot (a booking race, not an error).
    Conflict,
    /// Anything else: an error of the server or of the scenario.
    Unexpected,
}

/// What a connection owns: its random numbers.
pub struct Conn {
    pub rng: Rng,
}

/// A scenario's requests and how its answers are judged.
pub trait Load: Send + Sync + 'static {
    /// What a request carries over to its answer (the slot it asked for).
    type Ctx: Send;
    /// What [`Load::answer`] keeps from answers (booked ids, read-backs).
    type Kept: Send;
    /// The next request. `ticket` numbers the run's requests from 0.
    fn request(&self, ticket: usize, conn: &mut Conn) -> (Request<Full<Bytes>>, Self::Ctx);
    /// Judges an answer, keeping in `kept` what the scenario needs later.
    fn answer(
        &self,
        ctx: Self::Ctx,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
        kept: &mut Vec<Self::Kept>,
    ) -> Outcome;
}

/// `inner`'s requests at no more than `rate` a second (infinite: unpaced),
/// counted from when the run starts (its first request): the load thread
/// sleeps until the next request is due, so run it on one thread.
pub struct Paced<L> {
    inner: L,
    rate: f64,
    started: std::sync::OnceLock<Instant>,
}

impl<L> Paced<L> {
    pub fn new(inner: L, rate: f64) -> Self {
        Paced { inner, rate: rate.max(f64::MIN_POSITIVE), started: std::sync::OnceLock::new() }
    }
}

impl<L: Load> Load for Paced<L> {
    type Ctx = L::Ctx;
    type Kept = L::Kept;

    fn request(&self, ticket: usize, conn: &mut Conn) -> (Request<Full<Bytes>>, Self::Ctx) {
        let started = *self.started.get_or_init(Instant::now);
        let due = started + Duration::from_secs_f64(ticket as f64 / self.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        self.inner.request(ticket, conn)
    }

    fn answer(
        &self,
        ctx: Self::Ctx,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
        kept: &mut Vec<Self::Kept>,
    ) -> Outcome {
        self.inner.answer(ctx, status, headers, body, kept)
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// A warm-up, then the measured window.
    Timed { warmup: Duration, duration: Duration },
    /// After this many requests, all counted.
    Count(usize),
}

/// The shape of a run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub threads: usize,
    pub stop: Stop,
}

/// What a run counted and kept.
pub struct Run<K> {
    pub tally: Tally,
    pub kept: Vec<K>,
    /// The measured window (the whole run for [`Stop::Count`]).
    pub window: Duration,
}

/// A small, fast random generator (SplitMix64); one per connection, seeded
/// from the connection's number, so runs are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// True with a probability of `percent` in 100.
    pub fn percent(&mut self, percent: u32) -> bool {
        percent > 0 && self.below(100) < percent as usize
    }
}

struct Shared<L> {
    load: Arc<L>,
    target: Target,
    stop: Stop,
    tickets: AtomicUsize,
    started: Instant,
}

impl<L> Shared<L> {
    /// The measured window, `[from, to)`.
    fn window(&self) -> (Instant, Instant) {
        match self.stop {
            Stop::Timed { warmup, duration } => (self.started + warmup, self.started + warmup + duration),
            Stop::Count(_) => (self.started, self.started + Duration::from_secs(u64::from(u32::MAX))),
        }
    }
}

/// What one connection counted and kept.
type Counted<K> = (Tally, Vec<K>);

/// Runs `load` against `target` as `plan` says, on threads of its own, and
/// returns when every connection is done.
pub fn run<L: Load>(target: &Target, load: Arc<L>, plan: &Plan) -> anyhow::Result<Run<L::Kept>> {
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    let shared = Arc::new(Shared {
        load,
        target: target.clone(),
        stop: plan.stop,
        tickets: AtomicUsize::new(0),
        started: Instant::now(),
    });
    let results: Vec<anyhow::Result<Vec<Counted<L::Kept>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let shared = shared.clone();
                let connections: Vec<usize> = (t..plan.connections).step_by(threads).collect();
                std::thread::Builder::new().name(format!("bench-load-{t}")).spawn_scoped(
                    scope,
                    move || -> anyhow::Result<Vec<Counted<L::Kept>>> {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .context("starting a load thread's runtime")?;
                        rt.block_on(async move {
                            let mut set = tokio::task::JoinSet::new();
                            for index in connections {
                                set.spawn(connection(shared.clone(), index));
                            }
                            let mut out = Vec::new();
                            while let Some(done) = set.join_next().await {
                                out.push(done.context("a connection task panicked")?);
                            }
                            Ok(out)
                        })
                    },
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a load thread panicked"))),
                Err(e) => Err(anyhow::anyhow!("starting a load thread: {e}")),
            })
            .collect()
    });
    let mut tally = Tally::default();
    let mut kept = Vec::new();
    for r in results {
        for (t, k) in r? {
            tally.merge(&t);
            kept.extend(k);
        }
    }
    let window = match plan.stop {
        Stop::Timed { duration, .. } => duration,
        Stop::Count(_) => shared.started.elapsed(),
    };
    Ok(Run { tally, kept, window })
}

/// Why a connection's request loop ended.
enum Ended {
    /// The run is over.
    Done,
    /// The connection failed: count it, reconnect.
    Failed(String),
}

async fn connection<L: Load>(shared: Arc<Shared<L>>, index: usize) -> Counted<L::Kept> {
    let mut tally = Tally::default();
    let mut kept = Vec::new();
    let mut conn = Conn { rng: Rng::new(index as u64 + 1) };
    let (from, to) = shared.window();
    let in_window = |t: Instant| t >= from && t < to;
    // A ticket taken and not used yet (its request failed with the connection).
    let mut pending: Option<usize> = None;
    loop {
        if Instant::now() >= to {
            break;
        }
        let stream = match TcpStream::connect(shared.target.addr).await {
            Ok(s) => s,
            Err(e) => {
                if in_window(Instant::now()) {
                    tally.transport_errors += 1;
                    tally.sample(|| format!("connecting: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, driver) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => {
                if in_window(Instant::now()) {
                    tally.transport_errors += 1;
                    tally.sample(|| format!("handshake: {e}"));
                }
                continue;
            }
        };
        let mut driver = std::pin::pin!(driver);
        let ended = {
            let (tally, kept, conn, pending) = (&mut tally, &mut kept, &mut conn, &mut pending);
            let shared = &*shared;
            let requests = async move {
                loop {
                    let ticket = match pending.take() {
                        Some(t) => t,
                        None => {
                            let t = shared.tickets.fetch_add(1, Ordering::Relaxed);
                            if let Stop::Count(n) = shared.stop
                                && t >= n
                            {
                                return Ended::Done;
                            }
                            t
                        }
                    };
                    if let Err(e) = sender.ready().await {
                        *pending = Some(ticket);
                        return Ended::Failed(format!("connection closed: {e}"));
                    }
                    let (req, ctx) = shared.load.request(ticket, conn);
                    let sent = Instant::now();
                    let answer = match sender.send_request(req).await {
                        Ok(r) => r,
                        // Not resent: a write may have reached the server.
                        Err(e) => return Ended::Failed(format!("request: {e}")),
                    };
                    let (parts, body) = answer.into_parts();
                    let body = match body.collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) => return Ended::Failed(format!("reading the answer: {e}")),
                    };
                    let done = Instant::now();
                    let outcome = shared.load.answer(ctx, parts.status, &parts.headers, &body, kept);
                    if in_window(done) {
                        tally.answer(parts.status.as_u16(), done - sent);
                        match outcome {
                            Outcome::Success => {}
                            Outcome::Conflict => tally.conflicts += 1,
                            Outcome::Unexpected => {
                                tally.unexpected += 1;
                                tally.sample(|| {
                                    format!(
                                        "{} {}",
                                        parts.status,
                                        String::from_utf8_lossy(&body[..body.len().min(300)])
                                    )
                                });
                            }
                        }
                    }
                    if done >= to {
                        return Ended::Done;
                    }
                }
            };
            tokio::select! {
                ended = requests => ended,
                closed = &mut driver => Ended::Failed(match closed {
                    Ok(()) => "the server closed the connection".to_owned(),
                    Err(e) => format!("connection: {e}"),
                }),
            }
        };
        match ended {
            Ended::Done => break,
            Ended::Failed(e) => {
                if in_window(Instant::now()) {
                    tally.transport_errors += 1;
                    tally.sample(|| e);
                }
            }
        }
    }
    (tally, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_spreads() {
        let mut rng = Rng::new(7);
        let mut seen = [0usize; 10];
        for _ in 0..10_000 {
            seen[rng.below(10)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert!(!Rng::new(1).percent(0));
    }

    #[test]
    fn a_target_is_read_from_its_url() {
        let t = Target::parse("http://127.0.0.1:8080/ignored").expect("valid");
        assert_eq!(t.base, "http://127.0.0.1:8080");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(t.host, "127.0.0.1:8080");
        assert!(Target::parse("https://127.0.0.1:8080").is_err());
    }
}
