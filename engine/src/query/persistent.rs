//! A persistent query: a consumer group over its source topic, writing to its sink topic.
//! Offsets are committed only after the broker acknowledged everything the records
//! produced, so a crash repeats work but never loses it.

use super::merge::Merger;
use super::rebalance::RebalanceContext;
use super::records::{next_batch_within, produce_all};
use crate::dataflow::Operators;
use crate::formats::FormatContext;
use crate::kafka::KafkaSettings;
use crate::processing_log::ProcessingLog;
use crate::sink::SinkWriter;
use brook_planner::catalog::SourceDef;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, PartialEq)]
pub enum QueryStatus {
    Running,
    Error(String),
    Stopped,
}

pub struct PersistentQuery {
    pub id: String,
    pub sink: String,
    pub source: String,
    pub sql: String,
    status: Arc<Mutex<QueryStatus>>,
    stop: watch::Sender<bool>,
    handle: Option<JoinHandle<()>>,
}

const MAX_BATCH: usize = 1000;

struct Runner {
    id: String,
    operators: Operators,
    /// The internal topic rows pass through to reach their group's partition, if any.
    repartition: Option<String>,
    /// For a repartitioned table: each source partition's last values of its rows.
    source_states: Option<super::TaskStates>,
    /// How many bytes of updates are coalesced by key between commits (0: none).
    cache_bytes: u64,
    /// Each input partition's state (a task's store), for stateful operators.
    states: Option<super::TaskStates>,
    sink: SinkWriter,
    consumer: StreamConsumer<RebalanceContext>,
    rebalances: RebalanceContext,
    producer: FutureProducer,
    log: Arc<ProcessingLog>,
    /// How long a task waits for an input partition that is behind before it goes on
    /// without it (`max.task.idle.ms`).
    max_idle: Duration,
    /// Join inputs whose records move to their join key's partition first.
    forwards: Vec<Forward>,
}

/// A join input read from its source topic and written to its repartition topic, keyed
/// by its join key.
struct Forward {
    source: String,
    input: usize,
    slot: usize,
    topic: String,
    /// How its join key is written; none when everything goes to one partition.
    key: Option<crate::formats::ColumnsCodec>,
}

/// The repartition topic of a join input.
pub fn join_repartition_topic(group_id: &str, alias: &str) -> String {
    format!("{group_id}-Join-{alias}-repartition")
}

/// Sets a join up to read the inputs that must move through their repartition topics.
fn join_forwards(
    operators: &mut Operators,
    group_id: &str,
    formats: &FormatContext,
) -> Result<Vec<Forward>, String> {
    let Operators::Join(join) = operators else {
        return Ok(vec![]);
    };
    if join.plan.funnel {
        let forwards: Vec<Forward> = join
            .plan
            .inputs
            .iter()
            .enumerate()
            .map(|(input, spec)| Forward {
                source: spec.pre.source.topic.clone(),
                input,
                slot: 0,
                topic: join_repartition_topic(group_id, &spec.alias),
                key: None,
            })
            .collect();
        for f in &forwards {
            join.read_repartitioned(f.topic.clone(), f.input);
        }
        return Ok(forwards);
    }
    let Some(moved) = join.plan.inputs_to_repartition() else {
        return Ok(vec![]);
    };
    let inputs = &join.plan.inputs;
    // Keys are written as an input that stays keys them, so that equal keys meet.
    let target = (0..inputs.len())
        .find(|i| !moved.iter().any(|(m, _)| m == i))
        .unwrap_or(0);
    let target_source = &inputs[target].pre.source;
    let mut forwards = Vec::new();
    for (input, slot) in moved {
        let spec = &inputs[input];
        let key_type = spec.pre.projection[slot].expr.data_type.clone();
        let mut key_format = target_source.key_format.clone();
        if key_format.kind == brook_planner::formats::FormatKind::None {
            key_format =
                brook_planner::formats::Format::new(brook_planner::formats::FormatKind::Kafka);
        }
        let name = target_source
            .key_columns()
            .next()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "ROWKEY".into());
        let keyed = SourceDef {
            columns: vec![brook_planner::catalog::Column {
                name,
                data_type: key_type,
                role: brook_planner::catalog::ColumnRole::Key,
            }],
            key_format,
            ..target_source.clone()
        };
        let key = Some(crate::formats::RecordCodec::for_source(&keyed, formats).key);
        forwards.push(Forward {
            source: spec.pre.source.topic.clone(),
            input,
            slot,
            topic: join_repartition_topic(group_id, &spec.alias),
            key,
        });
    }
    for f in &forwards {
        join.read_repartitioned(f.topic.clone(), f.input);
    }
    Ok(forwards)
}

/// Whether this process has read everything `topic`'s `partition` holds now (a partition
/// it does not own counts as read).
fn caught_up<C: rdkafka::consumer::ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partition: i32,
) -> bool {
    let timeout = Duration::from_secs(2);
    let owned = consumer
        .assignment()
        .map(|a| a.find_partition(topic, partition).is_some())
        .unwrap_or(false);
    if !owned {
        return true;
    }
    let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, timeout) else {
        return true;
    };
    let offset_of =
        |tpl: &TopicPartitionList| match tpl.find_partition(topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
    if let Some(position) = consumer.position().ok().as_ref().and_then(offset_of) {
        return position >= high;
    }
    // Nothing read yet: where reading starts.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    match consumer
        .committed_offsets(tpl, timeout)
        .ok()
        .as_ref()
        .and_then(offset_of)
    {
        Some(committed) => committed >= high,
        None => low >= high,
    }
}

/// Records by partition, each partition's in their order.
fn by_partition<'a>(
    records: impl IntoIterator<Item = &'a crate::pipeline::InputRecord>,
) -> BTreeMap<i32, Vec<crate::pipeline::InputRecord>> {
    let mut parts: BTreeMap<i32, Vec<_>> = BTreeMap::new();
    for r in records {
        parts.entry(r.partition).or_default().push(r.clone());
    }
    parts
}

/// The changelog of the last values of a repartitioned table's rows.
pub fn source_changelog(group_id: &str) -> String {
    format!("{group_id}-Aggregate-GroupBy-Source-changelog")
}

/// The changelog of a stateful query's task stores.
pub fn state_changelog(group_id: &str, operators: &Operators) -> String {
    match operators {
        Operators::Join(_) => format!("{group_id}-Join-changelog"),
        _ => format!("{group_id}-Aggregate-Aggregate-Materialize-changelog"),
    }
}

/// The repartition topic of the query with consumer group `group_id`, as ksqlDB names it.
pub fn repartition_topic(group_id: &str) -> String {
    format!("{group_id}-Aggregate-GroupBy-repartition")
}

impl PersistentQuery {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        id: String,
        sql: String,
        mut operators: Operators,
        sink: SourceDef,
        settings: &KafkaSettings,
        group_id: &str,
        instance_id: Option<&str>,
        properties: &BTreeMap<String, String>,
        producer: FutureProducer,
        log: Arc<ProcessingLog>,
        formats: &FormatContext,
        state_dir: std::path::PathBuf,
    ) -> Result<Self, String> {
        let rebalances = RebalanceContext::default();
        let consumer: StreamConsumer<RebalanceContext> = settings
            .consumer_config(group_id, properties, instance_id)
            .create_with_context(rebalances.clone())
            .map_err(|e| format!("cannot create a consumer: {e}"))?;
        let source = operators.source().name.clone();
        let repartition = operators
            .aggregation()
            .is_some_and(|a| a.needs_repartition())
            .then(|| repartition_topic(group_id));
        let forwards = join_forwards(&mut operators, group_id, formats)?;
        let mut topics = operators.topics();
        topics.dedup();
        topics.extend(repartition.clone());
        topics.extend(forwards.iter().map(|f| f.source.clone()));
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| format!("cannot subscribe to {}: {e}", topics.join(", ")))?;
        let status = Arc::new(Mutex::new(QueryStatus::Running));
        let (stop, stop_rx) = watch::channel(false);
        let runner = Runner {
            id: id.clone(),
            sink: SinkWriter::new(operators.projection(), &sink, formats),
            source_states: (repartition.is_some()
                && operators.source().kind == brook_sql::ast::SourceKind::Table)
                .then(|| {
                    super::TaskStates::new(
                        state_dir.join("source"),
                        source_changelog(group_id),
                        settings.clone(),
                    )
                }),
            repartition,
            rebalances,
            cache_bytes: if operators.stateful() && operators.emits_table() {
                super::record_cache::cache_bytes(properties)
            } else {
                0
            },
            states: operators.stateful().then(|| {
                super::TaskStates::new(
                    state_dir,
                    state_changelog(group_id, &operators),
                    settings.clone(),
                )
            }),
            operators,
            consumer,
            producer,
            log,
            max_idle: Duration::from_millis(
                properties
                    .get("max.task.idle.ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(2000),
            ),
            forwards,
        };
        let task_status = status.clone();
        let task_id = id.clone();
        let handle = tokio::spawn(async move {
            let outcome = runner.run(stop_rx).await;
            let mut status = task_status.lock().unwrap_or_else(|p| p.into_inner());
            *status = match outcome {
                Ok(()) => QueryStatus::Stopped,
                Err(e) => {
                    tracing::error!("query {task_id} failed: {e}");
                    QueryStatus::Error(e)
                }
            };
        });
        Ok(Self {
            id,
            sink: sink.name,
            source,
            sql,
            status,
            stop,
            handle: Some(handle),
        })
    }

    pub fn status(&self) -> QueryStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops consuming, commits what was processed, leaves the consumer group.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Runner {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        // A query over several topics reads them in time order.
        let mut topics = self.operators.topics();
        topics.dedup();
        let mut merger = (topics.len() > 1).then(|| Merger::new(topics));
        let mut waiting_since: Option<Instant> = None;
        loop {
            let wait = merger
                .as_ref()
                .is_some_and(Merger::holding)
                .then_some(Duration::from_millis(100));
            let Some(fetched) = next_batch_within(&self.consumer, &mut stop, MAX_BATCH, wait).await
            else {
                break;
            };
            let revoked = self.rebalances.take_revoked();
            // Join inputs that move go to their repartition topics; the join reads them
            // back from there.
            let (forwarded, fetched): (Vec<_>, Vec<_>) = fetched
                .into_iter()
                .partition(|r| self.forwards.iter().any(|f| f.source == r.topic));
            let mut errors = Vec::new();
            if let Operators::Join(join) = &self.operators {
                for f in &self.forwards {
                    let part: Vec<_> = forwarded
                        .iter()
                        .filter(|r| r.topic == f.source)
                        .cloned()
                        .collect();
                    if part.is_empty() {
                        continue;
                    }
                    let moved = join.repartition_records(
                        f.input,
                        f.slot,
                        f.key.as_ref(),
                        &part,
                        &mut errors,
                    );
                    produce_all(&self.producer, &f.topic, &moved).await?;
                }
            }
            let batch = match &mut merger {
                Some(m) => {
                    for (topic, partition) in &revoked {
                        m.forget(topic, *partition);
                    }
                    m.push(fetched);
                    let idle_over =
                        waiting_since.is_some_and(|since| since.elapsed() >= self.max_idle);
                    let consumer = &self.consumer;
                    let ready = tokio::task::block_in_place(|| {
                        m.ready(|topic, partition| {
                            idle_over || caught_up(consumer, topic, partition)
                        })
                    });
                    tracing::debug!(
                        "query {}: {} records ready, holding back: {}",
                        self.id,
                        ready.len(),
                        m.holding()
                    );
                    // The idle time counts from the last progress while records wait.
                    waiting_since = match (m.holding(), ready.is_empty()) {
                        (false, _) => None,
                        (true, false) => Some(Instant::now()),
                        (true, true) => waiting_since.or_else(|| Some(Instant::now())),
                    };
                    ready
                }
                None => fetched,
            };
            // Stores of partitions this process lost are closed; if they come back, they
            // are reopened and catch up with their changelogs.
            for (topic, partition) in revoked {
                let states =
                    if Some(&topic) == self.repartition.as_ref() || self.repartition.is_none() {
                        &mut self.states
                    } else {
                        &mut self.source_states
                    };
                if let Some(states) = states {
                    states.close(partition);
                }
            }
            let mut records = Vec::new();
            // Source records of a repartitioned aggregation go to the repartition topic;
            // the aggregation reads them back from there.
            let mut tasks: Vec<&crate::pipeline::InputRecord> = batch.iter().collect();
            if let (Some(topic), Some(aggregation)) =
                (&self.repartition, self.operators.aggregation())
            {
                let mut moved = Vec::new();
                let source = by_partition(batch.iter().filter(|r| &r.topic != topic));
                for (partition, part) in source {
                    let mut unused = brook_state::Store::memory();
                    let store = match &mut self.source_states {
                        Some(states) => states.store(partition)?,
                        None => &mut unused,
                    };
                    moved.extend(aggregation.repartition_records(&part, store, &mut errors)?);
                }
                produce_all(&self.producer, topic, &moved).await?;
                tasks.retain(|r| &r.topic == topic);
            }
            // Each partition is a task with its own state.
            for (partition, part) in by_partition(tasks) {
                let mut stateless = brook_state::Store::memory();
                let store = match &mut self.states {
                    Some(states) => states.store(partition)?,
                    None => &mut stateless,
                };
                let output = match (&self.repartition, self.operators.aggregation()) {
                    (Some(_), Some(aggregation)) => {
                        aggregation.process_repartitioned(&part, store, &mut errors)?
                    }
                    _ => self.operators.process(&part, store, &mut errors)?,
                };
                records.extend(
                    self.sink
                        .encode(self.operators.projection(), &output, &mut errors),
                );
            }
            let records = super::record_cache::coalesce(records, self.cache_bytes);
            produce_all(&self.producer, &self.sink.topic, &records).await?;
            if let Some(states) = &mut self.states {
                states.checkpoint(&self.producer).await?;
            }
            if let Some(states) = &mut self.source_states {
                states.checkpoint(&self.producer).await?;
            }
            if !errors.is_empty() {
                self.log.log(&self.id, &errors).await?;
            }
            if let Some(late) = self.operators.aggregation().map(|a| a.take_late()) {
                if late > 0 {
                    tracing::warn!(
                        "query {}: dropped {late} records that came after their window closed (past its grace period)",
                        self.id
                    );
                }
            }
            let mode = if merger.is_some() {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            let done: Vec<crate::pipeline::InputRecord> =
                batch.iter().chain(&forwarded).cloned().collect();
            if !done.is_empty() {
                self.commit(&done, mode)?;
            }
        }
        // Records held back were not processed: their offsets stay uncommitted.
        if merger.is_some() {
            return Ok(());
        }
        // Everything produced so far is acknowledged; make the last offsets durable.
        if let Ok(position) = self.consumer.position() {
            if position.count() > 0 {
                if let Err(e) = self.consumer.commit(&position, CommitMode::Sync) {
                    tracing::debug!("final commit of query {}: {e}", self.id);
                }
            }
        }
        Ok(())
    }

    fn commit(
        &self,
        batch: &[crate::pipeline::InputRecord],
        mode: CommitMode,
    ) -> Result<(), String> {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in batch {
            let e = next.entry((r.topic.clone(), r.partition)).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))
                .map_err(|e| e.to_string())?;
        }
        // Also moves the position the final commit reads.
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::debug!("storing offsets of query {}: {e}", self.id);
        }
        self.consumer
            .commit(&tpl, mode)
            .map_err(|e| format!("cannot commit offsets of query {}: {e}", self.id))
    }
}
