//! The runtime behind `CREATE SINK CONNECTOR`: the connectors this process runs, each a
//! set of sink tasks (`sink`) in the connector's consumer group, supervised by the
//! engine's supervisor, with Kafka Connect's states and figures (`status`).

pub mod config;
pub mod datagen;
mod secrets;
pub mod sink;
pub mod status;

use brook_engine::connect::{
    ConnectorError, ConnectorInfo, ConnectorPlugin, ConnectorRequest, ConnectorState,
    ConnectorStatus, Connectors, TaskStatus,
};
use brook_engine::runtime::{supervise, QueryHealth, QueryStatus, RetryPolicy, TaskError};
use brook_engine::Engine;
use brook_sql::ast::ConnectorKind;
use config::{SinkConfig, Topics, NATIVE_CLASSES};
use rdkafka::producer::FutureProducer;
use sink::SinkTask;
use status::TaskCounters;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// A failed task stays FAILED until it is restarted (Kafka Connect's behaviour): the
/// supervisor's automatic restart is put this far off.
const NO_AUTOMATIC_RESTART: Duration = Duration::from_secs(365 * 24 * 3600);

pub struct Runtime {
    engine: Weak<Engine>,
    worker_id: String,
    producer: FutureProducer,
    client: reqwest::Client,
    connectors: Mutex<BTreeMap<String, Connector>>,
}

struct Connector {
    name: String,
    kind: ConnectorKind,
    class: String,
    /// As given: secrets by reference.
    config: BTreeMap<String, String>,
    work: Work,
    paused: watch::Sender<bool>,
    tasks: Vec<RunningTask>,
}

/// What a connector's tasks do.
enum Work {
    Sink(Arc<SinkConfig>),
    Datagen(Arc<datagen::DatagenConfig>),
}

impl Work {
    fn tasks(&self) -> u32 {
        match self {
            Work::Sink(c) => c.tasks,
            Work::Datagen(c) => c.tasks,
        }
    }

    /// The topics it reads or writes.
    fn topics(&self) -> Vec<String> {
        match self {
            Work::Sink(c) => match &c.topics {
                Topics::List(topics) => topics.clone(),
                Topics::Regex(regex) => vec![regex.clone()],
            },
            Work::Datagen(c) => vec![c.topic.clone()],
        }
    }
}

struct RunningTask {
    id: u32,
    health: Arc<QueryHealth>,
    counters: Arc<TaskCounters>,
    stop: watch::Sender<bool>,
    /// The supervisor running it; it ends once the task has stopped.
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Runtime {
    /// A runtime whose tasks use `engine`'s Kafka settings; `worker_id` names this process
    /// in statuses (Kafka Connect shows `host:port`).
    pub fn new(engine: &Arc<Engine>, worker_id: String) -> Result<Arc<Self>, String> {
        let producer: FutureProducer = engine
            .config()
            .kafka
            .producer_config()
            .create()
            .map_err(|e| format!("cannot create the connectors' producer: {e}"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot create an HTTP client: {e}"))?;
        Ok(Arc::new(Self {
            engine: Arc::downgrade(engine),
            worker_id,
            producer,
            client,
            connectors: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Creates a runtime and plugs it into `engine`.
    pub fn attach(engine: &Arc<Engine>, worker_id: String) -> Result<Arc<Self>, String> {
        let runtime = Self::new(engine, worker_id)?;
        engine.set_connectors(runtime.clone());
        Ok(runtime)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Connector>> {
        self.connectors.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_task(&self, connector: &Connector, id: u32) -> Result<RunningTask, ConnectorError> {
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| ConnectorError::Invalid("the engine has stopped".into()))?;
        let health = Arc::new(QueryHealth::default());
        let counters = Arc::new(TaskCounters::default());
        let (stop, stopped) = watch::channel(false);
        let mut policy = RetryPolicy::from_properties(&engine.config().properties);
        policy.restart_initial = NO_AUTOMATIC_RESTART;
        policy.restart_max = NO_AUTOMATIC_RESTART;
        let label = format!("connector {} task {id}", connector.name);
        let attempt_stop = stopped.clone();
        let handle = match &connector.work {
            Work::Sink(config) => {
                let task = Arc::new(SinkTask {
                    connector: connector.name.clone(),
                    class: connector.class.clone(),
                    id,
                    config: config.clone(),
                    kafka: engine.config().kafka.clone(),
                    instance_id: engine.config().instance_id.clone(),
                    producer: self.producer.clone(),
                    client: self.client.clone(),
                    counters: counters.clone(),
                    health: health.clone(),
                    paused: connector.paused.subscribe(),
                    engine: self.engine.clone(),
                    reports: Default::default(),
                    tokens: Default::default(),
                    usage: engine.metrics().connector_usage(&connector.name),
                    agent: format!(
                        "brook/{} (connector {} task {id}; worker {})",
                        env!("CARGO_PKG_VERSION"),
                        connector.name,
                        self.worker_id
                    ),
                });
                let span = tracing::info_span!(
                    "connector_task",
                    connector = %connector.name,
                    task = id
                );
                tokio::spawn(supervise(
                    label,
                    policy,
                    health.clone(),
                    stopped,
                    move || {
                        tracing::Instrument::instrument(
                            task.clone().run(attempt_stop.clone()),
                            span.clone(),
                        )
                    },
                ))
            }
            Work::Datagen(config) => {
                let (config, producer, counters) =
                    (config.clone(), self.producer.clone(), counters.clone());
                let engine = self.engine.clone();
                tokio::spawn(supervise(
                    label,
                    policy,
                    health.clone(),
                    stopped,
                    move || {
                        let (config, producer, counters, stop, engine) = (
                            config.clone(),
                            producer.clone(),
                            counters.clone(),
                            attempt_stop.clone(),
                            engine.clone(),
                        );
                        async move {
                            if let Some(engine) = engine.upgrade() {
                                engine
                                    .create_internal_topic(&config.topic, config.partitions, &[])
                                    .await
                                    .map_err(|e| TaskError::retriable(e.to_string()))?;
                            }
                            datagen::run(config, producer, counters, stop).await
                        }
                    },
                ))
            }
        };
        Ok(RunningTask {
            id,
            health,
            counters,
            stop,
            handle: Some(handle),
        })
    }

    fn status_of(&self, c: &Connector) -> ConnectorStatus {
        let paused = *c.paused.borrow();
        let tasks = c
            .tasks
            .iter()
            .map(|t| {
                let (state, trace) = match t.health.status() {
                    QueryStatus::Error(failure) => (ConnectorState::Failed, Some(failure.message)),
                    QueryStatus::Stopped => (ConnectorState::Unassigned, None),
                    QueryStatus::Paused => (ConnectorState::Paused, None),
                    QueryStatus::Running if paused => (ConnectorState::Paused, None),
                    QueryStatus::Running => (ConnectorState::Running, None),
                };
                TaskStatus {
                    id: t.id,
                    state,
                    worker_id: self.worker_id.clone(),
                    trace,
                    records_sent: t.counters.records_sent.load(Ordering::Relaxed),
                    batches_in_flight: t.counters.in_flight.load(Ordering::Relaxed),
                    retries: t.counters.retries.load(Ordering::Relaxed),
                    dead_letters: t.counters.dead_letters.load(Ordering::Relaxed),
                }
            })
            .collect();
        ConnectorStatus {
            name: c.name.clone(),
            kind: c.kind,
            class: c.class.clone(),
            state: if paused {
                ConnectorState::Paused
            } else {
                ConnectorState::Running
            },
            worker_id: self.worker_id.clone(),
            trace: None,
            tasks,
            topics: c.work.topics(),
            config: c.config.clone(),
        }
    }

    fn find<'a>(
        connectors: &'a mut BTreeMap<String, Connector>,
        name: &str,
    ) -> Result<&'a mut Connector, ConnectorError> {
        connectors
            .get_mut(&name.to_lowercase())
            .ok_or_else(|| ConnectorError::NotFound(name.to_string()))
    }
}

impl Connectors for Runtime {
    fn create(&self, request: ConnectorRequest) -> Result<ConnectorInfo, ConnectorError> {
        let mut connectors = self.lock();
        let key = request.name.to_lowercase();
        if connectors.contains_key(&key) {
            return Err(ConnectorError::Exists(request.name));
        }
        let class_name = request
            .config
            .get("connector.class")
            .cloned()
            .unwrap_or_default();
        if class_name.trim().is_empty() {
            return Err(ConnectorError::Invalid(format!(
                "Connector config {:?} contains no connector type",
                request.config
            )));
        }
        let (_, full, kind) = config::native_class(&class_name)
            .ok_or_else(|| ConnectorError::Invalid(config::unknown_class(&class_name)))?;
        if kind != request.kind {
            return Err(ConnectorError::Invalid(format!(
                "{full} is a {} connector; create it with CREATE {} CONNECTOR",
                kind.name(),
                kind.name().to_uppercase()
            )));
        }
        let resolved = secrets::resolve(&request.config).map_err(ConnectorError::Invalid)?;
        let work = match kind {
            ConnectorKind::Sink => Work::Sink(Arc::new(
                config::sink_config(&request.name, &resolved).map_err(ConnectorError::Invalid)?,
            )),
            ConnectorKind::Source => Work::Datagen(Arc::new(
                datagen::datagen_config(&resolved).map_err(ConnectorError::Invalid)?,
            )),
        };
        let dead_letters = match &work {
            Work::Sink(sink) => sink.dead_letter_topic.clone(),
            Work::Datagen(_) => None,
        };
        if let (Some(topic), Some(engine)) = (dead_letters, self.engine.upgrade()) {
            // Created now, so that the first dead letter does not wait for it.
            tokio::spawn(async move {
                if let Err(e) = engine.create_internal_topic(&topic, 1, &[]).await {
                    tracing::warn!("cannot create dead-letter topic {topic}: {e}");
                }
            });
        }
        let (paused, _) = watch::channel(false);
        let mut connector = Connector {
            name: request.name.clone(),
            kind: request.kind,
            class: full.to_string(),
            config: request.config.clone(),
            work,
            paused,
            tasks: Vec::new(),
        };
        for id in 0..connector.work.tasks() {
            let task = self.start_task(&connector, id)?;
            connector.tasks.push(task);
        }
        let info = ConnectorInfo {
            name: connector.name.clone(),
            kind: connector.kind,
            config: connector.config.clone(),
            tasks: connector.tasks.iter().map(|t| t.id).collect(),
        };
        connectors.insert(key, connector);
        Ok(info)
    }

    fn drop_connector(&self, name: &str) -> bool {
        // Dropping the tasks stops them: each commits what was answered and leaves.
        let dropped = self.lock().remove(&name.to_lowercase());
        if let (Some(connector), Some(engine)) = (&dropped, self.engine.upgrade()) {
            engine.metrics().forget_connector(&connector.name);
        }
        dropped.is_some()
    }

    fn statuses(&self) -> Vec<ConnectorStatus> {
        self.lock().values().map(|c| self.status_of(c)).collect()
    }

    fn status(&self, name: &str) -> Option<ConnectorStatus> {
        self.lock()
            .get(&name.to_lowercase())
            .map(|c| self.status_of(c))
    }

    fn plugins(&self) -> Vec<ConnectorPlugin> {
        NATIVE_CLASSES
            .iter()
            .map(|(_, full, kind)| ConnectorPlugin {
                class: full.to_string(),
                kind: *kind,
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .collect()
    }

    fn restart(&self, name: &str, only_failed: bool) -> Result<(), ConnectorError> {
        let mut connectors = self.lock();
        let connector = Self::find(&mut connectors, name)?;
        for i in 0..connector.tasks.len() {
            let task = &connector.tasks[i];
            let failed = matches!(task.health.status(), QueryStatus::Error(_));
            if only_failed && !failed {
                continue;
            }
            let replacement = self.start_task(connector, task.id)?;
            // The old task stops as it is dropped here.
            connector.tasks[i] = replacement;
        }
        Ok(())
    }

    fn restart_task(&self, name: &str, task: u32) -> Result<(), ConnectorError> {
        let mut connectors = self.lock();
        let connector = Self::find(&mut connectors, name)?;
        let i = connector
            .tasks
            .iter()
            .position(|t| t.id == task)
            .ok_or_else(|| ConnectorError::NotFound(format!("{name} task {task}")))?;
        let replacement = self.start_task(connector, task)?;
        connector.tasks[i] = replacement;
        Ok(())
    }

    fn shutdown(&self) -> futures::future::BoxFuture<'static, ()> {
        let stopping: Vec<RunningTask> = std::mem::take(&mut *self.lock())
            .into_values()
            .flat_map(|c| c.tasks)
            .collect();
        Box::pin(async move {
            let mut handles = Vec::new();
            for mut task in stopping {
                let _ = task.stop.send(true);
                handles.extend(task.handle.take());
            }
            for handle in handles {
                if tokio::time::timeout(Duration::from_secs(30), handle)
                    .await
                    .is_err()
                {
                    tracing::warn!("a connector task did not stop within 30 s");
                }
            }
        })
    }

    fn pause(&self, name: &str, paused: bool) -> Result<(), ConnectorError> {
        let mut connectors = self.lock();
        let connector = Self::find(&mut connectors, name)?;
        connector.paused.send_replace(paused);
        Ok(())
    }
}
