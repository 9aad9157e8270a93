//! What this process did with each topic, as ksqlDB's DESCRIBE EXTENDED reports it: totals,
//! the rate over the last minute, and when it last happened.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the per-second rates look.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One direction of traffic with a topic: records consumed, produced, or failed.
#[derive(Debug, Default)]
pub struct Traffic {
    pub records: u64,
    pub bytes: u64,
    /// When it last happened, in milliseconds since the epoch.
    pub last: Option<i64>,
    /// Records counted in the rate window, by when they were counted.
    recent: VecDeque<(Instant, u64)>,
}

impl Traffic {
    pub fn add(&mut self, records: u64, bytes: u64) {
        if records == 0 {
            return;
        }
        let now = Instant::now();
        self.records += records;
        self.bytes += bytes;
        self.last = Some(chrono::Utc::now().timestamp_millis());
        self.recent.push_back((now, records));
        self.expire(now);
    }

    /// Records per second over the last minute (or since the first, if that is sooner).
    pub fn per_second(&mut self) -> f64 {
        let now = Instant::now();
        self.expire(now);
        let Some((first, _)) = self.recent.front() else {
            return 0.0;
        };
        let records: u64 = self.recent.iter().map(|(_, n)| n).sum();
        // A single burst counts over one second at least, not over no time at all.
        let span = now.duration_since(*first).max(Duration::from_secs(1));
        records as f64 / span.as_secs_f64()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.recent.pop_front();
        }
    }
}

/// This process's traffic with one topic.
#[derive(Debug, Default)]
pub struct TopicActivity {
    pub consumed: Traffic,
    pub produced: Traffic,
    /// Records read from the topic that could not be processed.
    pub failed: Traffic,
}

/// A topic's figures as DESCRIBE EXTENDED shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicStatistics {
    /// ksqlDB's `statistics`: what was produced into and consumed from the topic.
    pub statistics: String,
    /// ksqlDB's `errorStats`: the records of the topic that failed.
    pub error_stats: String,
}

impl TopicActivity {
    /// ksqlDB's figures: `name: value` pairs, values right-aligned, the last time in UTC.
    pub fn statistics(&mut self) -> TopicStatistics {
        let mut stats = Vec::new();
        if self.consumed.records > 0 {
            stats.push(stat(
                "consumer-messages-per-sec",
                rate(self.consumed.per_second()),
            ));
            stats.push(stat(
                "consumer-total-bytes",
                self.consumed.bytes.to_string(),
            ));
            stats.push(stat(
                "consumer-total-messages",
                self.consumed.records.to_string(),
            ));
        }
        if self.produced.records > 0 {
            stats.push(stat("messages-per-sec", rate(self.produced.per_second())));
            stats.push(stat("total-messages", self.produced.records.to_string()));
            stats.push(stat("total-message-bytes", self.produced.bytes.to_string()));
        }
        let last = self.consumed.last.max(self.produced.last);
        if last.is_some() {
            stats.push(stat("last-message", time(last)));
        }
        let error_stats = if self.failed.records > 0 {
            [
                stat("consumer-failed-messages", self.failed.records.to_string()),
                stat("failed-messages-per-sec", rate(self.failed.per_second())),
                stat("last-failed", time(self.failed.last)),
            ]
            .join(" ")
        } else {
            String::new()
        };
        TopicStatistics {
            statistics: stats.join(" "),
            error_stats,
        }
    }
}

fn stat(name: &str, value: String) -> String {
    format!("{name}:{value:>10}")
}

fn rate(per_second: f64) -> String {
    format!("{per_second:.2}")
}

fn time(millis: Option<i64>) -> String {
    millis
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "n/a".into())
}

#[cfg(test)]
mod tests {
    use super::TopicActivity;

    #[test]
    fn statistics_name_what_was_consumed_produced_and_failed() {
        let mut activity = TopicActivity::default();
        assert_eq!(activity.statistics().statistics, "");
        activity.consumed.add(30, 300);
        activity.produced.add(2, 20);
        activity.failed.add(1, 10);
        let stats = activity.statistics();
        assert!(
            stats
                .statistics
                .contains("consumer-total-messages:        30"),
            "{}",
            stats.statistics
        );
        assert!(stats.statistics.contains("consumer-total-bytes:       300"));
        assert!(stats.statistics.contains("total-messages:         2"));
        assert!(stats.statistics.contains("last-message:"));
        assert!(stats
            .error_stats
            .contains("consumer-failed-messages:         1"));
        // Counted within the last second: the rate is per second over at least one.
        assert!(stats
            .statistics
            .contains("consumer-messages-per-sec:     30.00"));
    }
}
