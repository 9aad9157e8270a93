//! Purging repartition topics. They are created with unlimited retention, so the records a
//! query moves between its own tasks are never deleted by the broker before they are read
//! (however old their event times); once the query has committed past them, it deletes
//! them itself, as Kafka Streams does (`repartition.purge.interval.ms`).

use crate::kafka::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Kafka Streams' default `repartition.purge.interval.ms`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

pub struct Purger {
    admin: Option<AdminClient<DefaultClientContext>>,
    topics: Vec<String>,
    interval: Duration,
    /// The committed offset of each repartition partition not purged yet.
    committed: BTreeMap<(String, i32), i64>,
    last: Instant,
    /// Whether a failed purge was reported already (it is then only logged at debug).
    reported: bool,
}

impl Purger {
    /// A purger of `topics` (none: it does nothing).
    pub fn new(
        settings: &KafkaSettings,
        topics: Vec<String>,
        properties: &BTreeMap<String, String>,
    ) -> Self {
        let admin = if topics.is_empty() {
            None
        } else {
            match settings.base_config().create() {
                Ok(admin) => Some(admin),
                Err(e) => {
                    tracing::warn!("repartition topics will not be purged: {e}");
                    None
                }
            }
        };
        let interval = [
            "repartition.purge.interval.ms",
            "ksql.streams.repartition.purge.interval.ms",
        ]
        .iter()
        .find_map(|k| properties.get(*k).and_then(|v| v.trim().parse().ok()))
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_INTERVAL);
        Self {
            admin,
            topics,
            interval,
            committed: BTreeMap::new(),
            last: Instant::now(),
            reported: false,
        }
    }

    /// Takes note of committed offsets; every interval, deletes what lies before them in
    /// the repartition topics.
    pub async fn committed(&mut self, offsets: &TopicPartitionList) {
        let Some(admin) = &self.admin else {
            return;
        };
        for e in offsets.elements() {
            if let (true, Offset::Offset(o)) =
                (self.topics.iter().any(|t| t == e.topic()), e.offset())
            {
                self.committed
                    .insert((e.topic().to_string(), e.partition()), o);
            }
        }
        if self.committed.is_empty() || self.last.elapsed() < self.interval {
            return;
        }
        self.last = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in std::mem::take(&mut self.committed) {
            if tpl
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .is_err()
            {
                continue;
            }
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        if let Err(e) = admin.delete_records(&tpl, &options).await {
            if self.reported {
                tracing::debug!("cannot purge repartition topics: {e}");
            } else {
                self.reported = true;
                tracing::warn!(
                    "cannot purge repartition topics {}: {e} (their records are kept)",
                    self.topics.join(", ")
                );
            }
        }
    }
}
