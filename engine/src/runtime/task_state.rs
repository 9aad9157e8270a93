//! The state of a persistent query's tasks on Kafka: one RocksDB store per input partition
//! under the state directory, a compacted changelog topic with a partition per task, and
//! restore on task start from the local store plus the changelog after the offset the
//! store recorded (all of it when the local store is gone).

use super::standby::{Standby, Standbys};
use super::supervisor::TaskError;
use crate::kafka::KafkaSettings;
use brook_state::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a long restore reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How a restore went: records applied, or a local store ahead of its changelog.
enum Restore {
    Done(usize),
    Ahead,
}

/// How changelogs are read back (restore, standby copies): from given offsets, nothing
/// committed, and only committed transactions (records of aborted ones are not state).
pub(super) fn changelog_reader_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = settings.reader_config(group, crate::kafka::Prefetch::Throughput);
    config.set("isolation.level", "read_committed");
    config
}

/// Applies one changelog record to a store: a value is put, a tombstone deletes.
pub(super) fn apply_change(store: &mut Store, key: Option<&[u8]>, value: Option<&[u8]>) {
    match (key, value) {
        (Some(k), Some(v)) => store.put(k, v),
        (Some(k), None) => store.delete(k),
        _ => {}
    }
}

impl Drop for TaskStates {
    /// The stores close before their standby copies take them up again.
    fn drop(&mut self) {
        let partitions: Vec<i32> = self.stores.keys().copied().collect();
        self.stores.clear();
        if let Some(standby) = &self.standby {
            for partition in partitions {
                standby.release(partition);
            }
        }
    }
}

/// The changelog offsets each task's sent changes reached (none: it sent nothing).
pub struct SentChanges(Vec<(i32, Option<i64>)>);

pub struct TaskStates {
    dir: PathBuf,
    pub changelog: String,
    settings: KafkaSettings,
    stores: BTreeMap<i32, Store>,
    metrics: crate::metrics::QueryMetrics,
    /// Where restores report their progress (the query's status).
    health: Arc<super::QueryHealth>,
    /// The warm copies of this changelog's other partitions, with `num.standby.replicas`.
    standby: Option<Arc<Standby>>,
}

impl TaskStates {
    pub fn new(
        dir: PathBuf,
        changelog: String,
        settings: KafkaSettings,
        metrics: crate::metrics::QueryMetrics,
        health: Arc<super::QueryHealth>,
        standbys: Option<&Arc<Standbys>>,
    ) -> Self {
        let standby = standbys.map(|s| s.follow(dir.clone(), &changelog));
        Self {
            dir,
            changelog,
            settings,
            metrics,
            health,
            stores: BTreeMap::new(),
            standby,
        }
    }

    /// The store of `partition`'s task, opened and restored on first use; a standby copy
    /// of it is taken over first.
    pub fn store(&mut self, partition: i32) -> Result<&mut Store, TaskError> {
        if !self.stores.contains_key(&partition) {
            if let Some(standby) = &self.standby {
                standby.claim(partition);
            }
            let opened = self.open(partition);
            if let (Err(_), Some(standby)) = (&opened, &self.standby) {
                standby.release(partition);
            }
            self.stores.insert(partition, opened?);
        }
        self.stores
            .get_mut(&partition)
            .ok_or_else(|| TaskError::fatal("state store vanished"))
    }

    /// Opens and restores the store of `partition`'s task.
    fn open(&self, partition: i32) -> Result<Store, TaskError> {
        let dir = self.dir.join(partition.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| {
            TaskError::fatal(format!(
                "cannot create state directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut store = Store::open(&dir).map_err(|e| TaskError::fatal(e.to_string()))?;
        let restored = tokio::task::block_in_place(|| {
            match self.restore(partition, &mut store)? {
                Restore::Done(n) => Ok::<_, TaskError>(n),
                Restore::Ahead => {
                    // The store holds changes the changelog no longer has (the
                    // broker lost them): it is rebuilt from the changelog alone.
                    drop(std::mem::replace(&mut store, Store::memory()));
                    std::fs::remove_dir_all(&dir).map_err(|e| {
                        TaskError::fatal(format!("cannot remove {}: {e}", dir.display()))
                    })?;
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        TaskError::fatal(format!("cannot create {}: {e}", dir.display()))
                    })?;
                    store = Store::open(&dir).map_err(|e| TaskError::fatal(e.to_string()))?;
                    match self.restore(partition, &mut store)? {
                        Restore::Done(n) => Ok(n),
                        Restore::Ahead => Err(TaskError::fatal(format!(
                            "the store of {} partition {partition} is ahead of its changelog even when rebuilt",
                            self.changelog
                        ))),
                    }
                }
            }
        })?;
        tracing::info!(
            "restored {restored} changelog records of {} partition {partition}",
            self.changelog
        );
        self.metrics.restored(restored as u64);
        Ok(store)
    }

    /// About how many keys and bytes the open stores hold.
    pub fn size(&self) -> (u64, u64) {
        self.stores
            .values()
            .map(Store::estimated_size)
            .fold((0, 0), |(k, b), (k2, b2)| (k + k2, b + b2))
    }

    /// Closes a task's store (its writes are all checkpointed by then).
    pub fn close(&mut self, partition: i32) {
        if self.stores.remove(&partition).is_some() {
            tracing::debug!(
                "closed the store of {} partition {partition}",
                self.changelog
            );
            if let Some(standby) = &self.standby {
                standby.release(partition);
            }
        }
    }

    /// Applies the committed changelog records the local store has not seen, however many
    /// there are, reporting progress as it goes.
    fn restore(&self, partition: i32, store: &mut Store) -> Result<Restore, TaskError> {
        let changelog = &self.changelog;
        let consumer: BaseConsumer =
            changelog_reader_config(&self.settings, &format!("{changelog}-restore"))
                .create()
                .map_err(|e| {
                    TaskError::fatal(format!("cannot create the restore consumer: {e}"))
                })?;
        let (low, high) = consumer
            .fetch_watermarks(changelog, partition, Duration::from_secs(30))
            .map_err(|e| TaskError::kafka(format!("cannot read the end of {changelog}"), &e))?;
        let from = match store
            .changelog_offset()
            .map_err(|e| TaskError::fatal(e.to_string()))?
        {
            Some(o) if o >= high => {
                tracing::warn!(
                    "the store of {changelog} partition {partition} has changes up to offset {o}, past the changelog's end ({high}): rebuilding it from the changelog"
                );
                return Ok(Restore::Ahead);
            }
            Some(o) => (o + 1).max(low),
            None => low,
        };
        let to_restore = (high - from).max(0) as u64;
        let report = |restored: u64, done: bool| {
            self.health.restoring(
                changelog,
                partition,
                super::RestoreProgress {
                    restored,
                    to_restore,
                    done,
                },
            );
        };
        report(0, from >= high);
        if from >= high {
            return Ok(Restore::Done(0));
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(changelog, partition, Offset::Offset(from))
            .map_err(|e| TaskError::fatal(e.to_string()))?;
        consumer
            .assign(&tpl)
            .map_err(|e| TaskError::kafka(format!("cannot read {changelog}"), &e))?;
        let mut count = 0;
        let mut last = None;
        let mut reported = Instant::now();
        // The position, not the last record, says when the end is reached: transaction
        // markers take offsets that no record is read at.
        let position = |consumer: &BaseConsumer| {
            consumer
                .position()
                .ok()
                .and_then(|p| p.find_partition(changelog, partition).map(|e| e.offset()))
                .and_then(|o| match o {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .unwrap_or(from)
        };
        while position(&consumer) < high {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    apply_change(store, m.key(), m.payload());
                    last = Some(m.offset());
                    count += 1;
                    if count % 1000 == 0 {
                        report(count as u64, false);
                    }
                    if count % 10_000 == 0 {
                        store
                            .flush(last)
                            .map_err(|e| TaskError::fatal(e.to_string()))?;
                    }
                }
                Some(Err(e)) => {
                    return Err(TaskError::kafka(format!("cannot restore {changelog}"), &e))
                }
                None => {}
            }
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                tracing::info!(
                    "restoring {changelog} partition {partition}: {count} records of about {to_restore}"
                );
            }
        }
        store
            .flush(last)
            .map_err(|e| TaskError::fatal(e.to_string()))?;
        report(count as u64, true);
        Ok(Restore::Done(count))
    }

    /// Writes each task's pending state changes to its changelog partition and waits for
    /// the acknowledgements. The stores keep the changes pending until `flush`.
    pub async fn send_changes(
        &mut self,
        producer: &FutureProducer,
    ) -> Result<SentChanges, TaskError> {
        let mut sent = Vec::new();
        let (mut records, mut bytes) = (0u64, 0u64);
        for (partition, store) in self.stores.iter_mut() {
            let mut deliveries = Vec::new();
            for (key, value) in store.pending() {
                records += 1;
                bytes += (key.len() + value.as_ref().map_or(0, |v| v.len())) as u64;
                let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.changelog)
                    .partition(*partition)
                    .key(key);
                if let Some(v) = value {
                    record = record.payload(v);
                }
                match producer.send_result(record) {
                    Ok(d) => deliveries.push(d),
                    Err((e, _)) => {
                        return Err(TaskError::kafka(
                            format!("cannot produce to {}", self.changelog),
                            &e,
                        ))
                    }
                }
            }
            if deliveries.is_empty() {
                continue;
            }
            let mut last = None;
            for result in futures::future::join_all(deliveries).await {
                match result {
                    Ok(Ok(delivery)) => last = last.max(Some(delivery.offset)),
                    Ok(Err((e, _))) => {
                        return Err(TaskError::kafka(
                            format!("a record of {} was not delivered", self.changelog),
                            &e,
                        ))
                    }
                    Err(_) => {
                        return Err(TaskError::fatal("the producer closed before delivering"))
                    }
                }
            }
            sent.push((*partition, last));
        }
        self.metrics
            .changelog_written(&self.changelog, records, bytes);
        Ok(SentChanges(sent))
    }

    /// Makes sent changes durable in the local stores, with the changelog offset each
    /// reached.
    pub fn flush(&mut self, sent: &SentChanges) -> Result<(), TaskError> {
        for (partition, last) in &sent.0 {
            if let Some(store) = self.stores.get_mut(partition) {
                store
                    .flush(*last)
                    .map_err(|e| TaskError::fatal(e.to_string()))?;
            }
        }
        Ok(())
    }
}
