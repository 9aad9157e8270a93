//! The state of a persistent query's tasks on Kafka: one RocksDB store per input partition
//! under the state directory, a compacted changelog topic with a partition per task, and
//! restore on task start from the local store plus the changelog after the offset the
//! store recorded (all of it when the local store is gone).

use crate::kafka::KafkaSettings;
use brook_state::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

pub struct TaskStates {
    dir: PathBuf,
    pub changelog: String,
    settings: KafkaSettings,
    stores: BTreeMap<i32, Store>,
}

impl TaskStates {
    pub fn new(dir: PathBuf, changelog: String, settings: KafkaSettings) -> Self {
        Self {
            dir,
            changelog,
            settings,
            stores: BTreeMap::new(),
        }
    }

    /// The store of `partition`'s task, opened and restored on first use.
    pub fn store(&mut self, partition: i32) -> Result<&mut Store, String> {
        if !self.stores.contains_key(&partition) {
            let dir = self.dir.join(partition.to_string());
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
            let mut store = Store::open(&dir).map_err(|e| e.to_string())?;
            let restored = tokio::task::block_in_place(|| self.restore(partition, &mut store))?;
            tracing::info!(
                "restored {restored} changelog records of {} partition {partition}",
                self.changelog
            );
            self.stores.insert(partition, store);
        }
        self.stores
            .get_mut(&partition)
            .ok_or_else(|| "state store vanished".to_string())
    }

    /// Closes a task's store (its writes are all checkpointed by then).
    pub fn close(&mut self, partition: i32) {
        if self.stores.remove(&partition).is_some() {
            tracing::debug!(
                "closed the store of {} partition {partition}",
                self.changelog
            );
        }
    }

    /// Applies the changelog records the local store has not seen.
    fn restore(&self, partition: i32, store: &mut Store) -> Result<usize, String> {
        let consumer: BaseConsumer = self
            .settings
            .base_config()
            .set("enable.auto.commit", "false")
            .set("group.id", format!("{}-restore", self.changelog))
            .create()
            .map_err(|e| format!("cannot create the restore consumer: {e}"))?;
        let (low, high) = consumer
            .fetch_watermarks(&self.changelog, partition, Duration::from_secs(30))
            .map_err(|e| format!("cannot read the end of {}: {e}", self.changelog))?;
        let from = match store.changelog_offset().map_err(|e| e.to_string())? {
            Some(o) => (o + 1).max(low),
            None => low,
        };
        if from >= high {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.changelog, partition, Offset::Offset(from))
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + RESTORE_TIMEOUT;
        let mut count = 0;
        let mut last = from - 1;
        while last < high - 1 {
            if Instant::now() > deadline {
                return Err(format!(
                    "restoring {} partition {partition} timed out at offset {last} of {high}",
                    self.changelog
                ));
            }
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    match (m.key(), m.payload()) {
                        (Some(k), Some(v)) => store.put(k, v),
                        (Some(k), None) => store.delete(k),
                        _ => {}
                    }
                    last = m.offset();
                    count += 1;
                    if count % 10_000 == 0 {
                        store.flush(Some(last)).map_err(|e| e.to_string())?;
                    }
                }
                Some(Err(e)) => return Err(format!("cannot restore {}: {e}", self.changelog)),
                None => {}
            }
        }
        store.flush(Some(last)).map_err(|e| e.to_string())?;
        Ok(count)
    }

    /// Writes each task's pending state changes to its changelog partition, waits for the
    /// acknowledgements, then makes them durable locally with the offset they reached.
    pub async fn checkpoint(&mut self, producer: &FutureProducer) -> Result<(), String> {
        for (partition, store) in self.stores.iter_mut() {
            let mut deliveries = Vec::new();
            for (key, value) in store.pending() {
                let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.changelog)
                    .partition(*partition)
                    .key(key);
                if let Some(v) = value {
                    record = record.payload(v);
                }
                match producer.send_result(record) {
                    Ok(d) => deliveries.push(d),
                    Err((e, _)) => {
                        return Err(format!("cannot produce to {}: {e}", self.changelog))
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
                        return Err(format!("a changelog record was not delivered: {e}"))
                    }
                    Err(_) => return Err("the producer closed before delivering".into()),
                }
            }
            store.flush(last).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
