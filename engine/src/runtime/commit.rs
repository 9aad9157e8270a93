//! The commit protocol of a persistent query's tasks. At least once (the default): outputs
//! and changelog records are acknowledged, then input offsets are committed, so a crash
//! repeats work but never loses it. Exactly once (`processing.guarantee=exactly_once_v2`):
//! outputs, changelog records and input offsets go in one Kafka transaction per commit,
//! written by a transactional producer whose stable `transactional.id` fences a zombie of
//! the same task; consumers read committed records only, and local stores take a commit's
//! changes only once its transaction is committed.

use super::supervisor::{QueryHealth, TaskError};
use crate::kafka::KafkaSettings;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long transactional calls may take before they count as timed out.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// How often at-least-once tasks commit when nothing is set: after every batch. (ksqlDB's
/// default is 2 s; deferred commits are not yet safe across a rebalance that fails them,
/// see the README.)
const DEFAULT_COMMIT_INTERVAL_MS: u64 = 0;

/// How often at-least-once tasks commit their input offsets: `commit.interval.ms` (or
/// `ksql.streams.commit.interval.ms`). Exactly-once tasks commit every batch, in its
/// transaction.
pub fn commit_interval(properties: &BTreeMap<String, String>) -> Result<Duration, String> {
    let value = properties
        .get("commit.interval.ms")
        .or_else(|| properties.get("ksql.streams.commit.interval.ms"));
    match value {
        None => Ok(Duration::from_millis(DEFAULT_COMMIT_INTERVAL_MS)),
        Some(v) => v.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| {
            format!("Invalid value {v} for configuration commit.interval.ms: Not a number of type LONG")
        }),
    }
}

/// By topic and partition: the next offset to read, and the records up to it.
type Pending = BTreeMap<(String, i32), (i64, u64)>;

/// Input offsets whose records are fully processed (every output, changelog and
/// processing-log record acknowledged) and not committed yet, with how many records they
/// cover. Committed on the commit interval, on a clean stop, and for the partitions a
/// rebalance takes away before it completes, so their next owner starts after them.
#[derive(Clone, Default)]
pub struct Acknowledged {
    pending: Arc<Mutex<Pending>>,
    health: Arc<QueryHealth>,
}

impl Acknowledged {
    pub fn new(health: Arc<QueryHealth>) -> Self {
        Self {
            pending: Default::default(),
            health,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `offsets` (next offsets to read), which cover `records` records in all (counted
    /// with the first partition: the count is what the query reports it committed).
    pub fn add(&self, offsets: &TopicPartitionList, records: u64) {
        self.put_back(offsets, records);
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Takes the pending offsets of the partitions `keep` accepts.
    fn take(&self, keep: impl Fn(&str, i32) -> bool) -> (TopicPartitionList, u64) {
        let mut pending = self.lock();
        let mut tpl = TopicPartitionList::new();
        let mut records = 0;
        pending.retain(|(topic, partition), (next, n)| {
            if !keep(topic, *partition) {
                return true;
            }
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .is_ok()
            {
                records += *n;
            }
            false
        });
        (tpl, records)
    }

    /// Adds offsets (those of a failed commit, put back), keeping the furthest of each
    /// partition.
    fn put_back(&self, offsets: &TopicPartitionList, records: u64) {
        let mut pending = self.lock();
        let mut records = Some(records);
        for e in offsets.elements() {
            if let Offset::Offset(next) = e.offset() {
                let entry = pending
                    .entry((e.topic().to_string(), e.partition()))
                    .or_insert((next, 0));
                entry.0 = entry.0.max(next);
                entry.1 += records.take().unwrap_or(0);
            }
        }
    }

    /// Commits every pending offset, synchronously. A failure puts them back, to be
    /// committed with the next commit. Blocking.
    pub fn commit<X: ConsumerContext, C: Consumer<X>>(
        &self,
        consumer: &C,
    ) -> Result<TopicPartitionList, TaskError> {
        let (offsets, records) = self.take(|_, _| true);
        let committed = commit_offsets(consumer, &offsets);
        match &committed {
            Ok(()) => self.health.add_committed(records),
            Err(_) => self.put_back(&offsets, records),
        }
        committed.map(|()| offsets)
    }

    /// Commits the pending offsets of partitions being revoked. They are dropped whatever
    /// the outcome: a later commit of them would rewind their next owner. Blocking.
    pub fn commit_revoked<X: ConsumerContext, C: Consumer<X>>(
        &self,
        consumer: &C,
        revoked: impl Fn(&str, i32) -> bool,
    ) -> Result<(), TaskError> {
        let (offsets, records) = self.take(revoked);
        commit_offsets(consumer, &offsets)?;
        self.health.add_committed(records);
        Ok(())
    }
}

fn commit_offsets<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    offsets: &TopicPartitionList,
) -> Result<(), TaskError> {
    if offsets.count() == 0 {
        return Ok(());
    }
    // Also moves the position a later commit of it reads.
    if let Err(e) = consumer.store_offsets(offsets) {
        tracing::debug!("storing offsets: {e}");
    }
    consumer
        .commit(offsets, CommitMode::Sync)
        .map_err(|e| TaskError::kafka("cannot commit offsets", &e))
}

/// What a query promises about its outputs after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    AtLeastOnce,
    ExactlyOnce,
}

impl Guarantee {
    /// `processing.guarantee` (or `ksql.streams.processing.guarantee`), as Kafka Streams
    /// names its values; `exactly_once` is taken as `exactly_once_v2`, its successor.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self, String> {
        let value = properties
            .get("processing.guarantee")
            .or_else(|| properties.get("ksql.streams.processing.guarantee"));
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("at_least_once") => Ok(Guarantee::AtLeastOnce),
            Some("exactly_once_v2" | "exactly_once" | "exactly_once_beta") => {
                Ok(Guarantee::ExactlyOnce)
            }
            Some(other) => Err(format!(
                "Invalid value {other} for configuration processing.guarantee: String must be one of: at_least_once, exactly_once, exactly_once_v2"
            )),
        }
    }

    /// How a task's consumer reads: committed records only, under exactly-once.
    pub fn isolation_level(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "read_uncommitted",
            Guarantee::ExactlyOnce => "read_committed",
        }
    }
}

/// The producer of a query's tasks: plain and idempotent, or transactional.
pub struct TaskProducer {
    pub producer: FutureProducer,
    guarantee: Guarantee,
    /// Whether a transaction is open.
    open: bool,
}

impl TaskProducer {
    /// A producer for one query in this process. Under exactly-once its transactional id
    /// is `transactional_id`; creating it fences any earlier producer with that id and
    /// aborts what that one left open. Blocking.
    pub fn new(
        settings: &KafkaSettings,
        guarantee: Guarantee,
        transactional_id: &str,
    ) -> Result<Self, TaskError> {
        let mut config = settings.producer_config();
        if guarantee == Guarantee::ExactlyOnce {
            config
                .set("transactional.id", transactional_id)
                .set("transaction.timeout.ms", "60000");
        }
        let producer: FutureProducer = config
            .create()
            .map_err(|e| TaskError::fatal(format!("cannot create a Kafka producer: {e}")))?;
        if guarantee == Guarantee::ExactlyOnce {
            producer
                .init_transactions(TRANSACTION_TIMEOUT)
                .map_err(|e| TaskError::kafka("cannot initialise transactions", &e))?;
        }
        Ok(Self {
            producer,
            guarantee,
            open: false,
        })
    }

    pub fn guarantee(&self) -> Guarantee {
        self.guarantee
    }

    /// Opens a transaction for what comes next, under exactly-once (once per commit).
    pub fn begin(&mut self) -> Result<(), TaskError> {
        if self.guarantee == Guarantee::ExactlyOnce && !self.open {
            self.producer
                .begin_transaction()
                .map_err(|e| TaskError::kafka("cannot begin a transaction", &e))?;
            self.open = true;
        }
        Ok(())
    }

    /// Commits the open transaction with `offsets` (the next offset to read of each input
    /// partition) for `consumer`'s group, under exactly-once. Blocking.
    pub fn commit_transaction_with<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> Result<(), TaskError> {
        if !self.open {
            return Ok(());
        }
        let result = self.commit_transaction(consumer, offsets);
        if result.is_err() {
            self.abort();
        }
        self.open = false;
        result
    }

    fn commit_transaction<C: ConsumerContext>(
        &self,
        consumer: &StreamConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> Result<(), TaskError> {
        if offsets.count() > 0 {
            let group = consumer.group_metadata().ok_or_else(|| {
                TaskError::retriable("the consumer has no group metadata yet".to_string())
            })?;
            self.producer
                .send_offsets_to_transaction(offsets, &group, TRANSACTION_TIMEOUT)
                .map_err(|e| TaskError::kafka("cannot add offsets to the transaction", &e))?;
        }
        self.producer
            .commit_transaction(TRANSACTION_TIMEOUT)
            .map_err(|e| TaskError::kafka("cannot commit the transaction", &e))
    }

    /// Aborts the open transaction, if any: its outputs and changelog records are never
    /// read by read_committed consumers. Blocking.
    pub fn abort(&mut self) {
        if self.open {
            if let Err(e) = self.producer.abort_transaction(TRANSACTION_TIMEOUT) {
                tracing::warn!("cannot abort the transaction: {e}");
            }
            self.open = false;
        }
    }
}

/// The next offset to read of each input partition, past every record of `records`.
pub fn next_offsets<'a>(
    records: impl IntoIterator<Item = &'a crate::pipeline::InputRecord>,
) -> Result<TopicPartitionList, TaskError> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for r in records {
        let e = next.entry((r.topic.as_str(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(|e| TaskError::fatal(e.to_string()))?;
    }
    Ok(tpl)
}

/// This process's stable identity within its service, kept in the state directory so that
/// a restarted process has the same transactional ids and fences what it left behind.
pub fn process_id(state_dir: &std::path::Path) -> Result<String, String> {
    let path = state_dir.join("process-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id = format!("{:x}-{:x}", nanos, std::process::id());
    std::fs::write(&path, &id).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarantees_are_read_as_kafka_streams_names_them() {
        let props = |v: &str| {
            BTreeMap::from([(
                "ksql.streams.processing.guarantee".to_string(),
                v.to_string(),
            )])
        };
        assert_eq!(
            Guarantee::from_properties(&BTreeMap::new()),
            Ok(Guarantee::AtLeastOnce)
        );
        assert_eq!(
            Guarantee::from_properties(&props("exactly_once_v2")),
            Ok(Guarantee::ExactlyOnce)
        );
        assert_eq!(
            Guarantee::from_properties(&props("EXACTLY_ONCE")),
            Ok(Guarantee::ExactlyOnce)
        );
        let err = Guarantee::from_properties(&props("twice")).unwrap_err();
        assert!(err.contains("processing.guarantee"), "{err}");
    }

    #[test]
    fn the_commit_interval_is_every_batch_unless_set() {
        assert_eq!(commit_interval(&BTreeMap::new()), Ok(Duration::ZERO));
        let set = BTreeMap::from([("commit.interval.ms".to_string(), "100".to_string())]);
        assert_eq!(commit_interval(&set), Ok(Duration::from_millis(100)));
        let bad = BTreeMap::from([("commit.interval.ms".to_string(), "soon".to_string())]);
        assert!(commit_interval(&bad)
            .unwrap_err()
            .contains("commit.interval.ms"));
    }

    #[test]
    fn acknowledged_offsets_keep_the_furthest_per_partition() {
        let acknowledged = Acknowledged::default();
        let mut first = TopicPartitionList::new();
        first
            .add_partition_offset("t", 0, Offset::Offset(5))
            .unwrap();
        first
            .add_partition_offset("t", 1, Offset::Offset(3))
            .unwrap();
        acknowledged.add(&first, 8);
        let mut second = TopicPartitionList::new();
        second
            .add_partition_offset("t", 0, Offset::Offset(9))
            .unwrap();
        acknowledged.add(&second, 4);
        let (only_one, records) = acknowledged.take(|_, p| p == 1);
        assert_eq!(only_one.count(), 1);
        assert_eq!(records, 0, "counted with the first partition");
        let (rest, records) = acknowledged.take(|_, _| true);
        assert_eq!(
            rest.find_partition("t", 0).map(|e| e.offset()),
            Some(Offset::Offset(9))
        );
        assert_eq!(records, 12);
        assert!(acknowledged.is_empty());
        acknowledged.put_back(&rest, 12);
        assert!(!acknowledged.is_empty());
    }

    #[test]
    fn the_process_id_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("brook-pid-{}", std::process::id()));
        let first = process_id(&dir).unwrap();
        assert_eq!(process_id(&dir).unwrap(), first);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
