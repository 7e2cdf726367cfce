//! Request metrics and the access log: a count and a latency histogram per route template and
//! status, exported in Prometheus format. Routes are labelled by their
//! template (`/admin/messages`), never by the concrete URI, so ids and query
//! strings (which may carry patient data) never become labels.
//!
//! Memory stays flat whether or not anybody scrapes `/metrics`: a background
//! thread runs the recorder's upkeep (which folds histogram samples into their
//! buckets), and each (route, method, status) registers its counter and
//! histogram once, so a request records into handles it already has instead
//! of building labels.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How often the recorder's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// One label set's handles.
#[derive(Clone)]
struct Handles {
    requests: Counter,
    duration: Histogram,
}

/// Handles by route template, then by (method, status).
type HandleMap = HashMap<Arc<str>, HashMap<(Method, u16), Handles>>;

/// Handle to the process-wide Prometheus recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    handles: Arc<RwLock<HandleMap>>,
}

impl Metrics {
    /// The process-wide recorder, installed on first use (several servers in
    /// one process, as in tests, share it), with its upkeep thread.
    pub fn global() -> Self {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS
            .get_or_init(|| {
                let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
                let recorder = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), &buckets)
                    .map(|b| b.build_recorder())
                    .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
                let handle = recorder.handle();
                // Another recorder may already be installed (an embedding
                // program); then this one only renders what it sees.
                let _ = metrics::set_global_recorder(recorder);
                let upkeep = handle.clone();
                let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "the metrics upkeep thread did not start; /metrics scrapes keep memory flat");
                }
                Metrics { handle, handles: Arc::default() }
            })
            .clone()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The handles of one label set, registered on first use.
    fn handles(&self, route: &str, method: &Method, status: u16) -> Handles {
        if let Ok(map) = self.handles.read()
            && let Some(h) = map.get(route).and_then(|m| m.get(&(method.clone(), status)))
        {
            return h.clone();
        }
        let labels =
            [("method", method.as_str().to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        let h = Handles {
            requests: metrics::counter!("http_requests_total", &labels),
            duration: metrics::histogram!("http_request_duration_seconds", &labels),
        };
        if let Ok(mut map) = self.handles.write() {
            map.entry(Arc::from(route)).or_default().insert((method.clone(), status), h.clone());
        }
        h
    }
}

/// Middleware recording every request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str).unwrap_or(UNMATCHED);
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let handles = state.metrics.handles(route, &method, status);
    handles.requests.increment(1);
    handles.duration.record(elapsed);
    // The access log names the route template, never the URI: paths and
    // query strings may carry identifiers and other patient data. It is at
    // debug level, off by default (`POLYCLINIC_LOG=info,polyclinic::access=debug`
    // turns it on): a log line written to stderr on every request costs a
    // blocking write on the request's thread, and the metrics above already
    // count every request.
    tracing::debug!(target: "polyclinic::access", method = %method, route = %route, status = status, ms = elapsed * 1000.0, "request");
    response
}
