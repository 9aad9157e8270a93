//! Tables as pull queries read them on Kafka: each queried table's topic is followed by a
//! consumer of its own into a local RocksDB store that keeps the latest record of each key
//! (a record without a value deletes its key), with the offset it has reached in each
//! partition. A pull query first waits until the store holds what the topic held when
//! the query came, then reads the store: what it costs grows with the table, not with
//! the topic's history, and a restarted server goes on from where its store was.

use crate::kafka::KafkaSettings;
use crate::kafka::Prefetch;
use crate::pipeline::{Headers, InputRecord};
use crate::runtime::partitions_of;
use crate::serving::KeySelection;
use brook_state::Store;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Store keys: rows under ROW (partition, then the record's key), offsets under POSITION.
const ROW: u8 = 0;
const POSITION: u8 = 1;
/// How long a pull query waits for its table's store to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRow {
    offset: i64,
    timestamp: i64,
    headers: Headers,
    value: Vec<u8>,
}

fn row_key(partition: i32, key: Option<&[u8]>) -> Vec<u8> {
    let mut k = vec![ROW];
    k.extend_from_slice(&partition.to_be_bytes());
    // A record without a key sorts first in its partition, apart from every key.
    match key {
        None => k.push(0),
        Some(bytes) => {
            k.push(1);
            k.extend_from_slice(bytes);
        }
    }
    k
}

/// The first key after every key that starts with `prefix`.
fn successor(prefix: &[u8]) -> Vec<u8> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return next;
        }
    }
    vec![ROW + 1]
}

fn position_key(partition: i32) -> Vec<u8> {
    let mut k = vec![POSITION];
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// One table's store and its follower.
pub struct TableView {
    topic: String,
    store: Arc<Mutex<Store>>,
    /// The next offset of each partition the store is missing.
    positions: watch::Receiver<BTreeMap<i32, i64>>,
    /// Ends the follower when the view is dropped.
    _stop: watch::Sender<bool>,
    settings: KafkaSettings,
}

impl TableView {
    /// Starts following `topic`; `None` while the brokers know no partition of it (the
    /// query that creates it has not yet), so that a later query starts the view again.
    fn start(settings: &KafkaSettings, topic: &str, dir: &Path) -> Result<Option<Self>, String> {
        let consumer: StreamConsumer = settings
            .reader_config(&format!("{topic}-pull-view"), Prefetch::Throughput)
            .create()
            .map_err(|e| format!("cannot follow {topic}: {e}"))?;
        let partitions = partitions_of(&consumer, topic, Duration::from_secs(30))?;
        if partitions.is_empty() {
            return Ok(None);
        }
        let store = Store::open(dir)
            .map_err(|e| format!("cannot open the store of {topic} at {}: {e}", dir.display()))?;
        let mut known = BTreeMap::new();
        for (k, v) in store
            .range(&[POSITION], &[POSITION + 1])
            .map_err(|e| e.to_string())?
        {
            if let (Ok(p), Ok(o)) = (k[1..].try_into(), v.as_slice().try_into()) {
                known.insert(i32::from_be_bytes(p), i64::from_be_bytes(o));
            }
        }
        let mut assignment = rdkafka::TopicPartitionList::new();
        for p in &partitions {
            let start = match known.get(p) {
                Some(offset) => rdkafka::Offset::Offset(*offset),
                None => rdkafka::Offset::Beginning,
            };
            assignment
                .add_partition_offset(topic, *p, start)
                .map_err(|e| e.to_string())?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot follow {topic}: {e}"))?;
        let store = Arc::new(Mutex::new(store));
        let (positions_tx, positions) = watch::channel(known);
        let (stop, mut stopped) = watch::channel(false);
        let follower_store = store.clone();
        let name = topic.to_string();
        tokio::spawn(async move {
            while let Some(batch) = crate::runtime::next_batch(&consumer, &mut stopped, 1000).await
            {
                let Ok(mut store) = follower_store.lock() else {
                    return;
                };
                let mut reached = positions_tx.borrow().clone();
                for record in &batch {
                    let key = row_key(record.partition, record.key.as_deref());
                    match &record.value {
                        Some(value) => {
                            let row = StoredRow {
                                offset: record.offset,
                                timestamp: record.timestamp,
                                headers: record.headers.clone(),
                                value: value.clone(),
                            };
                            store.put(&key, &crate::internal_format::encode(&row));
                        }
                        None => store.delete(&key),
                    }
                    reached.insert(record.partition, record.offset + 1);
                }
                for (p, o) in &reached {
                    store.put(&position_key(*p), &o.to_be_bytes());
                }
                if let Err(e) = store.flush(None) {
                    tracing::warn!("cannot write the store of {name}: {e}");
                    return;
                }
                drop(store);
                positions_tx.send_replace(reached);
            }
        });
        Ok(Some(Self {
            topic: topic.to_string(),
            store,
            positions,
            _stop: stop,
            settings: settings.clone(),
        }))
    }

    /// The table's rows once the store holds every record the topic holds now, in
    /// partition and key order: all of them, or those whose keys start with one of `keys`.
    pub async fn rows(&self, selection: &KeySelection) -> Result<Vec<InputRecord>, String> {
        let settings = self.settings.clone();
        let topic = self.topic.clone();
        let ends = tokio::task::spawn_blocking(move || end_offsets(&settings, &topic))
            .await
            .map_err(|e| e.to_string())??;
        let mut positions = self.positions.clone();
        let caught_up = |reached: &BTreeMap<i32, i64>| {
            ends.iter()
                .all(|(p, end)| *end == 0 || reached.get(p).is_some_and(|o| o >= end))
        };
        let deadline = Instant::now() + CATCH_UP;
        while !caught_up(&positions.borrow()) {
            let left = deadline.saturating_duration_since(Instant::now());
            // Offsets can end past a partition's last record (transaction markers): after
            // a while the store's rows are served as they are, as ksqlDB serves a lagging
            // replica's.
            match tokio::time::timeout(left, positions.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(format!(
                        "the local store of {} stopped following it",
                        self.topic
                    ))
                }
                Err(_) => {
                    tracing::warn!(
                        "the local store of {} is behind its topic; answering from it as it is",
                        self.topic
                    );
                    break;
                }
            }
        }
        let store = self
            .store
            .lock()
            .map_err(|_| "a store lock was poisoned".to_string())?;
        let mut entries = Vec::new();
        match selection {
            KeySelection::All => {
                entries = store.range(&[ROW], &[ROW + 1]).map_err(|e| e.to_string())?;
            }
            KeySelection::Prefixes(keys) => {
                // A windowed key is its key's bytes followed by the window: every stored
                // key that starts with a wanted key's bytes, in every partition.
                for partition in ends.keys() {
                    for key in keys {
                        let from = row_key(*partition, Some(key));
                        let to = successor(&from);
                        entries.extend(store.range(&from, &to).map_err(|e| e.to_string())?);
                    }
                }
                entries.sort();
                entries.dedup_by(|a, b| a.0 == b.0);
            }
            KeySelection::Between { from, to } => {
                // Each partition's keys in the store's order, from the lower bound to past
                // every key starting with the upper one.
                for partition in ends.keys() {
                    let start = row_key(*partition, Some(from.as_deref().unwrap_or_default()));
                    let end = match to {
                        Some(to) => successor(&row_key(*partition, Some(to))),
                        None => successor(&row_key(*partition, None)[..5]),
                    };
                    entries.extend(store.range(&start, &end).map_err(|e| e.to_string())?);
                }
            }
        }
        let mut rows = Vec::new();
        for (k, v) in entries {
            let Some(partition) = k.get(1..5).and_then(|p| p.try_into().ok()) else {
                continue;
            };
            let key = match k.get(5) {
                Some(1) => Some(k[6..].to_vec()),
                _ => None,
            };
            let row: StoredRow = crate::internal_format::decode(&v, "table row")?;
            rows.push(InputRecord {
                headers: row.headers,
                topic: self.topic.clone(),
                partition: i32::from_be_bytes(partition),
                offset: row.offset,
                timestamp: row.timestamp,
                key,
                value: Some(row.value),
            });
        }
        Ok(rows)
    }
}

/// Each partition's end offset (where the next record will go).
///
/// A client of its own: with the ends asked through the follower's consumer, pull queries
/// stopped seeing rows written since (the migrations test waited out its minute for a row
/// it had inserted).
fn end_offsets(settings: &KafkaSettings, topic: &str) -> Result<BTreeMap<i32, i64>, String> {
    let consumer: BaseConsumer = settings
        .reader_config(&format!("{topic}-pull-ends"), Prefetch::Small)
        .create()
        .map_err(|e| format!("cannot read {topic}: {e}"))?;
    let mut ends = BTreeMap::new();
    for p in partitions_of(&consumer, topic, Duration::from_secs(30))? {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .map_err(|e| format!("cannot read {topic}: {e}"))?;
        ends.insert(p, high);
    }
    Ok(ends)
}

/// The views of a server's tables, started when first queried.
#[derive(Default)]
pub struct TableViews {
    views: Mutex<BTreeMap<String, Arc<TableView>>>,
}

impl TableViews {
    /// The view of `topic`, started (and caught up from its store under `dir`) if needed;
    /// `None` while the topic has no partitions (and so no rows).
    pub fn view(
        &self,
        settings: &KafkaSettings,
        topic: &str,
        dir: &Path,
    ) -> Result<Option<Arc<TableView>>, String> {
        let mut views = self
            .views
            .lock()
            .map_err(|_| "a lock was poisoned".to_string())?;
        if let Some(v) = views.get(topic) {
            return Ok(Some(v.clone()));
        }
        let Some(view) = TableView::start(settings, topic, &dir.join(topic))? else {
            return Ok(None);
        };
        let view = Arc::new(view);
        views.insert(topic.to_string(), view.clone());
        Ok(Some(view))
    }

    /// Stops following `topic` (its table was dropped) and removes its store.
    pub fn forget(&self, topic: &str, dir: &Path) {
        if let Ok(mut views) = self.views.lock() {
            if views.remove(topic).is_some() {
                let _ = std::fs::remove_dir_all(dir.join(topic));
            }
        }
    }
}
