//! A persistent query: a consumer group over its source topic, writing to its sink topic.
//! Offsets are committed only after the broker acknowledged everything the records
//! produced, so a crash repeats work but never loses it.

use super::commit::{next_offsets, offsets_of, positions, Guarantee, PendingCommits, TaskProducer};
use super::in_flight::{InFlight, Settled, MAX_IN_FLIGHT};
use super::merge::Merger;
use super::placement::Placement;
use super::purge::Purger;
use super::rebalance::RebalanceContext;
use super::records::{next_batch_within, produce_all, send_all};
use super::supervisor::{supervise, QueryHealth, QueryStatus, RetryPolicy, TaskError};
use crate::dataflow::Operators;
use crate::formats::FormatContext;
use crate::kafka::KafkaSettings;
use crate::processing_log::ProcessingLog;
use crate::sink::SinkWriter;
use brook_planner::catalog::SourceDef;
use brook_planner::plan::Dataflow;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A persistent query running under its supervisor.
pub struct PersistentQuery {
    pub id: String,
    pub sink: String,
    pub source: String,
    pub sql: String,
    /// The consumer group its tasks form, and the topics they read.
    pub group_id: String,
    pub inputs: Vec<String>,
    health: Arc<QueryHealth>,
    /// What its tasks are built from, again when it resumes after a pause.
    spec: Arc<QuerySpec>,
    stop: watch::Sender<bool>,
    /// The supervisor's task; none while the query is stopped or paused.
    handle: Option<JoinHandle<()>>,
}

/// Everything a query's tasks are built from; the supervisor builds them again from it
/// after a failure.
#[derive(Clone)]
pub struct QuerySpec {
    pub id: String,
    pub flow: Dataflow,
    pub sink: SourceDef,
    pub settings: KafkaSettings,
    pub group_id: String,
    /// This process's static group membership, if it has one.
    pub instance_id: Option<String>,
    /// This process's stable identity in the service (transactional ids end with it).
    pub process_id: String,
    pub properties: BTreeMap<String, String>,
    pub log: Arc<ProcessingLog>,
    pub formats: FormatContext,
    pub state_dir: std::path::PathBuf,
    pub metrics: crate::metrics::QueryMetrics,
    /// Where this process serves its API: the client id of the query's consumer.
    pub host: Option<String>,
    /// Warm copies of the tasks this process does not run (`num.standby.replicas`).
    pub standbys: Option<Arc<super::Standbys>>,
}

const MAX_BATCH: usize = 1000;

/// How long closing a task's clients may take before the supervisor goes on.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

struct Runner {
    id: String,
    operators: Operators,
    /// The topics its consumer subscribed to.
    subscribed: Vec<String>,
    /// The internal topic rows pass through to reach their group's partition, if any.
    repartition: Option<String>,
    /// For a repartitioned table: each source partition's last values of its rows.
    source_states: Option<super::task_state::TaskStates>,
    /// How many bytes of updates are coalesced by key between commits (0: none).
    cache_bytes: u64,
    /// Each input partition's state (a task's store), for stateful operators.
    states: Option<super::task_state::TaskStates>,
    sink: SinkWriter,
    consumer: StreamConsumer<RebalanceContext>,
    rebalances: RebalanceContext,
    producer: TaskProducer,
    log: Arc<ProcessingLog>,
    health: Arc<QueryHealth>,
    /// How long a task waits for an input partition that is behind before it goes on
    /// without it (`max.task.idle.ms`).
    max_idle: Duration,
    /// Join inputs whose records move to their join key's partition first.
    forwards: Vec<Forward>,
    /// Deletes what the query has committed past in its repartition topics.
    purger: Purger,
    /// Counts input records that are not where their keys belong, for stateful tasks.
    placement: Option<Placement>,
    metrics: crate::metrics::QueryMetrics,
    /// For a stateless query at least once, reading one topic: its batches whose outputs
    /// are being delivered while it goes on (stateful tasks wait for theirs, since their
    /// stores take a batch's changes only once its changelog records are acknowledged).
    in_flight: Option<InFlight>,
    /// At least once: offsets to commit once `commit.interval.ms` has passed, or when idle.
    pending: PendingCommits,
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
    let Some(join) = operators.join_mut() else {
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

/// The topics whose records a query's tasks take as placed by their keys: the inputs of a
/// join and of an aggregation by its source's key, when unwindowed (a windowed topic's key
/// holds its window too).
fn placed_topics(operators: &Operators) -> Vec<String> {
    match operators {
        Operators::Join(j) if j.plan.inputs.iter().all(|i| i.pre.source.window.is_none()) => {
            j.topics()
        }
        // The join under an aggregation of its rows is placed as a join is.
        Operators::Aggregate(a) if a.join.is_some() => match &a.join {
            Some(j) if j.plan.inputs.iter().all(|i| i.pre.source.window.is_none()) => j.topics(),
            _ => vec![],
        },
        Operators::Aggregate(a) if !a.needs_repartition() && a.plan.pre.source.window.is_none() => {
            vec![a.plan.pre.source.topic.clone()]
        }
        _ => vec![],
    }
}

/// Whether this process has read everything `topic`'s `partition` holds now (a partition
/// it does not own counts as read). What cannot be told (the broker slow to answer, as
/// when a consumer has just started) counts as not read: the task waits, for at most
/// `max.task.idle.ms`, rather than run ahead of a table it has not loaded.
fn caught_up<C: rdkafka::consumer::ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partition: i32,
) -> bool {
    let timeout = Duration::from_secs(2);
    let owned = consumer
        .assignment()
        .map(|a| a.find_partition(topic, partition).is_some())
        .unwrap_or(true);
    if !owned {
        return true;
    }
    let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, timeout) else {
        return false;
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
    /// Starts the query's tasks under a supervisor. The first tasks are built here, so that
    /// a query that cannot start at all is refused at once.
    pub fn start(spec: QuerySpec, sql: String) -> Result<Self, String> {
        let health = Arc::new(QueryHealth::default());
        let first = tokio::task::block_in_place(|| Runner::build(&spec, health.clone()))?;
        let source = first.operators.source().name.clone();
        let inputs = first.subscribed.clone();
        let spec = Arc::new(spec);
        let (stop, handle) = Self::supervised(&spec, &health, Some(first))?;
        Ok(Self {
            id: spec.id.clone(),
            sink: spec.sink.name.clone(),
            source,
            sql,
            group_id: spec.group_id.clone(),
            inputs,
            health,
            spec,
            stop,
            handle: Some(handle),
        })
    }

    /// Runs the query's tasks under a supervisor on the worker pool, starting with
    /// `first` when they are built already.
    fn supervised(
        spec: &Arc<QuerySpec>,
        health: &Arc<QueryHealth>,
        first: Option<Runner>,
    ) -> Result<(watch::Sender<bool>, JoinHandle<()>), String> {
        let policy = RetryPolicy::from_properties(&spec.properties);
        let (stop, stop_rx) = watch::channel(false);
        let mut first = first;
        let attempt = {
            let health = health.clone();
            let stop_rx = stop_rx.clone();
            let spec = spec.clone();
            move || {
                let runner = first.take();
                let health = health.clone();
                let stop = stop_rx.clone();
                let spec = spec.clone();
                async move {
                    let runner = match runner {
                        Some(r) => r,
                        None => tokio::task::block_in_place(|| Runner::build(&spec, health))?,
                    };
                    // Every log line of the tasks names the query (a field in JSON logs).
                    let span = tracing::info_span!("query", query_id = %spec.id);
                    tracing::Instrument::instrument(runner.run(stop), span).await
                }
            }
        };
        let workers = super::workers::workers(&spec.properties)?;
        let handle = workers.spawn(supervise(
            spec.id.clone(),
            policy,
            health.clone(),
            stop_rx,
            attempt,
        ));
        Ok((stop, handle))
    }

    /// Stops the tasks as `stop` does (processed offsets committed, the group left) but
    /// keeps the query, PAUSED, to resume from its committed offsets.
    pub async fn pause(&mut self) {
        self.stop().await;
        self.health.set_paused();
    }

    /// Starts the tasks of a paused query again; a running one is left as it is.
    pub fn resume(&mut self) -> Result<(), String> {
        if self.handle.is_some() {
            return Ok(());
        }
        let (stop, handle) = Self::supervised(&self.spec, &self.health, None)?;
        self.stop = stop;
        self.handle = Some(handle);
        Ok(())
    }

    pub fn status(&self) -> QueryStatus {
        self.health.status()
    }

    /// What the supervisor knows of the query: failures, retries, restarts.
    pub fn health(&self) -> &Arc<QueryHealth> {
        &self.health
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
    /// A query's tasks: operators, consumer (subscribed), producer and stores. Blocking.
    fn build(spec: &QuerySpec, health: Arc<QueryHealth>) -> Result<Self, TaskError> {
        let guarantee = Guarantee::from_properties(&spec.properties)?;
        let group_id = spec.group_id.as_str();
        let settings = &spec.settings;
        let properties = &spec.properties;
        let mut operators = Operators::new(spec.flow.clone(), &spec.formats);
        // Under exactly-once, creating the producer fences an earlier one of this task
        // (a zombie) and aborts its open transaction before anything is read or restored.
        let producer = TaskProducer::new(
            settings,
            guarantee,
            &format!(
                "{group_id}-{}",
                spec.instance_id.as_deref().unwrap_or(&spec.process_id)
            ),
        )?;
        let rebalances = RebalanceContext::default();
        let mut config = settings.consumer_config(
            group_id,
            properties,
            spec.instance_id.as_deref(),
            crate::kafka::Prefetch::Throughput,
        );
        config.set("isolation.level", guarantee.isolation_level());
        if let Some(host) = &spec.host {
            config.set("client.id", host);
        }
        if operators.join().is_some() {
            // The same partition of every input goes to the same member only with the
            // range assignor: the join's co-partitioning must not hang on a default.
            config.set("partition.assignment.strategy", "range");
        }
        let consumer: StreamConsumer<RebalanceContext> = config
            .create_with_context(rebalances.clone())
            .map_err(|e| TaskError::fatal(format!("cannot create a consumer: {e}")))?;
        let repartition = operators
            .aggregation()
            .is_some_and(|a| a.needs_repartition())
            .then(|| repartition_topic(group_id));
        let forwards = join_forwards(&mut operators, group_id, &spec.formats)?;
        let mut topics = operators.topics();
        topics.dedup();
        topics.extend(repartition.clone());
        topics.extend(forwards.iter().map(|f| f.source.clone()));
        let subscribed = topics;
        let topics: Vec<&str> = subscribed.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| {
            TaskError::kafka(format!("cannot subscribe to {}", topics.join(", ")), &e)
        })?;
        let state_dir = spec.state_dir.clone();
        let moved_through: Vec<String> = repartition
            .iter()
            .cloned()
            .chain(forwards.iter().map(|f| f.topic.clone()))
            .collect();
        let purger = Purger::new(settings, moved_through, properties);
        let placement = {
            let mut partitions = BTreeMap::new();
            for topic in placed_topics(&operators) {
                let count =
                    super::records::partitions_of(&consumer, &topic, Duration::from_secs(30))
                        .map_err(TaskError::retriable)?
                        .len() as i32;
                partitions.insert(topic, count);
            }
            (!partitions.is_empty())
                .then(|| Placement::new(&spec.id, partitions, health.misplaced_counter()))
        };
        let in_flight = (guarantee == Guarantee::AtLeastOnce
            && !operators.stateful()
            && repartition.is_none()
            && forwards.is_empty()
            && subscribed.len() == 1)
            .then(|| InFlight::new(&spec.sink.topic));
        Ok(Runner {
            in_flight,
            pending: PendingCommits::new(properties).map_err(TaskError::fatal)?,
            subscribed,
            purger,
            placement,
            id: spec.id.clone(),
            sink: SinkWriter::new(operators.projection(), &spec.sink, &spec.formats),
            // Before a repartition: a table's last rows, or the state of the join whose
            // rows are aggregated.
            source_states: (repartition.is_some()
                && (operators.source().kind == brook_sql::ast::SourceKind::Table
                    || operators.join().is_some()))
            .then(|| {
                super::task_state::TaskStates::new(
                    state_dir.join("source"),
                    match operators.join() {
                        Some(_) => format!("{group_id}-Join-changelog"),
                        None => source_changelog(group_id),
                    },
                    settings.clone(),
                    spec.metrics.clone(),
                    health.clone(),
                    spec.standbys.as_ref(),
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
                super::task_state::TaskStates::new(
                    state_dir,
                    state_changelog(group_id, &operators),
                    settings.clone(),
                    spec.metrics.clone(),
                    health.clone(),
                    spec.standbys.as_ref(),
                )
            }),
            operators,
            consumer,
            producer,
            log: spec.log.clone(),
            health,
            max_idle: Duration::from_millis(
                properties
                    .get("max.task.idle.ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(2000),
            ),
            forwards,
            metrics: spec.metrics.clone(),
        })
    }

    /// Processes batches until `stop` is set. Under exactly-once, a failure aborts the
    /// open transaction: nothing of it is seen, and the next attempt starts from the last
    /// committed offsets and changelog positions.
    async fn run(mut self, stop: watch::Receiver<bool>) -> Result<(), TaskError> {
        let outcome = self.process(stop).await;
        if outcome.is_err() {
            tokio::task::block_in_place(|| self.producer.abort());
        }
        self.close().await;
        outcome
    }

    /// Closes the tasks' clients and stores on a thread of their own. Closing a consumer
    /// can hang in librdkafka (rust-rdkafka issue 509); the wait is bounded so that the
    /// supervisor goes on with a new attempt, and a close that hangs is reported.
    async fn close(self) {
        let id = self.id.clone();
        let (closed, done) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("close-{id}"))
            .spawn(move || {
                drop(self);
                let _ = closed.send(());
            });
        if let Err(e) = spawned {
            tracing::error!("query {id}: cannot close its clients on a thread: {e}");
            return;
        }
        if tokio::time::timeout(CLOSE_TIMEOUT, done).await.is_err() {
            tracing::error!(
                "query {id}: its Kafka clients did not close within {} s; going on without them",
                CLOSE_TIMEOUT.as_secs()
            );
        }
    }

    async fn process(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), TaskError> {
        // A query over several topics reads them in time order.
        let mut topics = self.operators.topics();
        topics.dedup();
        let mut merger = (topics.len() > 1).then(|| Merger::new(topics));
        let mut waiting_since: Option<Instant> = None;
        loop {
            let holding = merger.as_ref().is_some_and(Merger::holding);
            // Batches in flight are committed once acknowledged, also when no more come.
            let delivering = self.in_flight.as_ref().is_some_and(|f| !f.is_empty());
            let wait = if holding {
                Some(Duration::from_millis(100))
            } else if delivering {
                Some(Duration::from_millis(10))
            } else if !self.pending.is_empty() {
                // Offsets wait for the commit interval: an idle moment commits them.
                Some(Duration::from_millis(100))
            } else {
                None
            };
            let Some(fetched) = next_batch_within(
                &self.consumer,
                &mut stop,
                MAX_BATCH,
                wait,
                Some(&self.rebalances),
            )
            .await
            else {
                break;
            };
            let revoked = self.rebalances.take_revoked();
            self.pending.forget(&revoked);
            if fetched.is_empty() {
                self.commit_due(true, CommitMode::Async).await?;
            }
            if let Some(in_flight) = &mut self.in_flight {
                in_flight.forget(&revoked);
                let settled = in_flight.settle(fetched.is_empty()).await?;
                self.committed(settled).await?;
                if fetched.is_empty() {
                    continue;
                }
            }
            if !fetched.is_empty() {
                tokio::task::block_in_place(|| self.producer.begin())?;
            }
            if let Some(placement) = &mut self.placement {
                placement.check(&fetched);
            }
            // Join inputs that move go to their repartition topics; the join reads them
            // back from there.
            let (forwarded, fetched): (Vec<_>, Vec<_>) = fetched
                .into_iter()
                .partition(|r| self.forwards.iter().any(|f| f.source == r.topic));
            let mut errors = Vec::new();
            if let Some(join) = self.operators.join() {
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
                    produce_all(&self.producer.producer, &f.topic, &moved).await?;
                    self.metrics.produced(&f.topic, &moved, false);
                }
            }
            let batch = match &mut merger {
                Some(m) => {
                    for (topic, partition) in &revoked {
                        m.forget(topic, *partition);
                    }
                    let (merged, passing): (Vec<_>, Vec<_>) =
                        fetched.into_iter().partition(|r| m.merges(&r.topic));
                    m.push(merged);
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
                    let mut ready = ready;
                    ready.extend(passing);
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
            if !batch.is_empty() {
                tokio::task::block_in_place(|| self.producer.begin())?;
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
                produce_all(&self.producer.producer, topic, &moved).await?;
                self.metrics.produced(topic, &moved, false);
                tasks.retain(|r| &r.topic == topic);
            }
            // Each partition is a task with its own state. Nothing in this loop awaits, so
            // its thread's CPU time is the query's.
            let cpu_before = crate::metrics::usage::thread_cpu_nanos();
            if self.states.is_none() && self.repartition.is_none() {
                // Without state, partitions need no tasks of their own: one batch for all.
                let mut stateless = brook_state::Store::memory();
                let output = self
                    .operators
                    .process(&batch, &mut stateless, &mut errors)?;
                records.extend(
                    self.sink
                        .encode(self.operators.projection(), &output, &mut errors),
                );
            } else {
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
                    records.extend(self.sink.encode(
                        self.operators.projection(),
                        &output,
                        &mut errors,
                    ));
                }
            }
            if let (Some(before), Some(after)) =
                (cpu_before, crate::metrics::usage::thread_cpu_nanos())
            {
                self.metrics.cpu(after.saturating_sub(before));
            }
            let records = super::record_cache::coalesce(records, self.cache_bytes);
            if let Some(in_flight) = &mut self.in_flight {
                // The next batch is processed while this one is delivered.
                let deliveries =
                    send_all(&self.producer.producer, &self.sink.topic, &records).await?;
                self.metrics.produced(&self.sink.topic, &records, true);
                if !errors.is_empty() {
                    self.log.log(&self.id, &errors).await?;
                    self.metrics.failed(&errors);
                }
                in_flight.push(&batch, deliveries);
                self.metrics.consumed(batch.iter());
                let settled = in_flight.settle(in_flight.len() > MAX_IN_FLIGHT).await?;
                self.committed(settled).await?;
                continue;
            }
            produce_all(&self.producer.producer, &self.sink.topic, &records).await?;
            self.metrics.produced(&self.sink.topic, &records, true);
            let mut sent = Vec::new();
            for states in [&mut self.states, &mut self.source_states]
                .into_iter()
                .flatten()
            {
                sent.push(states.send_changes(&self.producer.producer).await?);
            }
            // At least once, stores take their changes once the changelog has them;
            // exactly once, only when the transaction holding them is committed.
            let exactly_once = self.producer.guarantee() == Guarantee::ExactlyOnce;
            if !exactly_once {
                self.flush_stores(&sent)?;
            }
            if !errors.is_empty() {
                self.log.log(&self.id, &errors).await?;
                self.metrics.failed(&errors);
            }
            if let Some(late) = self.operators.aggregation().map(|a| a.take_late()) {
                if late > 0 {
                    self.metrics.late(late);
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
            let done = batch.len() + forwarded.len();
            self.metrics.consumed(batch.iter().chain(&forwarded));
            if exactly_once {
                // The transaction holds the batch's outputs, changelog records and offsets.
                let offsets = next_offsets(batch.iter().chain(&forwarded))?;
                let (producer, consumer) = (&mut self.producer, &self.consumer);
                let started = Instant::now();
                tokio::task::block_in_place(|| producer.commit(consumer, &offsets, mode))?;
                self.metrics.committed_in(started.elapsed());
                self.flush_stores(&sent)?;
                self.health.add_committed(done as u64);
                self.purger.committed(&offsets).await;
            } else {
                self.pending
                    .add(positions(batch.iter().chain(&forwarded)), done);
                self.commit_due(false, mode).await?;
            }
            let (keys, bytes) = [&self.states, &self.source_states]
                .into_iter()
                .flatten()
                .map(|s| s.size())
                .fold((0, 0), |(k, b), (k2, b2)| (k + k2, b + b2));
            self.metrics.state(keys, bytes);
        }
        if let Some(in_flight) = &mut self.in_flight {
            let settled = in_flight.settle_all().await?;
            self.committed(settled).await?;
        }
        self.commit_due(true, CommitMode::Sync).await?;
        // Records held back were not processed: their offsets stay uncommitted; under
        // exactly-once every processed record's offset is committed with its transaction.
        if merger.is_some() || self.producer.guarantee() == Guarantee::ExactlyOnce {
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

    /// Takes what batches in flight settled (their outputs are all acknowledged) into the
    /// offsets to commit, and commits them if they are due.
    async fn committed(&mut self, settled: Settled) -> Result<(), TaskError> {
        if settled.records == 0 {
            return Ok(());
        }
        let records = settled.records;
        self.pending.add(settled.into_positions(), records);
        self.commit_due(false, CommitMode::Async).await
    }

    /// Commits the pending offsets if the commit interval has passed, or at once when the
    /// task is `idle`; the repartition topics are purged up to them.
    async fn commit_due(&mut self, idle: bool, mode: CommitMode) -> Result<(), TaskError> {
        let Some((next, records)) = self.pending.due(idle) else {
            return Ok(());
        };
        let offsets = offsets_of(&next)?;
        let started = Instant::now();
        let (producer, consumer) = (&mut self.producer, &self.consumer);
        tokio::task::block_in_place(|| producer.commit(consumer, &offsets, mode))?;
        self.metrics.committed_in(started.elapsed());
        self.health.add_committed(records as u64);
        self.purger.committed(&offsets).await;
        Ok(())
    }

    /// Makes the stores' sent changes durable locally, with the changelog offsets reached.
    fn flush_stores(&mut self, sent: &[super::task_state::SentChanges]) -> Result<(), TaskError> {
        let mut sent = sent.iter();
        for states in [&mut self.states, &mut self.source_states]
            .into_iter()
            .flatten()
        {
            if let Some(changes) = sent.next() {
                states.flush(changes)?;
            }
        }
        Ok(())
    }
}
