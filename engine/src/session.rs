//! The one API every front end uses: an [`Engine`] holds the catalog and the running
//! queries; a [`Session`] executes statements against it with its own properties and
//! variables, and returns typed results.

use crate::arrays::value_at;
use crate::error::EngineError;
use crate::eval::evaluate;
use crate::formats::{FormatContext, RecordCodec};
use crate::kafka::{EmbeddedBroker, Holds, KafkaSettings, TopicSettings, Topics};
use crate::processing_log::ProcessingLog;
use crate::runtime::backend::{Backend, KafkaBackend, NewQuery, QueryHandle};
use crate::runtime::driver::Driver;
use crate::runtime::lag::{group_lag, PartitionLag};
use crate::runtime::{OutputRecord, QueryStatus};
use crate::schema_registry::{HttpRegistry, SchemaRegistry};
use crate::serving::{KeySelection, PushQuery};
use brook_planner::catalog::{Catalog, ColumnRole, SourceDef, WithClause, ROWOFFSET, ROWPARTITION};
use brook_planner::plan::plan_query;
use brook_planner::types::is_numeric;
use brook_planner::typing::{type_expr, Scope};
use brook_planner::value::Value;
use brook_sql::ast::{self, DataType, SourceKind, Statement, StatementKind};
use rdkafka::producer::FutureProducer;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Kafka Streams' `windowstore.changelog.additional.retention.ms`: how much longer than its
/// windows a windowed changelog keeps records.
const WINDOW_CHANGELOG_EXTRA_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub kafka: KafkaSettings,
    /// Set when `kafka` points at the embedded broker.
    pub embedded: Option<Arc<EmbeddedBroker>>,
    /// ksqlDB's `ksql.service.id`: prefixes consumer groups and internal topics.
    pub service_id: String,
    /// This process's stable identity in its queries' consumer groups, if it has one.
    pub instance_id: Option<String>,
    /// ksqlDB's `ksql.schema.registry.url`, for AVRO and JSON_SR.
    pub schema_registry_url: Option<String>,
    /// Where stateful queries keep their stores, as ksqlDB's `ksql.streams.state.dir`.
    pub state_dir: std::path::PathBuf,
    /// Server-wide query settings (a server config's `ksql.*` and Kafka Streams settings,
    /// such as `processing.guarantee`); a session's own properties override them.
    pub properties: BTreeMap<String, String>,
}

impl EngineConfig {
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            embedded: None,
            service_id: "default_".into(),
            instance_id: None,
            schema_registry_url: None,
            state_dir: std::env::temp_dir().join("brook-state"),
            properties: BTreeMap::new(),
        }
    }
}

/// What executing a statement gave.
pub enum StatementResult {
    /// A statement that changed something or was accepted, with ksqlDB's message.
    Status {
        message: String,
        query_id: Option<String>,
    },
    /// A push query's rows, streaming.
    Rows(PushQuery),
    /// What `SHOW` / `LIST` lists.
    Listing(Listing),
    /// Nothing was done, for a reason the client should see (ksqlDB's warning entity).
    Warning(String),
    /// `CREATE ... CONNECTOR` started one.
    ConnectorCreated(crate::connect::ConnectorInfo),
    /// `DROP CONNECTOR` stopped this one.
    ConnectorDropped(String),
}

/// The answer to `SHOW` / `LIST`.
#[derive(Debug, Clone, PartialEq)]
pub enum Listing {
    Sources {
        kind: SourceKind,
        sources: Vec<SourceSummary>,
    },
    Queries(Vec<QuerySummary>),
    /// `SHOW PROPERTIES`: name and value, and the names the session set over the
    /// service's values.
    Properties {
        properties: Vec<(String, String)>,
        overwritten: Vec<String>,
    },
    Variables(Vec<(String, String)>),
    /// `DESCRIBE source`.
    Source(Box<SourceDescription>),
    /// `DESCRIBE STREAMS|TABLES`, `SHOW STREAMS|TABLES EXTENDED`.
    SourceDescriptions(Vec<SourceDescription>),
    /// `SHOW QUERIES EXTENDED`: each query as EXPLAIN describes it.
    QueryDescriptions(Vec<QueryDescription>),
    /// `SHOW TOPICS`: name, partitions, replicas; with EXTENDED, who reads each.
    Topics {
        topics: Vec<(String, i32, i32)>,
        consumers: Option<BTreeMap<String, crate::kafka::TopicConsumers>>,
    },
    /// `SHOW FUNCTIONS`: name and kind (SCALAR, AGGREGATE, TABLE).
    Functions(Vec<crate::metadata::FunctionEntry>),
    /// `DESCRIBE FUNCTION`.
    Function {
        name: String,
        kind: &'static str,
    },
    /// `SHOW TYPES`: name and type.
    Types(Vec<(String, String)>),
    /// `EXPLAIN`.
    Query(Box<QueryDescription>),
    /// `SHOW [SINK|SOURCE] CONNECTORS`.
    Connectors(Vec<crate::connect::ConnectorStatus>),
    /// `DESCRIBE CONNECTOR`, with the streams and tables over the topics it reads or writes.
    Connector {
        status: Box<crate::connect::ConnectorStatus>,
        sources: Vec<SourceSummary>,
    },
    /// `SHOW CONNECTOR PLUGINS`.
    ConnectorPlugins(Vec<crate::connect::ConnectorPlugin>),
    /// `SHOW USAGE`: each query's usage, summed over the usage topic.
    Usage(Vec<crate::metrics::usage::UsageTotal>),
}

/// A persistent query's consumer group: the query, the group, the topics it reads and the
/// stores its tasks keep.
struct ConsumerGroup {
    id: String,
    group: String,
    inputs: Vec<String>,
    stores: Vec<String>,
}

/// A server of the service, as `/clusterStatus` tells it: per query, the stores it keeps
/// and the input partitions it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostStatus {
    pub queries: BTreeMap<String, HostQuery>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostQuery {
    pub stores: Vec<String>,
    pub partitions: Vec<(String, i32)>,
}

/// What EXPLAIN tells of a query (one that runs, or a statement not run: no id).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryDescription {
    pub id: String,
    pub statement: String,
    pub sources: Vec<String>,
    pub sinks: Vec<String>,
    /// Name, type, and whether it is a key column.
    pub fields: Vec<(String, DataType, bool)>,
    pub execution_plan: String,
    /// The plan as Kafka Streams describes a topology.
    pub topology: String,
    /// TUMBLING, HOPPING or SESSION for a query whose output is windowed.
    pub window: Option<&'static str>,
    /// The properties its session set.
    pub overridden: BTreeMap<String, String>,
    pub state: Option<String>,
    /// The query's latest failures, oldest first.
    pub errors: Vec<crate::runtime::QueryFailure>,
    /// Where this process serves its API (host:port), when it does.
    pub host: Option<String>,
    /// The latest restore of each of its stores in this process.
    pub restores: Vec<(String, i32, crate::runtime::RestoreProgress)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceDescription {
    pub summary: SourceSummary,
    pub kind: SourceKind,
    /// Name, type, and whether it is a key column.
    pub columns: Vec<(String, DataType, bool)>,
    pub timestamp_column: Option<String>,
    pub statement: String,
    pub extended: bool,
    /// Persistent queries reading and writing it.
    pub read_queries: Vec<QuerySummary>,
    pub write_queries: Vec<QuerySummary>,
    /// This process's traffic with its topic (DESCRIBE EXTENDED's statistics).
    pub statistics: crate::metrics::TopicStatistics,
    /// Its topic's partitions and replication factor, when the topic exists.
    pub partitions: i32,
    pub replication: i32,
    /// The streams and tables queries write from it: it cannot be dropped before them.
    pub constraints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceSummary {
    pub name: String,
    pub topic: String,
    pub key_format: String,
    pub value_format: String,
    pub kind: SourceKind,
    /// A windowed source's window type: TUMBLING, HOPPING or SESSION.
    pub window: Option<&'static str>,
}

impl SourceSummary {
    fn of(s: &SourceDef) -> Self {
        Self {
            name: s.name.clone(),
            topic: s.topic.clone(),
            key_format: s.key_format.kind.name().to_string(),
            value_format: s.value_format.kind.name().to_string(),
            kind: s.kind,
            window: s.window.map(|w| w.kind.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuerySummary {
    pub id: String,
    pub sql: String,
    pub sink: String,
    pub sink_topic: String,
    /// RUNNING, ERROR or STOPPED.
    pub state: String,
    /// Why it is in ERROR, when it is.
    pub error: Option<crate::runtime::QueryFailure>,
    /// Input records it read away from their key's partition (see `runtime::placement`).
    pub misplaced: u64,
}

pub struct Engine {
    config: EngineConfig,
    /// The connector runtime, when the process runs one.
    connectors: std::sync::OnceLock<Arc<dyn crate::connect::Connectors>>,
    backend: Backend,
    formats: FormatContext,
    state: Mutex<EngineState>,
    transient_ids: AtomicU64,
    metrics: Arc<crate::metrics::Metrics>,
    /// When the engine started, and when usage was last written (ms since the epoch).
    started_at: i64,
    usage_written_at: std::sync::Mutex<Option<i64>>,
    /// Where this process serves its API (host:port), once it listens.
    host: std::sync::OnceLock<String>,
    /// `ALTER SYSTEM` properties: over the server's configuration, under a session's.
    system: std::sync::RwLock<BTreeMap<String, String>>,
    /// Set by TERMINATE CLUSTER: no statement runs any more.
    terminated: std::sync::atomic::AtomicBool,
}

/// The compacted topic usage records go to.
pub fn usage_topic(service_id: &str) -> String {
    format!("{service_id}ksql_usage")
}

struct RunningQuery {
    id: String,
    sql: String,
    sink: String,
    handle: QueryHandle,
    /// What EXPLAIN shows of it.
    explained: Explained,
    /// The properties its session set (SET, the request's), which EXPLAIN shows.
    properties: BTreeMap<String, String>,
}

/// A query's sources, output columns and execution plan.
struct Explained {
    sources: Vec<String>,
    fields: Vec<(String, DataType, bool)>,
    plan: String,
    topology: String,
    /// The window type of its output's keys.
    window: Option<&'static str>,
    /// The state stores its tasks keep.
    stores: Vec<String>,
}

impl Explained {
    fn of(flow: &brook_planner::plan::Dataflow, sink: Option<&SourceDef>) -> Self {
        Self {
            sources: flow.sources().iter().map(|s| s.name.clone()).collect(),
            fields: flow
                .projection()
                .iter()
                .map(|p| (p.name.clone(), p.expr.data_type.clone(), p.key))
                .collect(),
            plan: brook_planner::explain::execution_plan(flow, sink),
            topology: brook_planner::explain::topology(flow, sink),
            window: flow.output_window().map(|w| w.kind.name()),
            stores: brook_planner::explain::state_stores(flow),
        }
    }
}

#[derive(Default)]
struct EngineState {
    catalog: Catalog,
    queries: BTreeMap<String, RunningQuery>,
    /// Counts executed statements; persistent query ids end with it, so the same
    /// statements in the same order give the same ids (and consumer groups) on restart.
    sequence: u64,
}

impl EngineState {
    /// How SHOW QUERIES and DESCRIBE list a running query.
    fn query_summary(&self, q: &RunningQuery) -> QuerySummary {
        QuerySummary {
            id: q.id.clone(),
            sql: q.sql.clone(),
            sink: q.sink.clone(),
            sink_topic: self
                .catalog
                .sources
                .get(&q.sink)
                .map(|s| s.topic.clone())
                .unwrap_or_default(),
            state: match q.handle.status() {
                QueryStatus::Running => "RUNNING",
                QueryStatus::Error(_) => "ERROR",
                QueryStatus::Stopped => "STOPPED",
                QueryStatus::Paused => "PAUSED",
            }
            .to_string(),
            error: match q.handle.status() {
                QueryStatus::Error(failure) => Some(failure),
                _ => None,
            },
            misplaced: q.handle.health().map_or(0, |h| h.misplaced()),
        }
    }

    /// Counts a statement; returns its number, which query ids end with.
    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence - 1
    }
}

impl Engine {
    /// The number the next statement gets (query ids end with it).
    pub async fn sequence(&self) -> u64 {
        self.state.lock().await.sequence
    }

    /// Sets the number the next statement gets: replaying recorded statements gives
    /// them the numbers, and so the query ids, they had.
    pub async fn set_sequence(&self, sequence: u64) {
        self.state.lock().await.sequence = sequence;
    }

    /// Creates an internal topic of the service unless it exists.
    pub async fn create_internal_topic(
        &self,
        topic: &str,
        partitions: i32,
        config: &[(&str, &str)],
    ) -> Result<()> {
        let replicas = crate::kafka::internal_replicas(&self.config.properties);
        self.backend
            .create_internal_topic(topic, partitions, replicas, config)
            .await?;
        Ok(())
    }

    /// Deletes a topic of the service (its command topic, once the cluster is terminated).
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        Ok(self.backend.delete_topic(topic).await?)
    }

    /// An engine on Kafka (or the embedded broker the config names).
    pub async fn start(config: EngineConfig) -> Result<Arc<Self>> {
        let max_answer = crate::settings::positive(
            &config.properties,
            crate::schema_registry::MAX_ANSWER_SETTING,
            crate::schema_registry::DEFAULT_MAX_ANSWER_BYTES,
        )
        .map_err(EngineError::new)?;
        let registry = config.schema_registry_url.as_deref().map(|url| {
            Arc::new(HttpRegistry::with_limit(url, max_answer)) as Arc<dyn SchemaRegistry>
        });
        Self::start_with_registry(config, registry).await
    }

    /// An engine on Kafka whose schemas live in `registry` rather than at the configured
    /// URL (the conformance tests keep theirs in memory).
    pub async fn start_with_registry(
        config: EngineConfig,
        registry: Option<Arc<dyn SchemaRegistry>>,
    ) -> Result<Arc<Self>> {
        // A bad setting is refused at start, not at the first scrape.
        crate::metrics::lag_threshold(&config.properties).map_err(EngineError::new)?;
        let usage_every =
            crate::metrics::usage::usage_interval(&config.properties).map_err(EngineError::new)?;
        let topics = Topics::new(&config.kafka, config.embedded.clone())?;
        let producer = Arc::new(
            crate::kafka::SharedProducer::new(config.kafka.producer_config())
                .map_err(EngineError::new)?,
        );
        let log_topic = format!("{}ksql_processing_log", config.service_id);
        let replicas = crate::kafka::internal_replicas(&config.properties);
        topics
            .ensure(&log_topic, 1, replicas, &[])
            .await
            .map_err(|e| {
                EngineError::new(format!(
                    "cannot reach Kafka at {}: {e}",
                    config.kafka.bootstrap_servers
                ))
            })?;
        topics
            .ensure(
                &usage_topic(&config.service_id),
                1,
                replicas,
                &[("cleanup.policy", "compact")],
            )
            .await
            .map_err(EngineError::new)?;
        let log = Arc::new(ProcessingLog::new(log_topic, producer.clone()));
        let state_dir = config.state_dir.join(&config.service_id);
        let process_id = crate::runtime::process_id(&state_dir).map_err(EngineError::new)?;
        let backend = Backend::Kafka(KafkaBackend {
            settings: config.kafka.clone(),
            topics,
            producer,
            log,
            instance_id: config.instance_id.clone(),
            state_dir,
            process_id,
            views: Default::default(),
        });
        let formats = FormatContext { registry };
        let engine = Self::with_backend(config, backend, formats);
        let weak = Arc::downgrade(&engine);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(usage_every);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                engine.write_usage().await;
            }
        });
        Ok(engine)
    }

    /// An engine whose topics and queries live in the in-process driver, with a schema
    /// registry in memory.
    pub fn on_driver(
        driver: Arc<Driver>,
        service_id: &str,
        registry: Arc<dyn SchemaRegistry>,
    ) -> Arc<Self> {
        let mut config = EngineConfig::new(KafkaSettings::new("in-process"));
        config.service_id = service_id.to_string();
        let formats = FormatContext {
            registry: Some(registry),
        };
        Self::with_backend(config, Backend::Driver(driver), formats)
    }

    fn with_backend(config: EngineConfig, backend: Backend, formats: FormatContext) -> Arc<Self> {
        Arc::new(Self {
            config,
            connectors: std::sync::OnceLock::new(),
            backend,
            formats,
            state: Mutex::new(EngineState::default()),
            transient_ids: AtomicU64::new(0),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            started_at: chrono::Utc::now().timestamp_millis(),
            system: std::sync::RwLock::new(BTreeMap::new()),
            terminated: std::sync::atomic::AtomicBool::new(false),
            usage_written_at: std::sync::Mutex::new(None),
            host: std::sync::OnceLock::new(),
        })
    }

    /// Records where this process serves its API, for the hosts query descriptions name.
    pub fn set_host(&self, host: String) {
        let _ = self.host.set(host);
    }

    /// What this process counts, for `/metrics` and DESCRIBE EXTENDED.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Plugs in the connector runtime that connector statements go to (once).
    pub fn set_connectors(&self, connectors: Arc<dyn crate::connect::Connectors>) {
        if self.connectors.set(connectors).is_err() {
            tracing::warn!("a connector runtime was plugged in twice; the first one stays");
        }
    }

    /// The connector runtime, if one is plugged in.
    pub fn connectors(&self) -> Option<&Arc<dyn crate::connect::Connectors>> {
        self.connectors.get()
    }

    fn connector_runtime(&self) -> Result<&Arc<dyn crate::connect::Connectors>> {
        self.connectors
            .get()
            .ok_or_else(|| EngineError::new("Connectors are not available in this process"))
    }

    pub fn formats(&self) -> &FormatContext {
        &self.formats
    }

    /// The producer of a Kafka engine, for records clients write over HTTP.
    pub fn producer(&self) -> Option<FutureProducer> {
        self.shared_producer().map(|p| p.get())
    }

    /// The topic administration of a Kafka engine (the embedded broker's included).
    pub fn topics(&self) -> std::result::Result<&Topics, String> {
        match &self.backend {
            Backend::Kafka(k) => Ok(&k.topics),
            Backend::Driver(_) => Err("the in-process driver has no Kafka cluster".into()),
        }
    }

    /// The process's producer of a Kafka engine, which is replaced when it fails for good:
    /// for writers that keep it (the command topic).
    pub fn shared_producer(&self) -> Option<Arc<crate::kafka::SharedProducer>> {
        match &self.backend {
            Backend::Kafka(k) => Some(k.producer.clone()),
            Backend::Driver(_) => None,
        }
    }

    /// The Kafka cluster's id, as its brokers give it.
    pub async fn cluster_id(&self) -> Result<String> {
        let Some(producer) = self.producer() else {
            return Err(EngineError::new(
                "The in-process driver has no Kafka cluster",
            ));
        };
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            producer.client().fetch_cluster_id(Duration::from_secs(10))
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| EngineError::new("The Kafka cluster did not give its id"))
    }

    /// The partitions of `topic`, if it exists.
    pub async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>> {
        Ok(self.backend.partitions(topic).await?)
    }

    /// The processing log of a Kafka engine.
    pub fn processing_log(&self) -> Option<&ProcessingLog> {
        match &self.backend {
            Backend::Kafka(k) => Some(&k.log),
            Backend::Driver(_) => None,
        }
    }

    /// How to read the records of the stream or table over `topic` as JSON, if one is
    /// over it.
    pub async fn json_rewriter(&self, topic: &str) -> Option<crate::formats::JsonRewriter> {
        let state = self.state.lock().await;
        let source = state.catalog.sources.values().find(|s| s.topic == topic)?;
        Some(crate::formats::JsonRewriter::for_source(
            source,
            &self.formats,
        ))
    }

    /// Ends the service (ksqlDB's TERMINATE CLUSTER): every persistent query stops and
    /// its internal topics are deleted, the topics queries wrote are deleted where
    /// `delete` says so, the catalog is emptied, and the engine takes no more statements.
    /// Returns the topics deleted.
    pub async fn terminate_cluster(&self, delete: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let mut state = self.state.lock().await;
        self.terminated.store(true, Ordering::SeqCst);
        let mut written = Vec::new();
        let ids: Vec<String> = state.queries.keys().cloned().collect();
        for id in &ids {
            if let Some(mut query) = state.queries.remove(id) {
                query.handle.stop().await;
                self.backend.forget_query(id);
                self.metrics.forget_query(id);
                if let Some(sink) = state.catalog.sources.get(&query.sink) {
                    written.push(sink.topic.clone());
                }
            }
        }
        let internal = format!("_confluent-ksql-{}query_", self.config.service_id);
        let mut deleted = Vec::new();
        for (topic, _, _) in self.backend.list_topics().await? {
            let generated = written.contains(&topic) && delete(&topic);
            if topic.starts_with(&internal) || generated {
                self.backend.delete_topic(&topic).await?;
                deleted.push(topic);
            }
        }
        state.catalog.sources.clear();
        state.catalog.types.clear();
        Ok(deleted)
    }

    /// Whether TERMINATE CLUSTER ended the service here.
    pub fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }

    /// The consumer group of each persistent query on Kafka.
    async fn consumer_groups(&self) -> Vec<ConsumerGroup> {
        let state = self.state.lock().await;
        state
            .queries
            .values()
            .filter_map(|q| match &q.handle {
                QueryHandle::Kafka(p) => Some(ConsumerGroup {
                    id: q.id.clone(),
                    group: p.group_id.clone(),
                    inputs: p.inputs.clone(),
                    stores: q.explained.stores.clone(),
                }),
                QueryHandle::Driver => None,
            })
            .collect()
    }

    /// The servers of the service and what each runs, as the brokers know them: every
    /// member of a persistent query's consumer group names its server's address (its client
    /// id), with the partitions it has; this server is always there.
    pub async fn cluster_status(&self) -> Result<BTreeMap<String, HostStatus>, String> {
        let groups = self.consumer_groups().await;
        let mut hosts: BTreeMap<String, HostStatus> = BTreeMap::new();
        if let Some(host) = self.host.get() {
            hosts.entry(host.clone()).or_default();
        }
        for ConsumerGroup {
            id, group, stores, ..
        } in groups
        {
            for member in self.backend.group_members(&group).await? {
                // Only servers name themselves by their address; other clients keep
                // librdkafka's default id.
                if !member.client_id.contains(':') {
                    continue;
                }
                let host = hosts.entry(member.client_id).or_default();
                let running = host.queries.entry(id.clone()).or_default();
                running.stores = stores.clone();
                running.partitions.extend(member.partitions);
            }
        }
        Ok(hosts)
    }

    /// The properties `ALTER SYSTEM` set.
    pub fn system_properties(&self) -> BTreeMap<String, String> {
        self.system
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets a property for every query and session of this process from now on.
    pub fn alter_system(&self, name: &str, value: &str) {
        self.system
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), value.to_string());
    }

    /// The running persistent queries: id, status.
    pub async fn queries(&self) -> Vec<(String, QueryStatus)> {
        let state = self.state.lock().await;
        state
            .queries
            .values()
            .map(|q| (q.id.clone(), q.handle.status()))
            .collect()
    }

    /// How far each persistent query's consumer group is behind its inputs, per partition
    /// (none in the driver, which runs every record to completion as it is written).
    pub async fn lag(&self) -> Result<Vec<(String, Vec<PartitionLag>)>, String> {
        let Backend::Kafka(kafka) = &self.backend else {
            return Ok(vec![]);
        };
        let groups: Vec<(String, String, Vec<String>)> = self
            .consumer_groups()
            .await
            .into_iter()
            .map(|g| (g.id, g.group, g.inputs))
            .collect();
        let settings = kafka.settings.clone();
        tokio::task::spawn_blocking(move || {
            groups
                .into_iter()
                .map(|(id, group, topics)| {
                    group_lag(&settings, &group, &topics, Duration::from_secs(10))
                        .map(|lag| (id, lag))
                })
                .collect()
        })
        .await
        .map_err(|e| format!("cannot read the queries' lag: {e}"))?
    }

    /// How far each sink connector's consumer group is behind the topics it reads.
    pub async fn connector_lag(&self) -> Result<Vec<(String, Vec<PartitionLag>)>, String> {
        let (Backend::Kafka(kafka), Some(connectors)) = (&self.backend, self.connectors.get())
        else {
            return Ok(vec![]);
        };
        let sinks: Vec<(String, Vec<String>)> = connectors
            .statuses()
            .into_iter()
            .filter(|c| c.kind == brook_sql::ast::ConnectorKind::Sink)
            .map(|c| (c.name, c.topics))
            .collect();
        let settings = kafka.settings.clone();
        tokio::task::spawn_blocking(move || {
            sinks
                .into_iter()
                .map(|(name, topics)| {
                    let group = crate::connect::sink_group(&name);
                    group_lag(&settings, &group, &topics, Duration::from_secs(10))
                        .map(|lag| (name, lag))
                })
                .collect()
        })
        .await
        .map_err(|e| format!("cannot read the connectors' lag: {e}"))?
    }

    /// What every query and sink connector of this process has still to read, and what
    /// that asks of the service (see `metrics::scaling`).
    pub async fn scaling(&self) -> Result<crate::metrics::Scaling, String> {
        let queries = self.lag().await?;
        let connectors = self.connector_lag().await?;
        let threshold = crate::metrics::lag_threshold(&self.config.properties)?;
        Ok(crate::metrics::Scaling::of(
            &queries,
            &connectors,
            threshold,
        ))
    }

    /// Everything this process counts, in Prometheus's text format, with the consumer
    /// lag and connector figures taken now. What cannot be read from Kafka is left out
    /// and logged.
    pub async fn scrape(&self) -> String {
        if let Some(connectors) = self.connectors.get() {
            self.metrics.set_connectors(connectors.statuses());
        }
        match self.scaling().await {
            Ok(scaling) => self.metrics.set_scaling(&scaling),
            Err(e) => tracing::warn!("metrics: {e}"),
        }
        self.metrics.encode()
    }

    pub async fn source(&self, name: &str) -> Option<SourceDef> {
        self.state.lock().await.catalog.sources.get(name).cloned()
    }

    /// All streams and tables.
    pub async fn sources(&self) -> Vec<SourceDef> {
        self.state
            .lock()
            .await
            .catalog
            .sources
            .values()
            .cloned()
            .collect()
    }

    /// Stops every persistent query cleanly: in-flight work is produced and committed.
    /// Whether the brokers answer (a topic listing succeeds).
    pub async fn check_brokers(&self) -> Result<(), String> {
        self.backend.list_topics().await.map(|_| ())
    }

    pub async fn shutdown(&self) {
        // Connectors first: their tasks may read what the queries write.
        if let Some(connectors) = self.connectors.get() {
            connectors.shutdown().await;
        }
        {
            let mut state = self.state.lock().await;
            for query in state.queries.values_mut() {
                query.handle.stop().await;
            }
            state.queries.clear();
        }
        // What was used since the last interval is not left out of the bill.
        self.write_usage().await;
    }

    /// Writes each query's usage since its last record to the usage topic; what cannot
    /// be written goes into the next interval's records.
    pub async fn write_usage(&self) {
        let Backend::Kafka(kafka) = &self.backend else {
            return;
        };
        let now = chrono::Utc::now().timestamp_millis();
        let window = {
            let mut last = self
                .usage_written_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let start = last.replace(now).unwrap_or(self.started_at);
            (start, now)
        };
        let taken =
            self.metrics
                .usage_since_last(&self.config.service_id, &kafka.process_id, window);
        if taken.is_empty() {
            return;
        }
        let records: Vec<crate::runtime::OutputRecord> = taken
            .iter()
            .map(|(_, record, _)| crate::runtime::OutputRecord {
                key: Some(record.key().into_bytes()),
                value: serde_json::to_vec(record).ok(),
                timestamp: now,
                headers: vec![],
            })
            .collect();
        let topic = usage_topic(&self.config.service_id);
        match crate::runtime::produce_all(&kafka.producer.get(), &topic, &records).await {
            Ok(()) => {
                for (usage, _, totals) in &taken {
                    usage.mark_written(*totals);
                }
                let written: Vec<_> = taken.into_iter().map(|(u, _, _)| u).collect();
                self.metrics.forget_ended_usage(&written);
            }
            Err(e) => {
                tracing::warn!("cannot write usage to {topic}: {e}; it goes into the next interval")
            }
        }
    }

    /// Every query's usage, summed over the usage topic (all processes of the service).
    pub async fn usage_totals(&self) -> Result<Vec<crate::metrics::usage::UsageTotal>> {
        let records = self
            .backend
            .read_topic(&usage_topic(&self.config.service_id))
            .await?;
        let parsed = records.into_iter().filter_map(|r| {
            let value = r.value?;
            match serde_json::from_slice::<crate::metrics::usage::UsageRecord>(&value) {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!("a usage record that is not one: {e}");
                    None
                }
            }
        });
        Ok(crate::metrics::usage::totals(parsed))
    }
}

pub struct Session {
    engine: Arc<Engine>,
    pub properties: BTreeMap<String, String>,
    pub variables: BTreeMap<String, String>,
}

impl Session {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            properties: BTreeMap::new(),
            variables: BTreeMap::new(),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The query settings in effect: the server's, overridden by the session's.
    /// The server's configuration, under `ALTER SYSTEM`'s properties, under the session's.
    fn properties_in_effect(&self) -> BTreeMap<String, String> {
        let mut properties = self.engine.config.properties.clone();
        properties.extend(self.engine.system_properties());
        properties.extend(self.properties.clone());
        properties
    }

    /// How many replicas internal topics created now get.
    fn internal_replicas(&self) -> i32 {
        crate::kafka::internal_replicas(&self.properties_in_effect())
    }

    pub async fn execute(&mut self, statement: &Statement) -> Result<StatementResult> {
        if self.engine.is_terminated() {
            return Err(EngineError::new(
                "The cluster has been terminated: it takes no more statements.",
            ));
        }
        let status = |message: String| {
            Ok(StatementResult::Status {
                message,
                query_id: None,
            })
        };
        match &statement.kind {
            StatementKind::CreateSource(create) => {
                self.create_source(create, &statement.text).await
            }
            StatementKind::CreateAsSelect(create) => {
                self.create_as_select(create, &statement.text).await
            }
            StatementKind::InsertValues(insert) => self.insert_values(insert).await,
            StatementKind::InsertInto(insert) => self.insert_into(insert, &statement.text).await,
            StatementKind::CreateType {
                name,
                data_type,
                if_not_exists,
            } => {
                let mut state = self.engine.state.lock().await;
                if state.catalog.types.contains_key(name) {
                    if *if_not_exists {
                        return Ok(StatementResult::Warning(format!(
                            "Type {name} already exists"
                        )));
                    }
                    return Err(EngineError::new(format!(
                        "Cannot register custom type '{name}' since it is already registered with type: {}",
                        state.catalog.types[name]
                    )));
                }
                let resolved = state.catalog.resolve_type(data_type)?;
                state.catalog.types.insert(name.clone(), resolved.clone());
                status(format!(
                    "Registered custom type with name '{name}' and SQL type {resolved}"
                ))
            }
            StatementKind::Alter {
                kind,
                name,
                columns,
            } => self.alter_source(*kind, name, columns).await,
            StatementKind::DropType { name, if_exists } => {
                let mut state = self.engine.state.lock().await;
                match state.catalog.types.remove(name) {
                    Some(_) => status(format!("Dropped type '{name}'")),
                    None if *if_exists => Ok(StatementResult::Warning(format!(
                        "Type '{name}' does not exist"
                    ))),
                    None => Err(EngineError::new(format!("Type {name} does not exist."))),
                }
            }
            StatementKind::Query(query) if query.emit.is_none() => self.pull_query(query).await,
            StatementKind::Query(query) => self.push_query(query).await,
            StatementKind::Drop(drop) => self.drop_source(drop).await,
            StatementKind::Set { name, value } => {
                self.properties.insert(name.clone(), value.clone());
                let shown = if is_secret(name) { "[hidden]" } else { value };
                status(format!("Successfully set property '{name}' to '{shown}'"))
            }
            StatementKind::Unset { name } => {
                self.properties.remove(name);
                status(format!("Successfully unset property '{name}'"))
            }
            StatementKind::AlterSystem { name, value } => {
                crate::settings::check(name, value).map_err(EngineError::new)?;
                self.engine.alter_system(name, value);
                let shown = if is_secret(name) { "[hidden]" } else { value };
                status(format!("System property {name} was set to {shown}."))
            }
            StatementKind::Define { name, value } => {
                self.variables.insert(name.clone(), value.clone());
                status(format!("Defined variable {name}"))
            }
            StatementKind::Undefine { name } => {
                self.variables.remove(name);
                status(format!("Undefined variable {name}"))
            }
            StatementKind::Show(kind) => self.show(*kind).await,
            StatementKind::CreateConnector(create) => self.create_connector(create),
            StatementKind::DropConnector { name, if_exists } => {
                if self.engine.connector_runtime()?.drop_connector(name) {
                    Ok(StatementResult::ConnectorDropped(name.clone()))
                } else if *if_exists {
                    Ok(StatementResult::Warning(format!(
                        "Connector '{name}' does not exist."
                    )))
                } else {
                    Err(EngineError::new(format!(
                        "Failed to drop connector: Connector {name} not found"
                    )))
                }
            }
            StatementKind::DescribeConnector { name } => self.describe_connector(name).await,
            StatementKind::Terminate { query_id } => self.terminate(query_id.as_deref()).await,
            StatementKind::SetRunning { query_id, running } => {
                self.set_running(query_id.as_deref(), *running).await
            }
            StatementKind::Describe { name, extended } => self.describe(name, *extended).await,
            StatementKind::DescribeAll { kind, extended } => {
                self.describe_all(*kind, *extended).await
            }
            StatementKind::DescribeFunction { name } => {
                let kind = crate::metadata::function_kind(name).ok_or_else(|| {
                    EngineError::new(format!("Can't find any functions with the name '{name}'"))
                })?;
                Ok(StatementResult::Listing(Listing::Function {
                    name: name.clone(),
                    kind,
                }))
            }
            StatementKind::Explain(target) => self.explain(target).await,
            StatementKind::Print(print) => {
                let push = crate::serving::print_topic(
                    &self.engine.backend,
                    print,
                    &self.properties_in_effect(),
                )
                .await?;
                Ok(StatementResult::Rows(push))
            }
            StatementKind::AssertTopic {
                topic,
                exists,
                properties,
                timeout_ms,
            } => status(
                crate::asserts::assert_topic(
                    &self.engine.backend,
                    topic,
                    *exists,
                    properties,
                    *timeout_ms,
                )
                .await?,
            ),
            StatementKind::AssertSchema {
                subject,
                id,
                exists,
                timeout_ms,
            } => status(
                crate::asserts::assert_schema(
                    self.engine.formats.registry.as_ref(),
                    subject.as_deref(),
                    *id,
                    *exists,
                    *timeout_ms,
                )
                .await?,
            ),
        }
    }

    fn create_connector(&self, create: &ast::CreateConnector) -> Result<StatementResult> {
        use crate::connect::{ConnectorError, ConnectorRequest};
        let connectors = self.engine.connector_runtime()?;
        let request = ConnectorRequest {
            name: create.name.clone(),
            kind: create.kind,
            config: create.config.clone(),
        };
        match connectors.create(request) {
            Ok(info) => Ok(StatementResult::ConnectorCreated(info)),
            Err(ConnectorError::Exists(_)) if create.if_not_exists => Ok(StatementResult::Warning(
                format!("Connector {} already exists", create.name),
            )),
            Err(e @ ConnectorError::Exists(_)) => Err(EngineError::new(e.to_string())),
            Err(e) => Err(EngineError::new(format!("Failed to create connector: {e}"))),
        }
    }

    async fn describe_connector(&self, name: &str) -> Result<StatementResult> {
        let status = self
            .engine
            .connector_runtime()?
            .status(name)
            .ok_or_else(|| {
                EngineError::new(format!(
                    "Failed to describe connector: Connector {name} not found"
                ))
            })?;
        let state = self.engine.state.lock().await;
        let sources = state
            .catalog
            .sources
            .values()
            .filter(|s| status.topics.contains(&s.topic))
            .map(SourceSummary::of)
            .collect();
        Ok(StatementResult::Listing(Listing::Connector {
            status: Box::new(status),
            sources,
        }))
    }

    async fn show(&self, kind: ast::ShowKind) -> Result<StatementResult> {
        let state = self.engine.state.lock().await;
        let listing = match kind {
            ast::ShowKind::Streams | ast::ShowKind::Tables => {
                let wanted = if kind == ast::ShowKind::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                Listing::Sources {
                    kind: wanted,
                    sources: state
                        .catalog
                        .sources
                        .values()
                        .filter(|s| s.kind == wanted)
                        .map(SourceSummary::of)
                        .collect(),
                }
            }
            ast::ShowKind::Queries { extended: true } => Listing::QueryDescriptions(
                state
                    .queries
                    .values()
                    .map(|q| self.query_description(&state, q))
                    .collect(),
            ),
            ast::ShowKind::Queries { extended: false } => Listing::Queries(
                state
                    .queries
                    .values()
                    .map(|q| state.query_summary(q))
                    .collect(),
            ),
            ast::ShowKind::Properties => Listing::Properties {
                properties: self
                    .engine
                    .system_properties()
                    .into_iter()
                    .chain(self.properties.clone())
                    .collect::<BTreeMap<_, _>>()
                    .iter()
                    .map(|(k, v)| {
                        let shown = if is_secret(k) {
                            "[hidden]".to_string()
                        } else {
                            v.clone()
                        };
                        (k.clone(), shown)
                    })
                    .collect(),
                overwritten: self.properties.keys().cloned().collect(),
            },
            ast::ShowKind::Variables => Listing::Variables(
                self.variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ast::ShowKind::Topics { all, extended } => {
                drop(state);
                let topics = self.engine.backend.list_topics().await?;
                let consumers = match extended {
                    true => Some(self.engine.backend.topic_consumers().await?),
                    false => None,
                };
                Listing::Topics {
                    topics: topics
                        .into_iter()
                        .filter(|(name, _, _)| all || !name.starts_with('_'))
                        .collect(),
                    consumers,
                }
            }
            ast::ShowKind::Functions => Listing::Functions(crate::metadata::functions()),
            ast::ShowKind::Types => Listing::Types(
                state
                    .catalog
                    .types
                    .iter()
                    .map(|(name, t)| (name.clone(), t.to_string()))
                    .collect(),
            ),
            ast::ShowKind::Connectors(kind) => {
                let connectors = self.engine.connector_runtime()?;
                Listing::Connectors(
                    connectors
                        .statuses()
                        .into_iter()
                        .filter(|c| kind.is_none_or(|k| k == c.kind))
                        .collect(),
                )
            }
            ast::ShowKind::ConnectorPlugins => {
                Listing::ConnectorPlugins(self.engine.connector_runtime()?.plugins())
            }
            ast::ShowKind::Usage => Listing::Usage(self.engine.usage_totals().await?),
        };
        Ok(StatementResult::Listing(listing))
    }

    async fn describe(&self, name: &str, extended: bool) -> Result<StatementResult> {
        let description = {
            let state = self.engine.state.lock().await;
            let Some(source) = state.catalog.sources.get(name) else {
                return Err(EngineError::new(format!(
                    "Could not find STREAM/TABLE '{name}' in the Metastore"
                )));
            };
            self.description(&state, source, extended)
        };
        let mut described = self.with_layouts(vec![description]).await?;
        let description = described
            .pop()
            .ok_or_else(|| EngineError::new("no description"))?;
        Ok(StatementResult::Listing(Listing::Source(Box::new(
            description,
        ))))
    }

    /// `DESCRIBE STREAMS|TABLES [EXTENDED]`: every stream's or table's description, by name.
    async fn describe_all(&self, kind: SourceKind, extended: bool) -> Result<StatementResult> {
        let descriptions = {
            let state = self.engine.state.lock().await;
            let mut sources: Vec<&SourceDef> = state
                .catalog
                .sources
                .values()
                .filter(|s| s.kind == kind)
                .collect();
            sources.sort_by(|a, b| a.name.cmp(&b.name));
            sources
                .into_iter()
                .map(|s| self.description(&state, s, extended))
                .collect()
        };
        Ok(StatementResult::Listing(Listing::SourceDescriptions(
            self.with_layouts(descriptions).await?,
        )))
    }

    /// What DESCRIBE tells of a source, but its topic's layout.
    fn description(
        &self,
        state: &EngineState,
        source: &SourceDef,
        extended: bool,
    ) -> SourceDescription {
        let summary_of = |q: &RunningQuery| state.query_summary(q);
        let columns = source
            .key_columns()
            .chain(source.columns.iter().filter(|c| c.role != ColumnRole::Key))
            .map(|c| {
                (
                    c.name.clone(),
                    c.data_type.clone(),
                    c.role == ColumnRole::Key,
                )
            })
            .collect();
        SourceDescription {
            summary: SourceSummary::of(source),
            kind: source.kind,
            columns,
            timestamp_column: source.timestamp_column.clone(),
            statement: source.sql.clone(),
            extended,
            read_queries: state
                .queries
                .values()
                .filter(|q| q.explained.sources.contains(&source.name))
                .map(summary_of)
                .collect(),
            constraints: state
                .queries
                .values()
                .filter(|q| q.explained.sources.contains(&source.name) && q.sink != source.name)
                .map(|q| q.sink.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            write_queries: state
                .queries
                .values()
                .filter(|q| q.sink == source.name)
                .map(summary_of)
                .collect(),
            statistics: self.engine.metrics.topic_statistics(&source.topic),
            partitions: 0,
            replication: 0,
        }
    }

    /// Descriptions with their topics' partitions and replicas, as the broker has them.
    async fn with_layouts(
        &self,
        mut descriptions: Vec<SourceDescription>,
    ) -> Result<Vec<SourceDescription>> {
        let topics = self.engine.backend.list_topics().await?;
        for d in &mut descriptions {
            if let Some((_, partitions, replication)) =
                topics.iter().find(|(name, _, _)| *name == d.summary.topic)
            {
                d.partitions = *partitions;
                d.replication = *replication;
            }
        }
        Ok(descriptions)
    }

    /// What EXPLAIN tells of a running query.
    fn query_description(&self, state: &EngineState, q: &RunningQuery) -> QueryDescription {
        QueryDescription {
            id: q.id.clone(),
            statement: q.sql.clone(),
            sources: q.explained.sources.clone(),
            sinks: vec![q.sink.clone()],
            fields: q.explained.fields.clone(),
            execution_plan: q.explained.plan.clone(),
            topology: q.explained.topology.clone(),
            window: q.explained.window,
            overridden: q
                .properties
                .iter()
                .map(|(k, v)| {
                    let shown = if is_secret(k) { "[hidden]" } else { v };
                    (k.clone(), shown.to_string())
                })
                .collect(),
            state: Some(state.query_summary(q).state),
            errors: q.handle.health().map(|h| h.failures()).unwrap_or_default(),
            host: self.engine.host.get().cloned(),
            restores: q.handle.health().map(|h| h.restores()).unwrap_or_default(),
        }
    }

    /// `EXPLAIN query_id` describes a running query; `EXPLAIN statement` plans the
    /// statement's query without running it.
    async fn explain(&self, target: &ast::ExplainTarget) -> Result<StatementResult> {
        let state = self.engine.state.lock().await;
        let description = match target {
            ast::ExplainTarget::Query(id) => {
                let q = state.queries.get(id).ok_or_else(|| {
                    EngineError::new(format!("Query with id:{id} does not exist, use SHOW QUERIES to view the full set of running queries."))
                })?;
                self.query_description(&state, q)
            }
            ast::ExplainTarget::Statement(statement) => {
                let (query, sink) = match &statement.kind {
                    StatementKind::Query(q) => (q, None),
                    StatementKind::CreateAsSelect(c) => (&c.query, Some(c.name.clone())),
                    StatementKind::InsertInto(i) => (&i.query, Some(i.target.clone())),
                    _ => {
                        return Err(EngineError::new(
                            "EXPLAIN takes a query id, a SELECT, a CREATE ... AS SELECT or an INSERT INTO ... SELECT",
                        ))
                    }
                };
                let flow =
                    brook_planner::plan::plan_dataflow(&state.catalog, query, sink.as_deref())?;
                let target = sink.as_ref().and_then(|n| state.catalog.sources.get(n));
                let explained = Explained::of(&flow, target);
                QueryDescription {
                    id: String::new(),
                    statement: statement.text.clone(),
                    sources: explained.sources,
                    sinks: sink.into_iter().collect(),
                    fields: explained.fields,
                    execution_plan: explained.plan,
                    topology: explained.topology,
                    window: explained.window,
                    overridden: BTreeMap::new(),
                    state: None,
                    errors: Vec::new(),
                    host: None,
                    restores: Vec::new(),
                }
            }
        };
        Ok(StatementResult::Listing(Listing::Query(Box::new(
            description,
        ))))
    }

    /// `TERMINATE id` or `TERMINATE ALL`: stops persistent queries (their offsets are
    /// committed) and forgets them, so their sources can be dropped.
    async fn terminate(&mut self, query_id: Option<&str>) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let mut state = engine.state.lock().await;
        state.next_sequence();
        let ids: Vec<String> = match query_id {
            Some(id) if state.queries.contains_key(id) => vec![id.to_string()],
            Some(id) => return Err(EngineError::new(format!("Unknown queryId: {id}"))),
            None => state.queries.keys().cloned().collect(),
        };
        for id in &ids {
            if let Some(mut query) = state.queries.remove(id) {
                query.handle.stop().await;
                engine.backend.forget_query(id);
                engine.metrics.forget_query(id);
            }
        }
        Ok(StatementResult::Status {
            message: "Query terminated.".into(),
            query_id: None,
        })
    }

    /// PAUSE or RESUME one persistent query, or all of them.
    async fn set_running(
        &mut self,
        query_id: Option<&str>,
        running: bool,
    ) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let mut state = engine.state.lock().await;
        state.next_sequence();
        let ids: Vec<String> = match query_id {
            Some(id) if state.queries.contains_key(id) => vec![id.to_string()],
            Some(id) => return Err(EngineError::new(format!("Unknown queryId: {id}"))),
            None => state.queries.keys().cloned().collect(),
        };
        for id in &ids {
            if let Some(query) = state.queries.get_mut(id) {
                query.handle.set_running(running).await?;
            }
        }
        Ok(StatementResult::Status {
            message: if running {
                "Query resumed.".into()
            } else {
                "Query paused.".into()
            },
            query_id: None,
        })
    }

    async fn create_source(
        &mut self,
        create: &ast::CreateSource,
        sql: &str,
    ) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let mut state = engine.state.lock().await;
        state.next_sequence();
        let create = &self.with_format_defaults(&self.with_inferred_columns(create)?);
        let mut source = state.catalog.source_from_create(create, sql)?;
        self.apply_wrap_default(&create.properties, &mut source);
        let noun = kind_noun(create.kind);
        if let Some(done) = admit(
            &state.catalog,
            &create.name,
            create.kind,
            create.or_replace,
            create.if_not_exists,
            create.is_source,
            true,
        )? {
            return Ok(done);
        }
        let settings = TopicSettings::new(Holds::of(create.kind), source.retention_ms, None)?;
        match engine.backend.partitions(&source.topic).await? {
            Some(_) => {}
            None => match source.partitions {
                Some(partitions) => {
                    engine
                        .backend
                        .create_topic(
                            &source.topic,
                            partitions,
                            source.replicas.unwrap_or(-1),
                            &settings,
                        )
                        .await?
                }
                None => {
                    return Err(EngineError::new(format!(
                        "Topic '{}' does not exist. If you want to create a new topic for the {noun} please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS'). For example: CREATE {} {} (...) WITH (KAFKA_TOPIC='{}', PARTITIONS=2, REPLICAS=1, ...);",
                        source.topic,
                        create.kind.keyword(),
                        create.name,
                        source.topic
                    )))
                }
            },
        }
        state.catalog.sources.insert(source.name.clone(), source);
        let verb = if create.kind == SourceKind::Stream {
            "Stream"
        } else {
            "Table"
        };
        Ok(StatementResult::Status {
            message: format!("{verb} created"),
            query_id: None,
        })
    }

    /// `ksql.persistence.wrap.single.values=false` unwraps single-column values that the
    /// statement does not say how to write.
    fn apply_wrap_default(&self, props: &ast::Properties, source: &mut SourceDef) {
        let unwrap = self
            .properties_in_effect()
            .get("ksql.persistence.wrap.single.values")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if unwrap && !props.contains_key("WRAP_SINGLE_VALUE") && source.value_columns().count() == 1
        {
            source.value_format.wrap_single_value = false;
        }
    }

    /// Fills in key or value columns that a statement leaves out from the schema registry,
    /// for formats that support it.
    fn with_inferred_columns(&self, create: &ast::CreateSource) -> Result<ast::CreateSource> {
        let props = WithClause::read(&create.properties, false)?;
        let (key_format, value_format) = match props.formats(None) {
            Ok(f) => f,
            Err(_) => return Ok(create.clone()),
        };
        let topic = props.topic.clone().unwrap_or_default();
        let mut out = create.clone();
        for (is_key, format, id, subject, single) in [
            (
                true,
                &key_format,
                props.key_schema_id,
                format!("{topic}-key"),
                "ROWKEY",
            ),
            (
                false,
                &value_format,
                props.value_schema_id,
                format!("{topic}-value"),
                "ROWVAL",
            ),
        ] {
            let side = if is_key { "KEY" } else { "VALUE" };
            let declared = create
                .columns
                .iter()
                .any(|c| (c.role == ast::ColumnRole::Key) == is_key);
            if id.is_some() && declared {
                return Err(EngineError::new(format!(
                    "Table elements and {side}_SCHEMA_ID cannot both exist for create statement."
                )));
            }
            if id.is_some() && !format.kind.supports_schema_inference() {
                return Err(EngineError::new(format!(
                    "{side}_FORMAT should support schema inference when {side}_SCHEMA_ID is provided. Current format is {}.",
                    format.kind
                )));
            }
            if declared || !format.kind.supports_schema_inference() {
                continue;
            }
            let Some(registry) = &self.engine.formats.registry else {
                continue;
            };
            let schema = match id {
                Some(id) => Some(registry.schema(id)?),
                None => registry.latest(&subject)?.map(|(_, s)| s),
            };
            let Some(schema) = schema else {
                if is_key {
                    continue;
                }
                return Err(EngineError::new(format!(
                    "Schema for message values on topic '{topic}' does not exist in the Schema Registry.Subject: {subject}"
                )));
            };
            // An unwrapped value is one column, whatever its schema holds.
            let unwrapped = !is_key && props.wrap_single_value == Some(false);
            let columns = match format.kind {
                brook_planner::formats::FormatKind::Avro if unwrapped => {
                    crate::formats::inference::avro_single_column(&schema, single)?
                }
                brook_planner::formats::FormatKind::Avro => {
                    crate::formats::inference::avro_columns(&schema, single)?
                }
                brook_planner::formats::FormatKind::JsonSr if is_key => {
                    crate::formats::json_schema::key_column_of(&schema, single)?
                }
                brook_planner::formats::FormatKind::JsonSr => {
                    crate::formats::json_schema::columns_of(&schema, single)?
                }
                brook_planner::formats::FormatKind::Protobuf => {
                    crate::formats::protobuf::columns_of(&schema)?
                }
                other => {
                    return Err(EngineError::new(format!(
                        "Reading columns from {other} schemas is not supported yet"
                    )))
                }
            };
            // Inferred names are upper-cased, as unquoted names are.
            out.columns
                .extend(columns.into_iter().map(|(name, data_type)| ast::ColumnDef {
                    name: name.to_uppercase(),
                    data_type,
                    role: if is_key {
                        ast::ColumnRole::Key
                    } else {
                        ast::ColumnRole::Value
                    },
                    primary_key: is_key && create.kind == SourceKind::Table,
                    header_key: None,
                    position: Default::default(),
                }));
        }
        if out.columns.is_empty()
            && !value_format.kind.supports_schema_inference()
            && value_format.kind != brook_planner::formats::FormatKind::None
        {
            return Err(EngineError::new("No columns supplied."));
        }
        Ok(out)
    }

    /// The formats `ksql.persistence.default.format.key` and `.value` give a CREATE
    /// statement that names none.
    fn with_format_defaults(&self, create: &ast::CreateSource) -> ast::CreateSource {
        let mut out = create.clone();
        let named =
            |k: &str| out.properties.contains_key(k) || out.properties.contains_key("FORMAT");
        let defaults = [
            ("KEY_FORMAT", "ksql.persistence.default.format.key"),
            ("VALUE_FORMAT", "ksql.persistence.default.format.value"),
        ];
        let properties = self.properties_in_effect();
        let missing: Vec<(&str, String)> = defaults
            .iter()
            .filter(|(k, _)| !named(k))
            .filter_map(|(k, p)| properties.get(*p).map(|v| (*k, v.clone())))
            .collect();
        for (k, v) in missing {
            out.properties
                .insert(k.to_string(), ast::Literal::String(v));
        }
        out
    }

    async fn create_as_select(
        &mut self,
        create: &ast::CreateAsSelect,
        sql: &str,
    ) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let mut state = engine.state.lock().await;
        let sequence = state.next_sequence();
        let (mut flow, mut sink) = state.catalog.plan_create_as(create, sql)?;
        // Rekeyed rows of a keyless source take the configured default key format.
        let names_key = ["KEY_FORMAT", "FORMAT"]
            .iter()
            .any(|k| create.properties.contains_key(*k));
        if flow.source().key_format.kind == brook_planner::formats::FormatKind::None
            && sink.key_columns().next().is_some()
            && !names_key
        {
            if let Some(kind) = self
                .properties
                .get("ksql.persistence.default.format.key")
                .and_then(|k| brook_planner::formats::FormatKind::parse(k).ok())
            {
                sink.key_format = brook_planner::formats::Format::new(kind);
            }
        }
        if let brook_planner::plan::Dataflow::Aggregate(plan) = &mut flow {
            plan.configure(&self.properties_in_effect());
        }
        if !create.properties.contains_key("KAFKA_TOPIC") {
            if let Some(prefix) = self
                .properties_in_effect()
                .get("ksql.output.topic.name.prefix")
            {
                sink.topic = format!("{prefix}{}", sink.topic);
            }
        }
        self.apply_wrap_default(&create.properties, &mut sink);
        if let Some(done) = admit(
            &state.catalog,
            &create.name,
            create.kind,
            create.or_replace,
            create.if_not_exists,
            false,
            false,
        )? {
            return Ok(done);
        }
        let source_topic = flow.source().topic.clone();
        let source_partitions =
            engine
                .backend
                .partitions(&source_topic)
                .await?
                .ok_or_else(|| {
                    EngineError::new(format!("Kafka topic does not exist: {source_topic}"))
                })?;
        let partitions = sink.partitions.unwrap_or(source_partitions);
        match engine.backend.partitions(&sink.topic).await? {
            Some(existing) if sink.partitions.is_some_and(|p| p != existing) => {
                return Err(EngineError::new(format!(
                    "A Kafka topic with the name '{}' already exists, with different partition/replica configuration than required. KSQL expects {partitions} partitions (topic has {existing}).",
                    sink.topic
                )))
            }
            Some(_) => {}
            None => {
                let holds = match &flow {
                    brook_planner::plan::Dataflow::Aggregate(plan) if plan.window.is_some() => {
                        Holds::WindowedTable {
                            window_retention: plan.window.as_ref().and_then(|w| w.retention),
                        }
                    }
                    _ => Holds::of(create.kind),
                };
                let inherited = match sink.retention_ms {
                    Some(_) => None,
                    None => engine.backend.retention_ms(&source_topic).await?,
                };
                let settings = TopicSettings::new(holds, sink.retention_ms, inherited)?;
                engine
                    .backend
                    .create_topic(
                        &sink.topic,
                        partitions,
                        sink.replicas.unwrap_or(-1),
                        &settings,
                    )
                    .await?
            }
        }
        let prefix = match create.kind {
            SourceKind::Table => "CTAS",
            SourceKind::Stream => "CSAS",
        };
        let query_id = format!("{prefix}_{}_{}", create.name.to_uppercase(), sequence);
        if let brook_planner::plan::Dataflow::Aggregate(plan) = &flow {
            let group_id = format!(
                "_confluent-ksql-{}query_{query_id}",
                engine.config.service_id
            );
            // An aggregation of a join's rows always moves them: its source tasks keep
            // the join's state (with its changelog, made by prepare_join).
            if !plan.groups_by_source_key() || plan.join.is_some() {
                if plan.pre.source.kind == SourceKind::Table && plan.join.is_none() {
                    engine
                        .backend
                        .create_internal_topic(
                            &crate::runtime::source_changelog(&group_id),
                            source_partitions,
                            self.internal_replicas(),
                            &[("cleanup.policy", "compact")],
                        )
                        .await?;
                }
                engine
                    .backend
                    .create_internal_topic(
                        &crate::runtime::repartition_topic(&group_id),
                        source_partitions,
                        self.internal_replicas(),
                        crate::runtime::REPARTITION_CONFIG,
                    )
                    .await?;
            }
            let changelog = format!("{group_id}-Aggregate-Aggregate-Materialize-changelog");
            // A windowed changelog also forgets what is older than its windows' retention
            // (plus Kafka Streams' extra day), besides compacting.
            let retention = crate::aggregation::window_retention(plan).map(|r| {
                r.saturating_add(WINDOW_CHANGELOG_EXTRA_RETENTION_MS)
                    .to_string()
            });
            let config: Vec<(&str, &str)> = match &retention {
                Some(ms) => vec![("cleanup.policy", "compact,delete"), ("retention.ms", ms)],
                None => vec![("cleanup.policy", "compact")],
            };
            engine
                .backend
                .create_internal_topic(
                    &changelog,
                    source_partitions,
                    self.internal_replicas(),
                    &config,
                )
                .await?;
        }
        match &mut flow {
            brook_planner::plan::Dataflow::Join(plan) => self.prepare_join(plan, &query_id).await?,
            brook_planner::plan::Dataflow::Aggregate(plan) => {
                if let Some(join) = plan.join.as_mut() {
                    self.prepare_join(join, &query_id).await?;
                }
            }
            _ => {}
        }
        let result = self.launch(&mut state, query_id, sql, flow, &sink)?;
        state.catalog.sources.insert(sink.name.clone(), sink);
        Ok(result)
    }

    /// `ALTER STREAM|TABLE ... ADD COLUMN`: value columns added to a source a CREATE
    /// declared, with ksqlDB's refusals (a query's sink, a SOURCE stream or table, a name
    /// already taken). Queries already running keep the columns they were started with.
    async fn alter_source(
        &mut self,
        kind: SourceKind,
        name: &str,
        columns: &[(String, DataType)],
    ) -> Result<StatementResult> {
        let noun = |k: SourceKind| match k {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        };
        let engine = self.engine.clone();
        let mut state = engine.state.lock().await;
        let Some(source) = state.catalog.sources.get(name) else {
            return Err(EngineError::new(format!("Source {name} does not exist.")));
        };
        if source.kind != kind {
            return Err(EngineError::new(format!(
                "Incompatible data source type is {}, but statement was ALTER {}",
                noun(source.kind),
                noun(kind)
            )));
        }
        let created_by_query = matches!(
            brook_sql::parse_statement(&source.sql, Default::default()).map(|s| s.kind),
            Ok(StatementKind::CreateAsSelect(_))
        );
        if created_by_query {
            return Err(EngineError::new(
                "ALTER command is not supported for CREATE ... AS statements.",
            ));
        }
        if source.is_source {
            let word = noun(kind).to_lowercase();
            return Err(EngineError::new(format!(
                "Cannot alter {word} '{name}': ALTER operations are not supported on source {word}s."
            )));
        }
        let mut altered = source.clone();
        for (column, data_type) in columns {
            if altered.columns.iter().any(|c| &c.name == column) {
                return Err(EngineError::new(format!(
                    "Cannot add column `{column}` to schema. A column with the same name already exists."
                )));
            }
            altered.columns.push(brook_planner::catalog::Column {
                name: column.clone(),
                data_type: state.catalog.resolve_type(data_type)?,
                role: ColumnRole::Value,
            });
        }
        state.catalog.sources.insert(name.to_string(), altered);
        Ok(StatementResult::Status {
            message: format!(
                "{} {name} altered.",
                match kind {
                    SourceKind::Stream => "Stream",
                    SourceKind::Table => "Table",
                }
            ),
            query_id: None,
        })
    }

    /// `INSERT INTO target SELECT ...`: a persistent query writing into an existing stream
    /// whose columns the query's output must match.
    async fn insert_into(
        &mut self,
        insert: &ast::InsertInto,
        sql: &str,
    ) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let mut state = engine.state.lock().await;
        let sequence = state.next_sequence();
        let Some(target) = state.catalog.sources.get(&insert.target).cloned() else {
            return Err(brook_planner::PlanError::at(
                insert.target_position,
                format!("Source `{}` does not exist.", insert.target),
            )
            .into());
        };
        if target.kind != SourceKind::Stream {
            return Err(EngineError::new(format!(
                "INSERT INTO can only be used to insert into a stream. {} is a table.",
                target.name
            )));
        }
        if target
            .columns
            .iter()
            .any(|c| matches!(c.role, ColumnRole::Header(_)))
        {
            return Err(EngineError::new(format!(
                "Cannot insert into {} because it has header columns",
                target.name
            )));
        }
        let mut flow = if insert.query.joins.is_empty() {
            brook_planner::plan::Dataflow::Stateless(plan_query(
                &state.catalog,
                &insert.query,
                Some(&insert.target),
            )?)
        } else {
            let plan = brook_planner::join::plan_join(
                &state.catalog,
                &insert.query,
                Some(&insert.target),
            )?;
            if plan.output_kind() != SourceKind::Stream {
                return Err(EngineError::new(format!(
                    "INSERT INTO can only be used to insert into a stream. The query produces a table, not a stream like {}.",
                    target.name
                )));
            }
            brook_planner::plan::Dataflow::Join(plan)
        };
        let projection = flow.projection_mut();
        let show = |cols: Vec<(&str, &DataType, bool)>| {
            cols.iter()
                .map(|(n, t, k)| format!("`{n}` {t}{}", if *k { " KEY" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let expected: Vec<&brook_planner::catalog::Column> =
            target.key_columns().chain(target.value_columns()).collect();
        let mut order: Vec<usize> = (0..projection.len())
            .filter(|i| projection[*i].key)
            .collect();
        order.extend((0..projection.len()).filter(|i| !projection[*i].key));
        let compatible = order.len() == expected.len()
            && order.iter().zip(&expected).all(|(i, c)| {
                let p = &projection[*i];
                p.name == c.name
                    && p.key == (c.role == ColumnRole::Key)
                    && (p.expr.data_type == c.data_type
                        || is_numeric(&p.expr.data_type) && is_numeric(&c.data_type))
            });
        if !compatible {
            return Err(EngineError::new(format!(
                "Incompatible schema between results and sink.\nResult schema is {}\nSink schema is {}",
                show(order.iter().map(|i| {
                    let p = &projection[*i];
                    (p.name.as_str(), &p.expr.data_type, p.key)
                }).collect()),
                show(expected.iter().map(|c| (c.name.as_str(), &c.data_type, c.role == ColumnRole::Key)).collect())
            )));
        }
        // Numbers convert to the sink's types, as ksqlDB casts them implicitly.
        for (i, c) in order.iter().zip(&expected) {
            let p = &mut projection[*i];
            p.expr = p.expr.clone().coerce(&c.data_type);
        }
        let query_id = format!("INSERTQUERY_{sequence}");
        if let brook_planner::plan::Dataflow::Join(plan) = &mut flow {
            self.prepare_join(plan, &query_id).await?;
        }
        self.launch(&mut state, query_id, sql, flow, &target)
    }

    /// Creates a join query's internal topics: its repartition topics and the changelog of
    /// its task stores (a partition per task).
    async fn prepare_join(
        &self,
        plan: &mut brook_planner::join::JoinPlan,
        query_id: &str,
    ) -> Result<()> {
        let group_id = format!(
            "_confluent-ksql-{}query_{query_id}",
            self.engine.config.service_id
        );
        let tasks = self.prepare_join_topics(plan, &group_id).await?;
        self.engine
            .backend
            .create_internal_topic(
                &format!("{group_id}-Join-changelog"),
                tasks,
                self.internal_replicas(),
                &[("cleanup.policy", "compact")],
            )
            .await?;
        Ok(())
    }

    /// Joined records must meet in one task: each partition's task joins the records of
    /// that partition of every input. Inputs keyed by what they join on stay where they
    /// are and need as many partitions; a stream joined on something else moves through a
    /// repartition topic with that many partitions, created here.
    async fn prepare_join_topics(
        &self,
        plan: &mut brook_planner::join::JoinPlan,
        group_id: &str,
    ) -> Result<i32> {
        // The in-process driver runs one task and needs no topics, but refuses what
        // ksqlDB refuses.
        let driver = self.engine.backend.is_driver();
        let mut counts = Vec::new();
        for input in &plan.inputs {
            let source = &input.pre.source;
            let n = self
                .engine
                .backend
                .partitions(&source.topic)
                .await?
                .ok_or_else(|| {
                    EngineError::new(format!("Kafka topic does not exist: {}", source.topic))
                })?;
            // The driver makes up one partition for a topic no statement sized: only the
            // counts statements gave are compared there.
            if driver && source.partitions.is_none() {
                return Ok(1);
            }
            counts.push((source.name.clone(), n));
        }
        let moved = match plan.inputs_to_repartition() {
            Some(moved) => moved,
            None if driver || counts.iter().all(|(_, n)| *n == 1) => return Ok(1),
            None => {
                // Keys cannot bring the records together (a foreign key, a table that
                // would move, several steps on different keys): one task joins them all.
                tracing::warn!(
                    "this join runs as one task: its inputs go through repartition topics with one partition"
                );
                plan.funnel = true;
                for input in &plan.inputs {
                    self.engine
                        .backend
                        .create_internal_topic(
                            &crate::runtime::join_repartition_topic(group_id, &input.alias),
                            1,
                            self.internal_replicas(),
                            crate::runtime::REPARTITION_CONFIG,
                        )
                        .await?;
                }
                return Ok(1);
            }
        };
        let staying: Vec<&(String, i32)> = counts
            .iter()
            .enumerate()
            .filter(|(i, _)| !moved.iter().any(|(m, _)| m == i))
            .map(|(_, c)| c)
            .collect();
        if let Some((name, n)) = staying.iter().find(|(_, n)| *n != staying[0].1) {
            let (first, count) = staying[0];
            return Err(EngineError::new(format!(
                "Can't join `{first}` with `{name}` since the number of partitions don't match. `{first}` partitions = {count}; `{name}` partitions = {n}. Please repartition either one so that the number of partitions match."
            )));
        }
        if driver {
            return Ok(1);
        }
        let partitions = staying
            .first()
            .map(|(_, n)| *n)
            .unwrap_or_else(|| counts.iter().map(|(_, n)| *n).max().unwrap_or(1));
        for (input, _) in moved {
            let alias = &plan.inputs[input].alias;
            self.engine
                .backend
                .create_internal_topic(
                    &crate::runtime::join_repartition_topic(group_id, alias),
                    partitions,
                    self.internal_replicas(),
                    crate::runtime::REPARTITION_CONFIG,
                )
                .await?;
        }
        Ok(partitions)
    }

    /// Starts a persistent query writing into `sink` and records it as running.
    fn launch(
        &self,
        state: &mut EngineState,
        query_id: String,
        sql: &str,
        flow: brook_planner::plan::Dataflow,
        sink: &SourceDef,
    ) -> Result<StatementResult> {
        let engine = &self.engine;
        let flow_for_explain = flow.clone();
        let group_id = format!(
            "_confluent-ksql-{}query_{query_id}",
            engine.config.service_id
        );
        let handle = engine.backend.start_query(
            NewQuery {
                id: &query_id,
                group_id: &group_id,
                sql,
                flow,
                sink,
                metrics: engine.metrics.query(&query_id),
                host: engine.host.get().cloned(),
            },
            &self.properties_in_effect(),
            &engine.formats,
        )?;
        state.queries.insert(
            query_id.clone(),
            RunningQuery {
                explained: Explained::of(&flow_for_explain, Some(sink)),
                id: query_id.clone(),
                sql: sql.to_string(),
                sink: sink.name.clone(),
                properties: self.properties.clone(),
                handle,
            },
        );
        Ok(StatementResult::Status {
            message: format!("Created query with ID {query_id}"),
            query_id: Some(query_id),
        })
    }

    async fn push_query(&mut self, query: &ast::Query) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let (mut flow, scalable) = {
            let state = engine.state.lock().await;
            let flow = brook_planner::plan::plan_dataflow(&state.catalog, query, None)?;
            let scalable = self.is_scalable_push(query, &flow)
                && state.queries.values().any(|q| q.sink == query.from.name);
            (flow, scalable)
        };
        if let brook_planner::plan::Dataflow::Aggregate(plan) = &mut flow {
            plan.configure(&self.properties_in_effect());
        }
        let n = engine.transient_ids.fetch_add(1, Ordering::Relaxed);
        let id = if scalable {
            format!("SCALABLE_PUSH_QUERY_{}{n}", nonce())
        } else {
            format!("transient_{}_{}{n}", flow.source().name, nonce())
        };
        let group_id = format!("_confluent-ksql-{}{id}", engine.config.service_id);
        let push = engine.backend.start_push(
            id,
            &group_id,
            crate::dataflow::Operators::new(flow, &engine.formats).for_push(),
            &self.properties_in_effect(),
        )?;
        Ok(StatementResult::Rows(push))
    }

    /// Whether ksqlDB would run the push query as a scalable push query (with
    /// `ksql.query.push.v2.enabled`): a stateless query from the latest offsets over what a
    /// persistent query writes. Brook runs it as any push query; only its id says so.
    fn is_scalable_push(&self, query: &ast::Query, flow: &brook_planner::plan::Dataflow) -> bool {
        let properties = self.properties_in_effect();
        let enabled = |name: &str, default: &str| {
            properties
                .get(name)
                .map(String::as_str)
                .unwrap_or(default)
                .eq_ignore_ascii_case("true")
        };
        let latest = properties
            .get("auto.offset.reset")
            .or_else(|| properties.get("ksql.streams.auto.offset.reset"))
            .is_none_or(|v| v.eq_ignore_ascii_case("latest"));
        enabled("ksql.query.push.v2.enabled", "false")
            && latest
            && matches!(flow, brook_planner::plan::Dataflow::Stateless(_))
            && query.partition_by.is_empty()
    }

    /// A query without EMIT: what its source holds now, once. Tables answer only if a
    /// query maintains them or they are SOURCE tables (ksqlDB's materialized tables).
    async fn pull_query(&mut self, query: &ast::Query) -> Result<StatementResult> {
        const MORE: &str = "See https://cnfl.io/queries for more info.\nAdd EMIT CHANGES if you intended to issue a push query.";
        let refuse = |what: &str| {
            Err(EngineError::new(format!(
                "Pull queries don't support {what} clauses. {MORE}"
            )))
        };
        if !query.joins.is_empty() {
            return refuse("JOIN");
        }
        if query.window.is_some() {
            return refuse("WINDOW");
        }
        if !query.group_by.is_empty() {
            return refuse("GROUP BY");
        }
        if !query.partition_by.is_empty() {
            return refuse("PARTITION BY");
        }
        let engine = self.engine.clone();
        let (flow, source) = {
            let state = engine.state.lock().await;
            let source = state.catalog.source(&query.from.name)?.clone();
            if source.kind == SourceKind::Table
                && !source.is_source
                && !state.queries.values().any(|q| q.sink == source.name)
            {
                let name = &source.name;
                return Err(EngineError::new(format!(
                    "The `{name}` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_{name} AS SELECT * FROM {name}'. {MORE}"
                )));
            }
            refuse_pseudo_columns(query)?;
            if source.kind == SourceKind::Table {
                crate::serving::check_like(query, &source)?;
            }
            // ksqlDB names the WHERE clause a pull query's filter error is about.
            let flow = brook_planner::plan::plan_dataflow(&state.catalog, query, None).map_err(
                |e| match (
                    &query.filter,
                    e.message.starts_with("Error in WHERE expression"),
                ) {
                    (Some(filter), true) => {
                        EngineError::new(format!("{}\nStatement: {filter}", e.message))
                    }
                    _ => EngineError::from(e),
                },
            )?;
            (flow, source)
        };
        let operators = crate::dataflow::Operators::new(flow, &engine.formats);
        let records = match source.kind {
            SourceKind::Table => {
                let properties = self.properties_in_effect();
                let enabled = |name: &str| {
                    properties
                        .get(name)
                        .is_none_or(|v| !v.eq_ignore_ascii_case("false"))
                };
                let access = crate::serving::Access {
                    scans: enabled("ksql.query.pull.table.scan.enabled"),
                    ranges: enabled("ksql.query.pull.range.scan.enabled"),
                };
                let lookup = crate::serving::key_lookup(query, &source, access)?;
                // Only KAFKA keys have one encoding per value; other formats (whitespace in
                // JSON, schema ids) are found by scanning, the filter picking the keys.
                let canonical = source.key_format.kind == brook_planner::formats::FormatKind::Kafka;
                let codec = RecordCodec::for_source(&source, &engine.formats);
                let encode = |value: Value| codec.key.encode(&[value]);
                let selection = match lookup {
                    crate::serving::Lookup::Keys(keys) if canonical => {
                        let mut encoded = Vec::new();
                        for key in keys {
                            if let Some(bytes) = codec.key.encode(&key)? {
                                encoded.push(bytes);
                            }
                        }
                        KeySelection::Prefixes(encoded)
                    }
                    crate::serving::Lookup::Range { lower, upper } if canonical => {
                        KeySelection::Between {
                            from: lower.map(encode).transpose()?.flatten(),
                            to: upper.map(encode).transpose()?.flatten(),
                        }
                    }
                    _ => KeySelection::All,
                };
                engine.backend.table_rows(&source.topic, &selection).await?
            }
            SourceKind::Stream => engine.backend.read_topic(&source.topic).await?,
        };
        let rows = crate::serving::run_pull(&operators, &records)?;
        let n = engine.transient_ids.fetch_add(1, Ordering::Relaxed);
        let id = format!("query_{}{n}", nonce());
        let table = source.kind == SourceKind::Table;
        Ok(StatementResult::Rows(PushQuery::pulled(
            id, &operators, rows, table,
        )))
    }

    async fn insert_values(&mut self, insert: &ast::InsertValues) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let source = {
            let mut state = engine.state.lock().await;
            state.next_sequence();
            match state.catalog.sources.get(&insert.target) {
                Some(source) => source.clone(),
                None => return Err(unknown_insert_target(&state.catalog, &insert.target)),
            }
        };
        if source.is_source {
            return Err(EngineError::new(format!(
                "Cannot insert values into read-only {}: {}",
                kind_noun(source.kind),
                source.name
            )));
        }
        let schema: Vec<&brook_planner::catalog::Column> = source
            .key_columns()
            .chain(
                source
                    .columns
                    .iter()
                    .filter(|c| c.role == ColumnRole::Value),
            )
            .collect();
        let names: Vec<String> = match &insert.columns {
            Some(names) => names.clone(),
            None => source
                .key_columns()
                .chain(source.columns.iter().filter(|c| c.role != ColumnRole::Key))
                .map(|c| c.name.clone())
                .collect(),
        };
        let headers: Vec<&str> = names
            .iter()
            .filter(|n| {
                source
                    .column(n)
                    .is_some_and(|c| matches!(c.role, ColumnRole::Header(_)))
            })
            .map(|n| n.as_str())
            .collect();
        if !headers.is_empty() {
            return Err(EngineError::new(format!(
                "Cannot insert into HEADER columns: {}",
                headers.join(", ")
            )));
        }
        if names.len() != insert.values.len() {
            // ksqlDB words it differently when the columns are named.
            return Err(EngineError::new(match insert.columns {
                Some(_) => format!(
                    "Failed to prepare statement: Expected number columns and values to match: {}, {}",
                    names.len(),
                    insert.values.len()
                ),
                None => format!(
                    "Failed to prepare statement: Expected a value for each column. Expected Columns: [{}]. Got {} values",
                    names.join(", "),
                    insert.values.len()
                ),
            }));
        }
        if let Some(pseudo) = names
            .iter()
            .find(|n| [ROWPARTITION, ROWOFFSET].contains(&n.as_str()))
        {
            return Err(EngineError::new(format!(
                "Inserting into column `{pseudo}` is not allowed."
            )));
        }
        let mut values: BTreeMap<String, Value> = BTreeMap::new();
        let mut rowtime = None;
        for (name, expr) in names.iter().zip(&insert.values) {
            let target = if name == brook_planner::catalog::ROWTIME {
                DataType::BigInt
            } else {
                match schema.iter().find(|c| &c.name == name) {
                    Some(c) => c.data_type.clone(),
                    None => {
                        return Err(EngineError::new(format!(
                            "Column name {name} does not exist."
                        )))
                    }
                }
            };
            let value = literal_value(expr, &target, name)?;
            if name == brook_planner::catalog::ROWTIME {
                rowtime = match value {
                    Value::BigInt(t) => Some(t),
                    _ => None,
                };
            } else {
                values.insert(name.clone(), value);
            }
        }
        self.write_row(&source, &values, rowtime).await?;
        Ok(StatementResult::Status {
            message: String::new(),
            query_id: None,
        })
    }

    /// Inserts one row given as a JSON object of column values (`/inserts-stream`);
    /// ROWTIME may be given too.
    pub async fn insert_json(
        &self,
        target: &str,
        row: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let source = {
            let state = self.engine.state.lock().await;
            match state.catalog.sources.get(target) {
                Some(source) => source.clone(),
                None => return Err(unknown_insert_target(&state.catalog, target)),
            }
        };
        if source.is_source {
            return Err(EngineError::new(format!(
                "Cannot insert values into read-only {}: {}",
                kind_noun(source.kind),
                source.name
            )));
        }
        let mut values: BTreeMap<String, Value> = BTreeMap::new();
        let mut rowtime = None;
        for (name, json) in row {
            if name.eq_ignore_ascii_case(brook_planner::catalog::ROWTIME) {
                rowtime = json.as_i64();
                continue;
            }
            let column = source
                .column(name)
                .or_else(|| source.column(&name.to_uppercase()))
                .filter(|c| matches!(c.role, ColumnRole::Key | ColumnRole::Value))
                .ok_or_else(|| EngineError::new(format!("Column name {name} does not exist.")))?;
            let value = crate::formats::json::from_json(json, &column.data_type).map_err(|e| {
                EngineError::new(format!(
                    "Cannot convert the value of {name} to {}: {e}",
                    column.data_type
                ))
            })?;
            values.insert(column.name.clone(), value);
        }
        self.write_row(&source, &values, rowtime).await
    }

    /// Encodes a row of `source` (absent columns are NULL) and writes it to its topic.
    async fn write_row(
        &self,
        source: &SourceDef,
        values: &BTreeMap<String, Value>,
        rowtime: Option<i64>,
    ) -> Result<()> {
        let engine = &self.engine;
        let codec = RecordCodec::for_source(source, &engine.formats);
        let pick = |role: ColumnRole| -> Vec<Value> {
            source
                .columns
                .iter()
                .filter(|c| c.role == role)
                .map(|c| values.get(&c.name).cloned().unwrap_or(Value::Null))
                .collect()
        };
        let key = codec.key.encode(&pick(ColumnRole::Key)).map_err(|e| {
            EngineError::new(format!(
                "Failed to insert values into '{}'. Could not serialize key: {e}",
                source.name
            ))
        })?;
        let value = codec.value.encode(&pick(ColumnRole::Value)).map_err(|e| {
            EngineError::new(format!(
                "Failed to insert values into '{}'. Could not serialize value: {e}",
                source.name
            ))
        })?;
        let timestamp = rowtime.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let record = OutputRecord {
            headers: vec![],
            key,
            value,
            timestamp,
        };
        engine.backend.produce(&source.topic, &[record]).await?;
        Ok(())
    }

    async fn drop_source(&mut self, drop: &ast::Drop) -> Result<StatementResult> {
        let engine = self.engine.clone();
        let mut state = engine.state.lock().await;
        state.next_sequence();
        let Some(source) = state.catalog.sources.get(&drop.name).cloned() else {
            if drop.if_exists {
                return Ok(StatementResult::Status {
                    message: format!("Source `{}` does not exist.", drop.name),
                    query_id: None,
                });
            }
            let kind = if drop.kind == SourceKind::Stream {
                "Stream"
            } else {
                "Table"
            };
            return Err(EngineError::new(format!(
                "{kind} {} does not exist.",
                drop.name
            )));
        };
        if source.kind != drop.kind {
            return Err(EngineError::new(format!(
                "Incompatible data source type is {}, but statement was DROP {}",
                source.kind.keyword(),
                drop.kind.keyword()
            )));
        }
        let running = |f: &dyn Fn(&RunningQuery) -> bool| -> Vec<String> {
            let mut ids: Vec<String> = state
                .queries
                .values()
                .filter(|q| f(q))
                .map(|q| q.id.clone())
                .collect();
            ids.sort();
            ids
        };
        // Every source a query reads counts (the sides of a join too), as in ksqlDB.
        let readers = running(&|q| q.explained.sources.contains(&drop.name));
        let writers = running(&|q| q.sink == drop.name);
        if !readers.is_empty() || !writers.is_empty() {
            return Err(EngineError::new(format!(
                "Cannot drop {0}.\nThe following queries read from this source: [{1}].\nThe following queries write into this source: [{2}].\nYou need to terminate them before dropping {0}.",
                drop.name,
                readers.join(", "),
                writers.join(", ")
            )));
        }
        if drop.delete_topic && source.is_source {
            return Err(EngineError::new(format!(
                "Cannot delete topic for read-only source: {}",
                drop.name
            )));
        }
        if source.kind == SourceKind::Table
            && !state
                .catalog
                .sources
                .values()
                .any(|s| s.topic == source.topic && s.name != source.name)
        {
            engine.backend.forget_table(&source.topic);
        }
        if drop.delete_topic {
            engine.backend.delete_topic(&source.topic).await?;
        }
        state.catalog.sources.remove(&drop.name);
        Ok(StatementResult::Status {
            message: format!(
                "Source `{}` (topic: {}) was dropped.",
                drop.name, source.topic
            ),
            query_id: None,
        })
    }
}

/// Whether a stream or table named `name` may be created. `Ok(Some(..))` when IF NOT
/// EXISTS makes the statement do nothing; an error when the name is taken and may not be
/// replaced (`replaceable` says whether this statement can replace at all).
/// ksqlDB serves pull queries from state that has no record partitions or offsets.
fn refuse_pseudo_columns(query: &ast::Query) -> Result<()> {
    let pseudo = |exprs: &mut dyn Iterator<Item = &ast::Expr>| {
        let mut found: Vec<String> = Vec::new();
        for expr in exprs {
            expr.rewrite(&mut |e| {
                if let ast::Expr::Column { name, .. } = e {
                    let upper = name.to_ascii_uppercase();
                    if [ROWPARTITION, ROWOFFSET].contains(&upper.as_str())
                        && !found.contains(&upper)
                    {
                        found.push(upper);
                    }
                }
                None
            });
        }
        found
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let selected = pseudo(&mut query.select.iter().filter_map(|item| match item {
        ast::SelectItem::Expr { expr, .. } => Some(expr),
        ast::SelectItem::Wildcard { .. } => None,
    }));
    if !selected.is_empty() {
        return Err(EngineError::new(format!(
            "Pull queries don't support the following columns in SELECT clauses: {selected}"
        )));
    }
    let filtered = pseudo(&mut query.filter.iter());
    if !filtered.is_empty() {
        return Err(EngineError::new(format!(
            "Pull queries don't support the following columns in WHERE clauses: {filtered}"
        )));
    }
    Ok(())
}

/// Distinguishes transient query ids across restarts.
fn nonce() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn admit(
    catalog: &Catalog,
    name: &str,
    kind: SourceKind,
    or_replace: bool,
    if_not_exists: bool,
    is_source: bool,
    replaceable: bool,
) -> Result<Option<StatementResult>> {
    let noun = kind_noun(kind);
    let existing = catalog.sources.get(name);
    if or_replace && (is_source || existing.is_some_and(|e| e.is_source)) {
        return Err(EngineError::new(format!(
            "Cannot add {noun} '{name}': CREATE OR REPLACE is not supported on source {noun}s."
        )));
    }
    let Some(existing) = existing else {
        return Ok(None);
    };
    let taken = format!(
        "Cannot add {noun} '{name}': A {} with the same name already exists",
        kind_noun(existing.kind)
    );
    if if_not_exists {
        return Ok(Some(StatementResult::Status {
            message: taken,
            query_id: None,
        }));
    }
    if or_replace && replaceable && existing.kind == kind {
        return Ok(None);
    }
    Err(EngineError::new(taken))
}

/// ksqlDB's error for INSERT VALUES into a missing source, with a hint when only the
/// case differs (quoted names keep their case, unquoted ones are upper-cased).
fn unknown_insert_target(catalog: &brook_planner::catalog::Catalog, target: &str) -> EngineError {
    let mut message = format!("Cannot insert values into an unknown stream/table: `{target}`");
    if let Some(other) = catalog
        .sources
        .keys()
        .find(|name| name.eq_ignore_ascii_case(target))
    {
        if *other == other.to_uppercase() {
            message.push_str(&format!(
                "\nDid you mean {other}? Hint: try removing double quotes from the source name."
            ));
        } else {
            message.push_str(&format!(
                "\nDid you mean \"{other}\"? Hint: wrap the source name in double quotes to make it case-sensitive."
            ));
        }
    }
    EngineError::new(message)
}

fn kind_noun(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Stream => "stream",
        SourceKind::Table => "table",
    }
}

/// Evaluates an `INSERT ... VALUES` expression, converted to the column's type.
pub(crate) fn literal_value(expr: &ast::Expr, target: &DataType, column: &str) -> Result<Value> {
    let typed = type_expr(
        expr,
        &Scope {
            columns: &[],
            qualifiers: vec![],
        },
    )?;
    let compatible = typed.is_null_literal() || assignable(&typed.data_type, target);
    if !compatible {
        return Err(EngineError::new(format!(
            "Expected type {target} for field {column} but got {}",
            typed.data_type
        )));
    }
    let typed = typed.coerce(target);
    let array = evaluate(&typed, &[], 1)?;
    let value = value_at(&array, target, 0);
    if value.is_null()
        && !matches!(
            typed.kind,
            brook_planner::typing::ExprKind::Literal(Value::Null)
        )
    {
        return Err(EngineError::new(format!(
            "Expected type {target} for field {column} but the value cannot be converted"
        )));
    }
    Ok(value)
}

/// Whether a literal of type `from` can be written to a column of type `to`: numbers
/// widen, strings parse, and collections and structs convert element by element (a
/// struct's missing fields are NULL).
fn assignable(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        _ if from == to => true,
        (DataType::String, _) => true,
        (f, t) if is_numeric(f) && is_numeric(t) => true,
        (DataType::Array(f), DataType::Array(t)) => assignable(f, t),
        (DataType::Map(fk, fv), DataType::Map(tk, tv)) => assignable(fk, tk) && assignable(fv, tv),
        (DataType::Struct(f), DataType::Struct(t)) => f.iter().all(|(name, ft)| {
            t.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .is_some_and(|(_, tt)| assignable(ft, tt))
        }),
        _ => false,
    }
}

/// Properties whose values are credentials: never shown back.
pub fn is_secret(name: &str) -> bool {
    let name = name.to_lowercase();
    [
        "password",
        "secret",
        "jaas.config",
        "user.info",
        "credentials",
        "token",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod secret_tests {
    use super::is_secret;

    #[test]
    fn credentials_are_secret() {
        for name in [
            "ssl.key.password",
            "sasl.jaas.config",
            "basic.auth.user.info",
            "ksql.schema.registry.basic.auth.credentials.source",
        ] {
            assert!(is_secret(name), "{name}");
        }
        assert!(!is_secret("auto.offset.reset"));
    }
}
