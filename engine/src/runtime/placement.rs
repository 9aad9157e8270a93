//! Co-partitioning made visible. A join, or an aggregation by its source's key, trusts that
//! every record of a key is in the partition Kafka's default partitioner (murmur2 of the
//! key bytes, as the Java clients place records) gives it: each partition is a task with
//! its own state. A topic written with another partitioner (librdkafka's default, say)
//! breaks that silently: records of one key meet in different tasks and joins miss their
//! matches. This check counts such records and says once, with the fix, that it saw them.

use crate::partitioner::partition_for;
use crate::pipeline::InputRecord;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Placement {
    query: String,
    /// The partition count of each topic whose records are checked.
    partitions: BTreeMap<String, i32>,
    misplaced: Arc<AtomicU64>,
    reported: bool,
}

impl Placement {
    /// A check of the records of `partitions`' topics, counting into `misplaced`.
    pub fn new(query: &str, partitions: BTreeMap<String, i32>, misplaced: Arc<AtomicU64>) -> Self {
        Self {
            query: query.to_string(),
            partitions,
            misplaced,
            reported: false,
        }
    }

    /// Counts the records of `records` that are not where murmur2 puts their keys.
    pub fn check<'a>(&mut self, records: impl IntoIterator<Item = &'a InputRecord>) {
        for r in records {
            let (Some(key), Some(&count)) = (r.key.as_deref(), self.partitions.get(&r.topic))
            else {
                continue;
            };
            let expected = partition_for(key, count);
            if expected == r.partition {
                continue;
            }
            self.misplaced.fetch_add(1, Ordering::Relaxed);
            if !self.reported {
                self.reported = true;
                tracing::warn!(
                    "query {}: the record at offset {} of {} partition {} has a key that Kafka's default partitioner puts in partition {expected}: records of one key may be in different tasks, and joins and aggregations miss each other. Write the topic with Kafka's default partitioner (librdkafka clients: partitioner=murmur2_random). Such records are counted in DESCRIBE EXTENDED.",
                    self.query, r.offset, r.topic, r.partition
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, partition: i32) -> InputRecord {
        InputRecord {
            headers: vec![],
            topic: "t".into(),
            partition,
            offset: 0,
            timestamp: 0,
            key: Some(key.as_bytes().to_vec()),
            value: None,
        }
    }

    #[test]
    fn records_away_from_their_murmur2_partition_are_counted() {
        let count = Arc::new(AtomicU64::new(0));
        let mut check = Placement::new("q", BTreeMap::from([("t".into(), 4)]), count.clone());
        let home = partition_for(b"alice", 4);
        check.check(&[record("alice", home), record("alice", (home + 1) % 4)]);
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }
}
