//! Standby replicas (Kafka Streams' `num.standby.replicas`): with it set, a process keeps a
//! warm copy of the stores of every task of a query that it does not run, by following
//! their changelog partitions into the same local stores an active task would open. When
//! a rebalance hands it one of those tasks (the process that ran it died, or the service
//! scaled down), the task opens the warm store and restores only the changelog records
//! written since the copy last caught up, not the whole changelog.
//!
//! A copy and the active task share a store's directory, and RocksDB lets one handle at a
//! time hold it: a task claims its partition before opening the store (the copy is
//! flushed with the changelog offset it reached, then closed) and releases it when it
//! closes the store (revoked, or the task stopped), and the copy takes it up again.
//!
//! Every process that has the setting follows every partition it does not run, so with
//! two processes there is exactly one warm copy of each task, and with more there are
//! more copies than asked for (never fewer); whichever process takes a task over has one.

use super::task_state::{apply_change, changelog_reader_config};
use crate::kafka::KafkaSettings;
use brook_state::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often a copy makes what it applied durable, and looks for new partitions.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How many records a copy applies under one lock.
const BATCH: usize = 1000;

/// `num.standby.replicas` (with or without `ksql.streams.`): how many warm copies of each
/// task the service keeps; 0, the default, keeps none.
pub fn standby_replicas(properties: &BTreeMap<String, String>) -> Result<u32, String> {
    let value = properties
        .get("ksql.streams.num.standby.replicas")
        .or_else(|| properties.get("num.standby.replicas"));
    match value {
        None => Ok(0),
        Some(v) => v.trim().parse().map_err(|_| {
            format!("num.standby.replicas must be a whole number of replicas, not '{v}'")
        }),
    }
}

/// A query's standby copies, one follower per changelog its tasks write.
pub struct Standbys {
    settings: KafkaSettings,
    metrics: crate::metrics::QueryMetrics,
    followers: Mutex<BTreeMap<String, Arc<Standby>>>,
}

impl Standbys {
    pub fn new(settings: KafkaSettings, metrics: crate::metrics::QueryMetrics) -> Arc<Self> {
        Arc::new(Self {
            settings,
            metrics,
            followers: Mutex::default(),
        })
    }

    /// The follower of `changelog`, whose stores live under `dir`; started on first use.
    /// It follows the changelog until the query and its tasks let go of it.
    pub fn follow(&self, dir: PathBuf, changelog: &str) -> Arc<Standby> {
        let mut followers = lock(&self.followers);
        if let Some(s) = followers.get(changelog) {
            return s.clone();
        }
        let standby = Arc::new(Standby {
            changelog: changelog.to_string(),
            dir,
            shared: Mutex::default(),
        });
        let weak = Arc::downgrade(&standby);
        let settings = self.settings.clone();
        let metrics = self.metrics.clone();
        let name = format!("standby-{changelog}");
        let spawned = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || follow(weak, settings, metrics));
        if let Err(e) = spawned {
            tracing::error!("cannot start the standby copy of {changelog}: {e}");
        }
        followers.insert(changelog.to_string(), standby.clone());
        standby
    }
}

/// The warm copies of one changelog's partitions in this process.
pub struct Standby {
    changelog: String,
    dir: PathBuf,
    shared: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Partitions active tasks of this process hold, with how many claims (a task being
    /// closed and its successor can overlap): never followed.
    active: BTreeMap<i32, usize>,
    /// Partitions whose copy could not be opened, warned about once.
    failed: BTreeSet<i32>,
    copies: BTreeMap<i32, WarmCopy>,
    /// The set of copies changed since the consumer's assignment was made.
    reassign: bool,
}

struct WarmCopy {
    store: Store,
    /// The last changelog offset applied, and whether it is flushed.
    last: Option<i64>,
    unflushed: bool,
}

impl WarmCopy {
    fn flush(&mut self) -> Result<(), String> {
        if self.unflushed {
            self.store.flush(self.last).map_err(|e| e.to_string())?;
            self.unflushed = false;
        }
        Ok(())
    }
}

impl Standby {
    /// An active task takes `partition`: its copy, if any, is made durable and closed, so
    /// that the task opens the store and restores only what the copy had not reached.
    pub fn claim(&self, partition: i32) {
        let mut shared = lock(&self.shared);
        *shared.active.entry(partition).or_default() += 1;
        if let Some(mut copy) = shared.copies.remove(&partition) {
            if let Err(e) = copy.flush() {
                tracing::warn!(
                    "the standby copy of {} partition {partition} could not be flushed ({e}): the task restores what it lacks from the changelog",
                    self.changelog
                );
            }
            tracing::info!(
                "the task of {} partition {partition} takes over its standby copy (changelog offset {:?})",
                self.changelog,
                copy.last
            );
            shared.reassign = true;
        }
    }

    /// The active task let go of `partition` (its store is closed): the copy follows it.
    pub fn release(&self, partition: i32) {
        let mut shared = lock(&self.shared);
        if let Some(claims) = shared.active.get_mut(&partition) {
            *claims -= 1;
            if *claims == 0 {
                shared.active.remove(&partition);
                shared.reassign = true;
            }
        }
    }

    /// Opens copies of the partitions below `partitions` that no active task holds (with
    /// `open`); returns the consumer's new assignment when the set of copies changed.
    fn sync(&self, partitions: i32, open: bool) -> Option<TopicPartitionList> {
        let mut shared = lock(&self.shared);
        for partition in (0..partitions).filter(|_| open) {
            if shared.active.contains_key(&partition) || shared.copies.contains_key(&partition) {
                continue;
            }
            let dir = self.dir.join(partition.to_string());
            let opened = std::fs::create_dir_all(&dir)
                .map_err(|e| e.to_string())
                .and_then(|_| Store::open(&dir).map_err(|e| e.to_string()));
            match opened {
                Ok(store) => {
                    let last = store.changelog_offset().ok().flatten();
                    shared.copies.insert(
                        partition,
                        WarmCopy {
                            store,
                            last,
                            unflushed: false,
                        },
                    );
                    shared.reassign = true;
                    shared.failed.remove(&partition);
                }
                Err(e) => {
                    if shared.failed.insert(partition) {
                        tracing::warn!(
                            "cannot open the standby copy of {} partition {partition} (tried again every second): {e}",
                            self.changelog
                        );
                    }
                }
            }
        }
        if !std::mem::take(&mut shared.reassign) {
            return None;
        }
        let mut list = TopicPartitionList::new();
        for (partition, copy) in &shared.copies {
            let offset = match copy.last {
                Some(o) => Offset::Offset(o + 1),
                None => Offset::Beginning,
            };
            // Adding a partition of a valid name cannot fail.
            let _ = list.add_partition_offset(&self.changelog, *partition, offset);
        }
        Some(list)
    }

    /// Applies changelog records to the copies they belong to; records of a partition
    /// claimed meanwhile, or already applied, are dropped. Returns how many were applied.
    fn apply(&self, records: Vec<ChangeRecord>) -> u64 {
        let mut shared = lock(&self.shared);
        let mut applied = 0;
        for r in records {
            let Some(copy) = shared.copies.get_mut(&r.partition) else {
                continue;
            };
            if copy.last.is_some_and(|last| r.offset <= last) {
                continue;
            }
            apply_change(&mut copy.store, r.key.as_deref(), r.value.as_deref());
            copy.last = Some(r.offset);
            copy.unflushed = true;
            applied += 1;
        }
        applied
    }

    /// Makes what every copy applied durable, with the offset it reached.
    fn flush(&self) {
        let mut shared = lock(&self.shared);
        for (partition, copy) in shared.copies.iter_mut() {
            if let Err(e) = copy.flush() {
                tracing::warn!(
                    "cannot flush the standby copy of {} partition {partition}: {e}",
                    self.changelog
                );
            }
        }
    }

    /// The copies, and the records they still have to apply to reach `end` (each
    /// partition's end; none while one is not known). `position` is where the consumer
    /// reads next: past transaction markers, which no record is read at.
    fn lag(
        &self,
        end: impl Fn(i32) -> Option<i64>,
        position: impl Fn(i32) -> Option<i64>,
    ) -> (usize, Option<i64>) {
        let shared = lock(&self.shared);
        let lag = shared
            .copies
            .iter()
            .map(|(p, copy)| {
                let reached = copy
                    .last
                    .map_or(0, |o| o + 1)
                    .max(position(*p).unwrap_or(0));
                end(*p).map(|e| (e - reached).max(0))
            })
            .sum();
        (shared.copies.len(), lag)
    }
}

/// Each followed partition's end (its last stable offset), from librdkafka's statistics.
#[derive(Default)]
struct Ends(Mutex<BTreeMap<i32, i64>>);

impl Ends {
    fn ends(&self) -> BTreeMap<i32, i64> {
        lock(&self.0).clone()
    }
}

impl rdkafka::ClientContext for Ends {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = lock(&self.0);
        for topic in statistics.topics.values() {
            for (partition, p) in &topic.partitions {
                // -1 is librdkafka's "not known yet"; partition -1 its internal queue.
                if *partition >= 0 && p.ls_offset >= 0 {
                    ends.insert(*partition, p.ls_offset);
                }
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Ends {}

/// A changelog record as read, owned.
struct ChangeRecord {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// The follower's loop, on a thread of its own: reads the changelog partitions of the
/// copies and applies them, until the standby is dropped.
fn follow(standby: Weak<Standby>, settings: KafkaSettings, metrics: crate::metrics::QueryMetrics) {
    let Some(changelog) = standby.upgrade().map(|s| s.changelog.clone()) else {
        return;
    };
    let consumer: BaseConsumer<Ends> =
        match changelog_reader_config(&settings, &format!("{changelog}-standby"))
            .set("statistics.interval.ms", "1000")
            .create_with_context(Ends::default())
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot create the standby consumer of {changelog}: {e}");
                return;
            }
        };
    let mut partitions = 0;
    let mut checked: Option<Instant> = None;
    let mut assigned = false;
    loop {
        let Some(standby) = standby.upgrade() else {
            break;
        };
        let tick = checked.is_none_or(|t| t.elapsed() >= FLUSH_EVERY);
        if tick {
            checked = Some(Instant::now());
            standby.flush();
            // The changelog appears when the first task writes to it.
            if let Ok(md) = consumer.fetch_metadata(Some(&changelog), Duration::from_secs(5)) {
                partitions = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == changelog && t.error().is_none())
                    .map_or(partitions, |t| t.partitions().len() as i32);
            }
            // The ends librdkafka's statistics give, as its last fetches learnt them.
            let ends = consumer.context().ends();
            let positions: BTreeMap<i32, i64> = consumer
                .position()
                .map(|list| {
                    list.elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(o) => Some((e.partition(), o)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let (copies, lag) =
                standby.lag(|p| ends.get(&p).copied(), |p| positions.get(&p).copied());
            metrics.standby(&changelog, copies as u64, lag.map(|l| l as u64));
        }
        if let Some(list) = standby.sync(partitions, tick) {
            match consumer.assign(&list) {
                Ok(()) => assigned = list.count() > 0,
                Err(e) => tracing::warn!("cannot follow {changelog}: {e}"),
            }
        }
        if !assigned {
            drop(standby);
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let mut records = Vec::new();
        let mut wait = Duration::from_millis(200);
        while records.len() < BATCH {
            match consumer.poll(wait) {
                Some(Ok(m)) => records.push(ChangeRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                }),
                Some(Err(e)) => {
                    tracing::warn!("the standby copy of {changelog} cannot read it: {e}");
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        let applied = standby.apply(records);
        metrics.standby_applied(&changelog, applied);
    }
    tracing::debug!("stopped following {changelog}");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::standby_replicas;
    use std::collections::BTreeMap;

    #[test]
    fn the_setting_is_read_with_or_without_its_prefix_and_checked() {
        let mut p = BTreeMap::new();
        assert_eq!(standby_replicas(&p), Ok(0));
        p.insert("num.standby.replicas".to_string(), "1".to_string());
        assert_eq!(standby_replicas(&p), Ok(1));
        p.insert(
            "ksql.streams.num.standby.replicas".to_string(),
            "2".to_string(),
        );
        assert_eq!(standby_replicas(&p), Ok(2));
        p.insert(
            "ksql.streams.num.standby.replicas".to_string(),
            "-1".to_string(),
        );
        assert!(standby_replicas(&p).unwrap_err().contains("'-1'"));
    }
}
