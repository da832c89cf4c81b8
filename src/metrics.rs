//! Prometheus metrics at `/_zipgate/metrics`, in the text exposition format
//! (0.0.4), written by hand: a few counters and two histograms do not need a
//! registry crate, and recording stays one short lock per request.
//!
//! Recorded when a response body ends (the access-log line's moment): by
//! dialect, route (the route's pattern, so ids never become labels), method
//! and status; bytes sent; total time and time to the first body byte. Read
//! at scrape time from the server's own state: active streams, connections,
//! jobs by dialect and state. Faults acted on are counted as they fire.
//!
//! Requests from different worker threads land in different shards (by a
//! per-thread index), so two workers do not wait on one lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: from a cached answer
/// (sub-millisecond) to a long download.
pub const BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

const SHARDS: usize = 8;

/// One request as it ended.
pub struct Observed<'a> {
    /// The dialect whose route it was; `zipgate` for zipgate's own, `none`
    /// for a path nobody owns.
    pub dialect: &'static str,
    /// The route's pattern, or `unmatched`.
    pub route: &'a Arc<str>,
    pub method: &'a http::Method,
    pub status: u16,
    pub bytes: u64,
    pub total: Duration,
    pub first_byte: Duration,
}

#[derive(Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let at = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[at] += 1;
        self.sum += seconds;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
    }
}

/// A counter by dialect: its name, its help, and where its value is.
type DialectCounter = (&'static str, &'static str, fn(&PerDialect) -> u64);

#[derive(Default)]
struct PerDialect {
    bytes: u64,
    latency: Histogram,
    first_byte: Histogram,
    faults: u64,
}

type RequestKey = (&'static str, Arc<str>, http::Method, u16);

/// FxHash's multiply-and-rotate: the keys are our own short labels, not
/// input an attacker picks to collide (a status is a number, a route one of
/// the router's patterns), and SipHash on every request showed in a create
/// benchmark.
#[derive(Default)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Fx = std::hash::BuildHasherDefault<FxHasher>;

#[derive(Default)]
struct Shard {
    requests: HashMap<RequestKey, u64, Fx>,
    dialects: HashMap<&'static str, PerDialect, Fx>,
}

/// The server's metrics.
pub struct Metrics {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
    }
}

/// This thread's shard index: threads are numbered as they first record.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

impl Metrics {
    fn shard(&self) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard_index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn observe(&self, seen: &Observed<'_>) {
        let mut shard = self.shard();
        // No allocation: static names, a shared pattern, a standard method.
        let key = (
            seen.dialect,
            seen.route.clone(),
            seen.method.clone(),
            seen.status,
        );
        *shard.requests.entry(key).or_default() += 1;
        let per = shard.dialects.entry(seen.dialect).or_default();
        per.bytes += seen.bytes;
        per.latency.observe(seen.total.as_secs_f64());
        per.first_byte.observe(seen.first_byte.as_secs_f64());
    }

    /// A fault rule acted on a request of `dialect`.
    pub fn fault_fired(&self, dialect: &'static str) {
        self.shard().dialects.entry(dialect).or_default().faults += 1;
    }

    /// Everything recorded, with the gauges read now, as the text format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut requests: HashMap<RequestKey, u64> = HashMap::new();
        let mut dialects: HashMap<&'static str, PerDialect> = HashMap::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (key, n) in &shard.requests {
                *requests.entry(key.clone()).or_default() += n;
            }
            for (name, per) in &shard.dialects {
                let into = dialects.entry(name).or_default();
                into.bytes += per.bytes;
                into.faults += per.faults;
                into.latency.merge(&per.latency);
                into.first_byte.merge(&per.first_byte);
            }
        }
        let mut out = String::with_capacity(4096);
        let mut requests: Vec<_> = requests.into_iter().collect();
        requests.sort_by(|(a, _), (b, _)| {
            (a.0, &a.1, a.2.as_str(), a.3).cmp(&(b.0, &b.1, b.2.as_str(), b.3))
        });
        let mut dialects: Vec<_> = dialects.into_iter().collect();
        dialects.sort_by_key(|(name, _)| *name);

        header(
            &mut out,
            "zipgate_requests_total",
            "counter",
            "Requests answered, by dialect, route pattern, method and status.",
        );
        for ((dialect, route, method, status), n) in &requests {
            let _ = writeln!(
                out,
                "zipgate_requests_total{{dialect=\"{}\",route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(dialect),
                escape(route),
                escape(method.as_str()),
            );
        }
        let by_dialect: [DialectCounter; 2] = [
            (
                "zipgate_response_bytes_total",
                "Response body bytes sent, by dialect.",
                |per| per.bytes,
            ),
            (
                "zipgate_faults_fired_total",
                "Requests a fault rule acted on, by dialect.",
                |per| per.faults,
            ),
        ];
        for (name, help, value) in by_dialect {
            header(&mut out, name, "counter", help);
            for (dialect, per) in &dialects {
                let _ = writeln!(
                    out,
                    "{name}{{dialect=\"{}\"}} {}",
                    escape(dialect),
                    value(per)
                );
            }
        }
        for (name, help, pick) in [
            (
                "zipgate_request_duration_seconds",
                "From the request's arrival to its response's last byte (or the client leaving), by dialect.",
                (|per: &PerDialect| &per.latency) as fn(&PerDialect) -> &Histogram,
            ),
            (
                "zipgate_time_to_first_byte_seconds",
                "From the request's arrival to the first response body byte handed to the connection, by dialect.",
                |per: &PerDialect| &per.first_byte,
            ),
        ] {
            header(&mut out, name, "histogram", help);
            for (dialect, per) in &dialects {
                histogram(&mut out, name, dialect, pick(per));
            }
        }
        header(
            &mut out,
            "zipgate_active_streams",
            "gauge",
            "Archive downloads streaming now.",
        );
        let _ = writeln!(out, "zipgate_active_streams {}", gauges.active_streams);
        header(
            &mut out,
            "zipgate_connections",
            "gauge",
            "Client connections open now.",
        );
        let _ = writeln!(out, "zipgate_connections {}", gauges.connections);
        header(
            &mut out,
            "zipgate_jobs",
            "gauge",
            "Jobs held now, by dialect and state.",
        );
        for ((dialect, state), n) in &gauges.jobs {
            let _ = writeln!(
                out,
                "zipgate_jobs{{dialect=\"{}\",state=\"{}\"}} {n}",
                escape(dialect),
                escape(state)
            );
        }
        out
    }
}

/// What the scrape reads from the server's state.
pub struct Gauges {
    pub active_streams: u64,
    pub connections: u64,
    /// (dialect, state) → jobs, in order.
    pub jobs: crate::jobs::JobCounts,
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, dialect: &str, h: &Histogram) {
    let dialect = escape(dialect);
    let mut cumulative = 0u64;
    for (bound, n) in BUCKETS.iter().zip(&h.counts) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{dialect=\"{dialect}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += h.counts[BUCKETS.len()];
    let _ = writeln!(
        out,
        "{name}_bucket{{dialect=\"{dialect}\",le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(out, "{name}_sum{{dialect=\"{dialect}\"}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{dialect=\"{dialect}\"}} {cumulative}");
}

/// A label value as the text format needs it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(value);
    }
    std::borrow::Cow::Owned(
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(metrics: &Metrics, route: &Arc<str>, status: u16, ms: u64) {
        metrics.observe(&Observed {
            dialect: "box",
            route,
            method: &http::Method::POST,
            status,
            bytes: 10,
            total: Duration::from_millis(ms),
            first_byte: Duration::from_millis(ms / 2),
        });
    }

    #[test]
    fn counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        let route: Arc<str> = Arc::from("/2.0/zip_downloads");
        observed(&metrics, &route, 202, 3);
        observed(&metrics, &route, 202, 400);
        observed(&metrics, &route, 429, 3);
        metrics.fault_fired("box");
        let text = metrics.render(&Gauges {
            active_streams: 1,
            connections: 2,
            jobs: vec![(("box".into(), "ready".into()), 2)],
        });
        for line in [
            "zipgate_requests_total{dialect=\"box\",route=\"/2.0/zip_downloads\",method=\"POST\",status=\"202\"} 2",
            "zipgate_requests_total{dialect=\"box\",route=\"/2.0/zip_downloads\",method=\"POST\",status=\"429\"} 1",
            "zipgate_response_bytes_total{dialect=\"box\"} 30",
            "zipgate_faults_fired_total{dialect=\"box\"} 1",
            "zipgate_request_duration_seconds_bucket{dialect=\"box\",le=\"0.0025\"} 0",
            "zipgate_request_duration_seconds_bucket{dialect=\"box\",le=\"0.005\"} 2",
            "zipgate_request_duration_seconds_bucket{dialect=\"box\",le=\"0.5\"} 3",
            "zipgate_request_duration_seconds_bucket{dialect=\"box\",le=\"+Inf\"} 3",
            "zipgate_request_duration_seconds_count{dialect=\"box\"} 3",
            "zipgate_active_streams 1",
            "zipgate_jobs{dialect=\"box\",state=\"ready\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("/x/{id}"), "/x/{id}");
    }
}
