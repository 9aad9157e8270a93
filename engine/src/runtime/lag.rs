//! How far a consumer group is behind: its committed offsets against the ends of the
//! partitions it reads, as Kafka's tools and autoscalers (KEDA's Kafka scaler) count it.

use super::records::partitions_of;
use crate::kafka::KafkaSettings;
use crate::kafka::Prefetch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// One partition a group reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset, if it committed one.
    pub committed: Option<i64>,
    /// The partition's first and next offsets.
    pub start: i64,
    pub end: i64,
}

impl PartitionLag {
    /// Records the group has still to read: from its committed offset, or from the
    /// partition's start when it has committed none.
    pub fn lag(&self) -> i64 {
        (self.end - self.committed.unwrap_or(self.start).max(self.start)).max(0)
    }
}

/// The lag of `group` on every partition of `topics`. Blocking: call it off the async
/// runtime. The reader does not join the group; it only fetches its committed offsets.
pub fn group_lag(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<PartitionLag>, String> {
    let consumer: BaseConsumer = settings
        .reader_config(group, Prefetch::Small)
        .create()
        .map_err(|e| format!("cannot read the offsets of group {group}: {e}"))?;
    let mut wanted = TopicPartitionList::new();
    let mut lags = Vec::new();
    for topic in topics {
        for partition in partitions_of(&consumer, topic, timeout)? {
            let (start, end) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(|e| format!("cannot read the offsets of {topic}: {e}"))?;
            wanted.add_partition(topic, partition);
            lags.push(PartitionLag {
                topic: topic.clone(),
                partition,
                committed: None,
                start,
                end,
            });
        }
    }
    if lags.is_empty() {
        return Ok(lags);
    }
    let committed = consumer
        .committed_offsets(wanted, timeout)
        .map_err(|e| format!("cannot read the committed offsets of group {group}: {e}"))?;
    for lag in &mut lags {
        if let Some(Offset::Offset(o)) = committed
            .find_partition(&lag.topic, lag.partition)
            .map(|e| e.offset())
        {
            lag.committed = Some(o);
        }
    }
    Ok(lags)
}

#[cfg(test)]
mod tests {
    use super::PartitionLag;

    fn at(committed: Option<i64>, start: i64, end: i64) -> PartitionLag {
        PartitionLag {
            topic: "t".into(),
            partition: 0,
            committed,
            start,
            end,
        }
    }

    #[test]
    fn lag_counts_from_the_committed_offset_or_the_start() {
        assert_eq!(at(Some(7), 0, 10).lag(), 3);
        assert_eq!(at(None, 4, 10).lag(), 6);
        // Records deleted past the committed offset are not to be read any more.
        assert_eq!(at(Some(2), 5, 10).lag(), 5);
        assert_eq!(at(Some(10), 0, 10).lag(), 0);
    }
}
