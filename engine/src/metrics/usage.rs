//! Usage metering: what each persistent query and connector moved and held, written once
//! per interval (a minute by default) to the compacted topic `<service id>ksql_usage`, one
//! JSON record per query or connector, process and interval, and summed by `SHOW USAGE`:
//! what a platform bills by.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// How often usage is written when `ksql.usage.interval.ms` is not set.
pub const DEFAULT_USAGE_INTERVAL_MS: u64 = 60_000;

/// `ksql.usage.interval.ms`: how often usage records are written.
pub fn usage_interval(
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<std::time::Duration, String> {
    match properties.get("ksql.usage.interval.ms") {
        None => Ok(std::time::Duration::from_millis(DEFAULT_USAGE_INTERVAL_MS)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms >= 100)
            .map(std::time::Duration::from_millis)
            .ok_or_else(|| {
                format!("ksql.usage.interval.ms must be a whole number of milliseconds, 100 or more, not '{v}'")
            }),
    }
}

/// What a usage record is of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageKind {
    /// A persistent query (`query_id` is its id).
    #[default]
    Query,
    /// A connector (`query_id` is its name).
    Connector,
}

impl UsageKind {
    pub fn name(self) -> &'static str {
        match self {
            UsageKind::Query => "query",
            UsageKind::Connector => "connector",
        }
    }
}

/// One query's or connector's running totals in this process.
#[derive(Debug, Default)]
pub struct Usage {
    pub records_read: AtomicU64,
    pub bytes_read: AtomicU64,
    pub records_written: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Written to its stores' changelogs (apart from its outputs).
    pub changelog_records_written: AtomicU64,
    pub changelog_bytes_written: AtomicU64,
    pub cpu_nanos: AtomicU64,
    pub state_keys: AtomicU64,
    pub state_bytes: AtomicU64,
    /// Set when the query is terminated: written one last time, then dropped.
    pub ended: AtomicBool,
    /// The totals at the last record written, to write what changed since.
    reported: Mutex<Totals>,
}

/// A query's totals at one moment: what a written record counts up to.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    records_read: u64,
    bytes_read: u64,
    records_written: u64,
    bytes_written: u64,
    changelog_records_written: u64,
    changelog_bytes_written: u64,
    cpu_nanos: u64,
}

/// One usage record: a query's use in one process over one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub service_id: String,
    pub process_id: String,
    /// The query's id, or the connector's name.
    pub query_id: String,
    /// Records written before connectors were metered have none: they are queries'.
    #[serde(default)]
    pub kind: UsageKind,
    /// The interval, in milliseconds since the epoch.
    pub window_start: i64,
    pub window_end: i64,
    pub records_read: u64,
    pub bytes_read: u64,
    pub records_written: u64,
    pub bytes_written: u64,
    /// Written to its stores' changelogs; records written before they were counted have
    /// none.
    #[serde(default)]
    pub changelog_records_written: u64,
    #[serde(default)]
    pub changelog_bytes_written: u64,
    pub cpu_seconds: f64,
    /// What its stores held at the interval's end.
    pub state_keys: u64,
    pub state_bytes: u64,
}

impl UsageRecord {
    /// Its key in the usage topic: unique per query, process and interval, so that
    /// compaction keeps every one.
    pub fn key(&self) -> String {
        let prefix = match self.kind {
            UsageKind::Query => "",
            UsageKind::Connector => "connector/",
        };
        format!(
            "{prefix}{}/{}/{}",
            self.query_id, self.process_id, self.window_start
        )
    }
}

impl Usage {
    fn totals(&self) -> Totals {
        Totals {
            records_read: self.records_read.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            records_written: self.records_written.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            changelog_records_written: self.changelog_records_written.load(Ordering::Relaxed),
            changelog_bytes_written: self.changelog_bytes_written.load(Ordering::Relaxed),
            cpu_nanos: self.cpu_nanos.load(Ordering::Relaxed),
        }
    }

    /// The record of what changed since the last one written, and the totals it counts up
    /// to: `mark_written` takes them once the record is in the topic; until then the same
    /// changes go into the next interval's record.
    pub fn since_last(
        &self,
        service_id: &str,
        process_id: &str,
        (kind, query_id): (UsageKind, &str),
        window: (i64, i64),
    ) -> (UsageRecord, Totals) {
        let now = self.totals();
        let before = *self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let record = UsageRecord {
            service_id: service_id.into(),
            process_id: process_id.into(),
            query_id: query_id.into(),
            kind,
            window_start: window.0,
            window_end: window.1,
            records_read: now.records_read - before.records_read,
            bytes_read: now.bytes_read - before.bytes_read,
            records_written: now.records_written - before.records_written,
            bytes_written: now.bytes_written - before.bytes_written,
            changelog_records_written: now.changelog_records_written
                - before.changelog_records_written,
            changelog_bytes_written: now.changelog_bytes_written - before.changelog_bytes_written,
            cpu_seconds: (now.cpu_nanos - before.cpu_nanos) as f64 / 1e9,
            state_keys: self.state_keys.load(Ordering::Relaxed),
            state_bytes: self.state_bytes.load(Ordering::Relaxed),
        };
        (record, now)
    }

    pub fn mark_written(&self, totals: Totals) {
        *self.reported.lock().unwrap_or_else(|p| p.into_inner()) = totals;
    }
}

/// A query's or connector's usage summed over every record of the usage topic (every
/// process of the service, every interval): what `SHOW USAGE` lists.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageTotal {
    pub query_id: String,
    pub kind: UsageKind,
    pub records_read: u64,
    pub bytes_read: u64,
    pub records_written: u64,
    pub bytes_written: u64,
    pub changelog_records_written: u64,
    pub changelog_bytes_written: u64,
    pub cpu_seconds: f64,
    /// The latest state held, summed over processes.
    pub state_bytes: u64,
    /// The intervals counted (records of the topic).
    pub intervals: u64,
}

/// Sums usage records by query and connector (queries first, each in name order).
pub fn totals(records: impl IntoIterator<Item = UsageRecord>) -> Vec<UsageTotal> {
    type Name = (UsageKind, String);
    let mut by_query: std::collections::BTreeMap<Name, UsageTotal> = Default::default();
    // The latest state per query and process.
    let mut state: std::collections::BTreeMap<(Name, String), (i64, u64)> = Default::default();
    for r in records {
        let name = (r.kind, r.query_id.clone());
        let t = by_query.entry(name.clone()).or_insert_with(|| UsageTotal {
            query_id: r.query_id.clone(),
            kind: r.kind,
            ..Default::default()
        });
        t.records_read += r.records_read;
        t.bytes_read += r.bytes_read;
        t.records_written += r.records_written;
        t.bytes_written += r.bytes_written;
        t.changelog_records_written += r.changelog_records_written;
        t.changelog_bytes_written += r.changelog_bytes_written;
        t.cpu_seconds += r.cpu_seconds;
        t.intervals += 1;
        let latest = state
            .entry((name, r.process_id.clone()))
            .or_insert((i64::MIN, 0));
        if r.window_end >= latest.0 {
            *latest = (r.window_end, r.state_bytes);
        }
    }
    for ((query, _), (_, bytes)) in state {
        if let Some(t) = by_query.get_mut(&query) {
            t.state_bytes += bytes;
        }
    }
    by_query.into_values().collect()
}

/// The CPU time this thread has used, in nanoseconds (`/proc/thread-self/schedstat`).
pub fn thread_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{totals, Usage, UsageKind};
    use std::sync::atomic::Ordering;

    #[test]
    fn records_hold_what_changed_since_the_last_one_and_sum_up() {
        let usage = Usage::default();
        usage.records_read.fetch_add(10, Ordering::Relaxed);
        usage.bytes_read.fetch_add(100, Ordering::Relaxed);
        usage.state_bytes.store(5000, Ordering::Relaxed);
        let (first, at) = usage.since_last("svc_", "p1", (UsageKind::Query, "Q"), (0, 60_000));
        assert_eq!((first.records_read, first.bytes_read), (10, 100));
        usage.mark_written(at);
        usage.records_read.fetch_add(5, Ordering::Relaxed);
        // A record not committed (the write failed) is written again with the next.
        let (lost, _) = usage.since_last("svc_", "p1", (UsageKind::Query, "Q"), (60_000, 120_000));
        assert_eq!(lost.records_read, 5);
        usage.records_read.fetch_add(1, Ordering::Relaxed);
        usage.state_bytes.store(7000, Ordering::Relaxed);
        let (second, at) =
            usage.since_last("svc_", "p1", (UsageKind::Query, "Q"), (60_000, 180_000));
        assert_eq!(second.records_read, 6);
        usage.mark_written(at);
        let mut other = second.clone();
        other.process_id = "p2".into();
        other.records_read = 4;
        let t = totals([first, second, other]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].records_read, 20);
        assert_eq!(t[0].bytes_read, 100);
        assert_eq!(t[0].intervals, 3);
        // The latest state of each process: 7000 + 7000.
        assert_eq!(t[0].state_bytes, 14_000);
    }

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let before = super::thread_cpu_nanos().expect("schedstat on Linux");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::thread_cpu_nanos().expect("schedstat") > before);
    }
}
