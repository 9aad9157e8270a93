//! The commit protocol of a persistent query's tasks. At least once (the default): outputs
//! and changelog records are acknowledged, then input offsets are committed, so a crash
//! repeats work but never loses it. Exactly once (`processing.guarantee=exactly_once_v2`):
//! outputs, changelog records and input offsets go in one Kafka transaction per commit,
//! written by a transactional producer whose stable `transactional.id` fences a zombie of
//! the same task; consumers read committed records only, and local stores take a commit's
//! changes only once its transaction is committed.

use super::supervisor::TaskError;
use crate::kafka::KafkaSettings;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long transactional calls may take before they count as timed out.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Commits `offsets` (the next offset to read of each input partition) for `consumer`'s
    /// group: directly, or in the open transaction, which is then committed. Blocking.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        offsets: &TopicPartitionList,
        mode: CommitMode,
    ) -> Result<(), TaskError> {
        match self.guarantee {
            Guarantee::AtLeastOnce => {
                if offsets.count() == 0 {
                    return Ok(());
                }
                // Also moves the position the final commit reads.
                if let Err(e) = consumer.store_offsets(offsets) {
                    tracing::debug!("storing offsets: {e}");
                }
                consumer
                    .commit(offsets, mode)
                    .map_err(|e| TaskError::kafka("cannot commit offsets", &e))
            }
            Guarantee::ExactlyOnce => {
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
        }
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

/// ksqlDB's default `commit.interval.ms`.
const COMMIT_INTERVAL_MS: u64 = 2000;

/// Input offsets a task may commit (their records' outputs and changelog records are
/// acknowledged) but has not yet. At least once, a busy task commits them every
/// `commit.interval.ms` (or `ksql.streams.commit.interval.ms`; ksqlDB's default is 2 s)
/// rather than after every batch; an idle one commits them at once.
pub struct PendingCommits {
    interval: std::time::Duration,
    last: std::time::Instant,
    next: Positions,
    records: usize,
}

impl PendingCommits {
    pub fn new(properties: &BTreeMap<String, String>) -> Result<Self, String> {
        let value = properties
            .get("commit.interval.ms")
            .or_else(|| properties.get("ksql.streams.commit.interval.ms"))
            .map(|v| v.trim());
        let ms = match value {
            None | Some("") => COMMIT_INTERVAL_MS,
            Some(text) => text.parse::<u64>().map_err(|_| {
                format!("commit.interval.ms must be a whole number of milliseconds, not '{text}'")
            })?,
        };
        Ok(Self {
            interval: std::time::Duration::from_millis(ms),
            last: std::time::Instant::now(),
            next: Positions::new(),
            records: 0,
        })
    }

    /// Offsets after `records` more records that may be committed.
    pub fn add(&mut self, next: Positions, records: usize) {
        advance(&mut self.next, next);
        self.records += records;
    }

    /// Partitions this consumer lost: their new owner reads them from the last commit.
    pub fn forget(&mut self, revoked: &[(String, i32)]) {
        for (topic, partition) in revoked {
            self.next.remove(&(topic.clone(), *partition));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.next.is_empty() && self.records == 0
    }

    /// What to commit now, with the number of records it covers: everything pending
    /// once the interval has passed since the last commit, or at once when `idle`.
    pub fn due(&mut self, idle: bool) -> Option<(Positions, usize)> {
        if self.is_empty() || !(idle || self.last.elapsed() >= self.interval) {
            return None;
        }
        self.last = std::time::Instant::now();
        let records = std::mem::take(&mut self.records);
        Some((std::mem::take(&mut self.next), records))
    }
}

/// Each input partition's next offset to read.
pub type Positions = BTreeMap<(String, i32), i64>;

/// The next offset to read of each input partition, past every record of `records`.
pub fn positions<'a>(
    records: impl IntoIterator<Item = &'a crate::pipeline::InputRecord>,
) -> Positions {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for r in records {
        let e = next.entry((r.topic.as_str(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    next.into_iter()
        .map(|((topic, partition), offset)| ((topic.to_string(), partition), offset))
        .collect()
}

/// Moves `into` forward to the positions of `from` that are ahead of it.
pub fn advance(into: &mut Positions, from: Positions) {
    for (tp, offset) in from {
        let e = into.entry(tp).or_insert(0);
        *e = (*e).max(offset);
    }
}

/// Positions as the offsets to commit.
pub fn offsets_of(positions: &Positions) -> Result<TopicPartitionList, TaskError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in positions {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|e| TaskError::fatal(e.to_string()))?;
    }
    Ok(tpl)
}

/// The offsets to commit past every record of `records`.
pub fn next_offsets<'a>(
    records: impl IntoIterator<Item = &'a crate::pipeline::InputRecord>,
) -> Result<TopicPartitionList, TaskError> {
    offsets_of(&positions(records))
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
    use super::PendingCommits;

    #[test]
    fn pending_commits_wait_for_the_interval_unless_idle() {
        let props = |v: &str| [("commit.interval.ms".to_string(), v.to_string())].into();
        let mut pending = PendingCommits::new(&props("60000")).unwrap();
        assert!(pending.due(true).is_none(), "nothing to commit");
        pending.add([(("t".to_string(), 0), 5)].into(), 5);
        pending.add(
            [(("t".to_string(), 0), 9), (("t".to_string(), 1), 2)].into(),
            6,
        );
        assert!(pending.due(false).is_none(), "within the interval");
        pending.forget(&[("t".to_string(), 1)]);
        let (next, records) = pending.due(true).expect("idle: at once");
        assert_eq!(next, [(("t".to_string(), 0), 9)].into());
        assert_eq!(records, 11);
        assert!(pending.is_empty());
        let mut every_batch = PendingCommits::new(&props("0")).unwrap();
        every_batch.add([(("t".to_string(), 0), 1)].into(), 1);
        assert!(every_batch.due(false).is_some());
        assert!(PendingCommits::new(&props("soon")).is_err());
    }

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
    fn the_process_id_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("brook-pid-{}", std::process::id()));
        let first = process_id(&dir).unwrap();
        assert_eq!(process_id(&dir).unwrap(), first);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
