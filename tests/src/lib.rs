//! The integration-test harness: a real Kafka-compatible broker process on a free loopback
//! port (one per test binary), Kafka clients to feed and read topics, and `brook` processes.

mod broker;
mod brook;
mod endpoint;
mod http;
mod http_server;
mod kafka;

pub use broker::{broker, Broker, OwnBroker};
pub use brook::{brook_binary, free_port, run_brook, BrookRun};
pub use endpoint::{records_of, Endpoint, Received};
pub use http::Http;
pub use http_server::LoopbackServer;
pub use kafka::{consumer_from_start, murmur2_partition, Input, Record};

/// A name no other test in this run uses, for topics and service ids.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A benchmark's record count: its first argument that is not a flag (`cargo bench` passes
/// `--bench`), or `default`.
pub fn bench_records(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// A record timestamp an hour ago: old enough to be in the past, young enough that no
/// broker's retention removes it while a test runs.
pub fn recent_timestamp() -> i64 {
    now_millis() - 3_600_000
}

/// The wall-clock time in milliseconds since the epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The value of the sample `name` whose labels include all of `labels`, in Prometheus's
/// text format (`/metrics`); summed over every sample that matches.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let matches = labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        if matches {
            *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    found
}
