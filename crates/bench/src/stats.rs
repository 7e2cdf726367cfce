//! What a run counts, and how a scenario's result is summed up: latencies in
//! an HDR histogram (microseconds), answers by status, expected conflicts,
//! transport errors; then requests per second, percentiles, and the ratio
//! to the scenario's ceiling, printed and written as JSON.

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::time::Duration;

/// Longest latency the histograms hold (longer ones are clamped to it).
const LONGEST_US: u64 = 120_000_000;

/// What one connection (or a merge of many) counted.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latencies of every answered request, in microseconds.
    pub latency: Histogram<u64>,
    /// Answers by HTTP status, in order of first appearance (few distinct).
    pub statuses: Vec<(u16, u64)>,
    /// Answers that were the expected refusal of a taken slot.
    pub conflicts: u64,
    /// Answers that were neither a success nor an expected conflict.
    pub unexpected: u64,
    /// Connection failures, resets, malformed answers.
    pub transport_errors: u64,
    /// The first few error messages (unexpected answers and transport), to show.
    pub samples: Vec<String>,
}

/// How many error messages a tally keeps.
const SAMPLES: usize = 3;

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency: Histogram::new_with_bounds(1, LONGEST_US, 3).expect("valid histogram bounds"),
            statuses: Vec::new(),
            conflicts: 0,
            unexpected: 0,
            transport_errors: 0,
            samples: Vec::new(),
        }
    }
}

impl Tally {
    /// Counts one answer and its latency.
    pub fn answer(&mut self, status: u16, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(LONGEST_US).clamp(1, LONGEST_US);
        // Within bounds by the clamp: recording cannot fail.
        let _ = self.latency.record(us);
        match self.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.statuses.push((status, 1)),
        }
    }

    /// Keeps an error message if fewer than a few are kept.
    pub fn sample(&mut self, message: impl FnOnce() -> String) {
        if self.samples.len() < SAMPLES {
            self.samples.push(message());
        }
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, other: &Tally) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for &(status, n) in &other.statuses {
            match self.statuses.iter_mut().find(|(s, _)| *s == status) {
                Some((_, m)) => *m += n,
                None => self.statuses.push((status, n)),
            }
        }
        self.conflicts += other.conflicts;
        self.unexpected += other.unexpected;
        self.transport_errors += other.transport_errors;
        for s in &other.samples {
            if self.samples.len() < SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }

    /// Answers received (any status).
    pub fn answered(&self) -> u64 {
        self.statuses.iter().map(|(_, n)| n).sum()
    }

    /// Answers with a 2xx status.
    pub fn succeeded(&self) -> u64 {
        self.statuses.iter().filter(|(s, _)| (200..300).contains(s)).map(|(_, n)| n).sum()
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds (`None` when empty).
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// A ceiling a figure is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceiling {
    /// Bare HTTP: the `baseline` scenario's requests per second.
    Baseline,
    /// Single-row durable SQLite commits per second (`sqlite-commit`).
    SqliteCommit,
}

impl Ceiling {
    pub fn name(self) -> &'static str {
        match self {
            Ceiling::Baseline => "baseline",
            Ceiling::SqliteCommit => "sqlite-commit",
        }
    }
}

/// One scenario's result, as printed and as written to `--out`.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    /// What was measured, in a few words.
    pub what: String,
    /// The unit of [`Report::rate`]: `req/s`, `bookings/s`, `commits/s`.
    pub unit: &'static str,
    /// The figure compared with the ceiling: successful requests (or
    /// commits) per second over the measured window.
    pub rate: f64,
    /// Every answer per second (successes, conflicts and errors).
    pub answered_rate: f64,
    pub seconds: f64,
    pub answered: u64,
    pub succeeded: u64,
    pub latency: Option<Latency>,
    pub statuses: Vec<(u16, u64)>,
    pub conflicts: u64,
    pub unexpected: u64,
    pub transport_errors: u64,
    pub samples: Vec<String>,
    /// The ceiling this figure is a ratio of, and the ratio, once known.
    pub ratio: Option<(Ceiling, f64)>,
    /// Further figures (`batched_rows_per_s`, the overlap check, ...).
    pub extra: Map<String, Value>,
}

impl Report {
    /// The report of a load run over a measured window of `window`.
    pub fn of_run(scenario: &str, what: &str, unit: &'static str, tally: &Tally, window: Duration) -> Report {
        let seconds = window.as_secs_f64().max(f64::MIN_POSITIVE);
        let mut statuses = tally.statuses.clone();
        statuses.sort_unstable();
        Report {
            scenario: scenario.to_owned(),
            what: what.to_owned(),
            unit,
            rate: tally.succeeded() as f64 / seconds,
            answered_rate: tally.answered() as f64 / seconds,
            seconds: window.as_secs_f64(),
            answered: tally.answered(),
            succeeded: tally.succeeded(),
            latency: Latency::of(&tally.latency),
            statuses,
            conflicts: tally.conflicts,
            unexpected: tally.unexpected,
            transport_errors: tally.transport_errors,
            samples: tally.samples.clone(),
            ratio: None,
            extra: Map::new(),
        }
    }

    /// Sets the ratio to a ceiling's figure (ignored when that is zero).
    pub fn compare(&mut self, ceiling: Ceiling, ceiling_rate: f64) {
        if ceiling_rate > 0.0 {
            self.ratio = Some((ceiling, self.rate / ceiling_rate));
        }
    }

    /// The report as text, a few lines.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}: {}", self.scenario, self.what);
        let _ = write!(
            s,
            "  {} {} ({} in {:.1} s",
            thousands(self.rate),
            self.unit,
            thousands_u(self.succeeded),
            self.seconds
        );
        if self.answered != self.succeeded {
            let _ = write!(s, "; {} answers/s in all", thousands(self.answered_rate));
        }
        let _ = write!(s, ")");
        if let Some((ceiling, ratio)) = self.ratio {
            let _ = write!(s, " = {ratio:.2} of {}", ceiling.name());
        }
        let _ = writeln!(s);
        if let Some(l) = self.latency {
            let _ = writeln!(
                s,
                "  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.p50, l.p90, l.p99, l.max
            );
        }
        if !self.statuses.is_empty() || self.transport_errors > 0 {
            let statuses: Vec<String> =
                self.statuses.iter().map(|(st, n)| format!("{st}: {}", thousands_u(*n))).collect();
            let _ = write!(
                s,
                "  answers by status: {}",
                if statuses.is_empty() { "none".into() } else { statuses.join(", ") }
            );
            let _ = write!(s, "; conflicts (slot taken, expected): {}", thousands_u(self.conflicts));
            let _ = write!(s, "; errors: {}", thousands_u(self.unexpected));
            let _ = writeln!(s, "; transport errors: {}", thousands_u(self.transport_errors));
        }
        for (k, v) in &self.extra {
            let shown = match v {
                Value::String(t) => t.clone(),
                Value::Number(n) => n.as_f64().map(thousands).unwrap_or_else(|| n.to_string()),
                other => other.to_string(),
            };
            let _ = writeln!(s, "  {}: {shown}", k.replace('_', " "));
        }
        for e in &self.samples {
            let _ = writeln!(s, "  e.g. {e}");
        }
        s
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let mut statuses = Map::new();
        for (st, n) in &self.statuses {
            statuses.insert(st.to_string(), json!(n));
        }
        let mut v = json!({
            "scenario": self.scenario,
            "what": self.what,
            "unit": self.unit,
            "rate": round2(self.rate),
            "answered_rate": round2(self.answered_rate),
            "seconds": round2(self.seconds),
            "answered": self.answered,
            "succeeded": self.succeeded,
            "statuses": statuses,
            "conflicts": self.conflicts,
            "errors": self.unexpected,
            "transport_errors": self.transport_errors,
            "error_samples": self.samples,
        });
        if let Some(l) = self.latency {
            v["latency_ms"] =
                json!({"p50": round2(l.p50), "p90": round2(l.p90), "p99": round2(l.p99), "max": round2(l.max)});
        }
        if let Some((ceiling, ratio)) = self.ratio {
            v["ratio"] = json!({"to": ceiling.name(), "value": (ratio * 1000.0).round() / 1000.0});
        }
        for (k, x) in &self.extra {
            v[k] = x.clone();
        }
        v
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `12345.6` as `12,346`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.abs() < 10.0 && x.fract() != 0.0 {
        return format!("{x:.2}");
    }
    let n = x.round() as i64;
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", thousands_u(n.unsigned_abs()))
}

/// `1234567` as `1,234,567`.
pub fn thousands_u(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut t = Tally::default();
        for ms in 1..=100u64 {
            t.answer(200, Duration::from_millis(ms));
        }
        let l = Latency::of(&t.latency).expect("not empty");
        // Three significant digits: within 0.1 % of the exact values.
        assert!((l.p50 - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p90 - 90.0).abs() < 0.1, "{l:?}");
        assert!((l.p99 - 99.0).abs() < 0.1, "{l:?}");
        assert!((l.max - 100.0).abs() < 0.1, "{l:?}");
        assert_eq!(Latency::of(&Tally::default().latency), None);
    }

    #[test]
    fn merged_tallies_add_up_by_status() {
        let mut a = Tally::default();
        a.answer(200, Duration::from_micros(300));
        a.answer(422, Duration::from_micros(300));
        a.conflicts += 1;
        let mut b = Tally::default();
        b.answer(200, Duration::from_micros(500));
        b.answer(500, Duration::from_micros(500));
        b.unexpected += 1;
        b.transport_errors += 2;
        a.merge(&b);
        assert_eq!((a.answered(), a.succeeded(), a.conflicts, a.unexpected, a.transport_errors), (4, 2, 1, 1, 2));
        let r = Report::of_run("book", "test", "bookings/s", &a, Duration::from_secs(2));
        assert_eq!(r.statuses, vec![(200, 2), (422, 1), (500, 1)]);
        assert_eq!((r.rate, r.answered_rate), (1.0, 2.0));
        let j = r.json();
        assert_eq!(j["statuses"]["422"], 1);
        assert_eq!(j["errors"], 1);
        assert_eq!(j["transport_errors"], 2);
    }

    #[test]
    fn the_ratio_is_the_rate_over_the_ceiling() {
        let mut t = Tally::default();
        for _ in 0..500 {
            t.answer(201, Duration::from_millis(2));
        }
        let mut r = Report::of_run("book", "test", "bookings/s", &t, Duration::from_secs(1));
        r.compare(Ceiling::SqliteCommit, 1000.0);
        assert_eq!(r.ratio, Some((Ceiling::SqliteCommit, 0.5)));
        assert!(r.text().contains("0.50 of sqlite-commit"), "{}", r.text());
        assert_eq!(r.json()["ratio"]["to"], "sqlite-commit");
        r.compare(Ceiling::Baseline, 0.0);
        assert_eq!(r.ratio, Some((Ceiling::SqliteCommit, 0.5)), "a zero ceiling changes nothing");
    }

    #[test]
    fn large_numbers_get_separators() {
        assert_eq!(thousands_u(0), "0");
        assert_eq!(thousands_u(999), "999");
        assert_eq!(thousands_u(1000), "1,000");
        assert_eq!(thousands_u(1_234_567), "1,234,567");
        assert_eq!(thousands(153_000.4), "153,000");
        assert_eq!(thousands(0.27), "0.27");
    }
}
