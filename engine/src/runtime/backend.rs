//! Where a session's topics live and its queries run: Kafka, or the in-process driver.

use crate::dataflow::Operators;
use crate::formats::FormatContext;
use crate::kafka::{KafkaSettings, TopicSettings, Topics};
use crate::pipeline::InputRecord;
use crate::processing_log::ProcessingLog;
use crate::runtime::driver::Driver;
use crate::runtime::{produce_all, read_to_end, OutputRecord, PersistentQuery, QueryStatus};
use crate::serving::{start_push_query, KeySelection, PushQuery};
use crate::sink::SinkWriter;
use brook_planner::catalog::SourceDef;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct KafkaBackend {
    pub settings: KafkaSettings,
    pub topics: Topics,
    pub producer: Arc<crate::kafka::SharedProducer>,
    pub log: Arc<ProcessingLog>,
    /// This process's identity in its consumer groups (static membership), if any.
    pub instance_id: Option<String>,
    /// This service's state directory: a folder per query holds its tasks' stores.
    pub state_dir: std::path::PathBuf,
    /// This process's stable identity in the service (see `runtime::process_id`).
    pub process_id: String,
    /// Tables followed into local stores for pull queries.
    pub views: crate::serving::TableViews,
}

pub enum Backend {
    Kafka(KafkaBackend),
    Driver(Arc<Driver>),
}

/// What a persistent query is: its id and consumer group, its statement, its plan and the
/// source it writes.
pub struct NewQuery<'a> {
    pub id: &'a str,
    pub group_id: &'a str,
    pub sql: &'a str,
    pub flow: brook_planner::plan::Dataflow,
    pub sink: &'a SourceDef,
    /// What its tasks count through.
    pub metrics: crate::metrics::QueryMetrics,
    /// Where this process serves its API, when it does: its consumers carry it as their
    /// client id, so that every server of the service can tell who runs what.
    pub host: Option<String>,
}

/// A persistent query as the backend runs it.
pub enum QueryHandle {
    Kafka(PersistentQuery),
    Driver,
}

impl QueryHandle {
    pub fn status(&self) -> QueryStatus {
        match self {
            QueryHandle::Kafka(q) => q.status(),
            QueryHandle::Driver => QueryStatus::Running,
        }
    }

    /// The supervisor's record of the query (the driver has none: it never fails a query).
    pub fn health(&self) -> Option<&Arc<crate::runtime::QueryHealth>> {
        match self {
            QueryHandle::Kafka(q) => Some(q.health()),
            QueryHandle::Driver => None,
        }
    }

    pub async fn stop(&mut self) {
        if let QueryHandle::Kafka(q) = self {
            q.stop().await;
        }
    }

    /// PAUSE (`running` false) or RESUME. The driver runs each record to its end as it is
    /// written, so there is nothing of its queries to pause.
    pub async fn set_running(&mut self, running: bool) -> Result<(), String> {
        match self {
            QueryHandle::Kafka(q) if running => q.resume(),
            QueryHandle::Kafka(q) => {
                q.pause().await;
                Ok(())
            }
            QueryHandle::Driver => Err(
                "PAUSE and RESUME need Kafka: the in-process driver cannot pause a query".into(),
            ),
        }
    }
}

impl Backend {
    /// Drops what the backend keeps of a stopped query.
    pub fn forget_query(&self, id: &str) {
        if let Backend::Driver(d) = self {
            d.remove_query(id);
        }
    }

    /// Whether queries run in the in-process driver (one task per query).
    pub fn is_driver(&self) -> bool {
        matches!(self, Backend::Driver(_))
    }

    pub async fn partitions(&self, topic: &str) -> Result<Option<i32>, String> {
        match self {
            Backend::Kafka(k) => k.topics.partitions(topic).await,
            Backend::Driver(d) => Ok(d.partitions(topic)),
        }
    }

    /// A topic's partition count and replication factor (1 in the driver), if it exists.
    pub async fn layout(&self, topic: &str) -> Result<Option<(i32, i32)>, String> {
        match self {
            Backend::Kafka(k) => k.topics.layout(topic).await,
            Backend::Driver(d) => Ok(d.partitions(topic).map(|p| (p, 1))),
        }
    }

    /// Every topic: name, partitions, replicas.
    pub async fn list_topics(&self) -> Result<Vec<(String, i32, i32)>, String> {
        match self {
            Backend::Kafka(k) => k.topics.list().await,
            Backend::Driver(d) => Ok(d
                .topic_names()
                .into_iter()
                .map(|t| {
                    let partitions = d.partitions(&t).unwrap_or(1);
                    (t, partitions, 1)
                })
                .collect()),
        }
    }

    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replicas: i32,
        settings: &TopicSettings,
    ) -> Result<(), String> {
        match self {
            Backend::Kafka(k) => {
                let config = settings.config();
                let config: Vec<(&str, &str)> =
                    config.iter().map(|(k, v)| (*k, v.as_str())).collect();
                k.topics.create(topic, partitions, replicas, &config).await
            }
            Backend::Driver(d) => {
                d.create_topic(topic, partitions);
                Ok(())
            }
        }
    }

    /// The members of a consumer group (none in the driver, which has no groups).
    pub async fn group_members(
        &self,
        group: &str,
    ) -> Result<Vec<crate::kafka::GroupMember>, String> {
        match self {
            Backend::Kafka(k) => k.topics.group_members(group).await,
            Backend::Driver(_) => Ok(Vec::new()),
        }
    }

    /// Who reads each topic: consumers and consumer groups (none in the driver).
    pub async fn topic_consumers(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::kafka::TopicConsumers>, String> {
        match self {
            Backend::Kafka(k) => k.topics.consumers().await,
            Backend::Driver(_) => Ok(Default::default()),
        }
    }

    /// A topic's `retention.ms`, when the broker tells it (the driver keeps no settings).
    pub async fn retention_ms(&self, topic: &str) -> Result<Option<i64>, String> {
        match self {
            Backend::Kafka(k) => Ok(k
                .topics
                .setting(topic, "retention.ms")
                .await?
                .and_then(|v| v.trim().parse().ok())),
            Backend::Driver(_) => Ok(None),
        }
    }

    pub async fn delete_topic(&self, topic: &str) -> Result<(), String> {
        match self {
            Backend::Kafka(k) => k.topics.delete(topic).await,
            Backend::Driver(d) => {
                d.delete_topic(topic);
                Ok(())
            }
        }
    }

    /// Creates a query's internal topic (a changelog, a repartition topic) unless it exists.
    pub async fn create_internal_topic(
        &self,
        topic: &str,
        partitions: i32,
        replicas: i32,
        config: &[(&str, &str)],
    ) -> Result<(), String> {
        match self {
            Backend::Kafka(k) => k
                .topics
                .ensure(topic, partitions, replicas, config)
                .await
                .map(|_| ()),
            Backend::Driver(_) => Ok(()),
        }
    }

    /// Writes records and waits until they are durable (acknowledged, or stored).
    pub async fn produce(&self, topic: &str, records: &[OutputRecord]) -> Result<(), String> {
        match self {
            Backend::Kafka(k) => Ok(produce_all(&k.producer.get(), topic, records).await?),
            Backend::Driver(d) => {
                d.produce(topic, records);
                Ok(())
            }
        }
    }

    /// Every record `topic` holds now, partition after partition, each in offset order.
    pub async fn read_topic(&self, topic: &str) -> Result<Vec<InputRecord>, String> {
        match self {
            Backend::Kafka(k) => {
                let settings = k.settings.clone();
                let topic = topic.to_string();
                tokio::task::spawn_blocking(move || {
                    read_to_end(&settings, &topic, std::time::Duration::from_secs(60))
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Backend::Driver(d) => {
                let mut records: Vec<InputRecord> = d
                    .records(topic)
                    .into_iter()
                    .map(|r| r.into_input(topic))
                    .collect();
                records.sort_by_key(|r| (r.partition, r.offset));
                Ok(records)
            }
        }
    }

    /// What a table's topic amounts to now: its latest record per key, in partition and
    /// key order, of the keys `selection` holds. On Kafka it comes from a local store
    /// that follows the topic.
    pub async fn table_rows(
        &self,
        topic: &str,
        selection: &KeySelection,
    ) -> Result<Vec<InputRecord>, String> {
        match self {
            Backend::Kafka(k) => {
                match k
                    .views
                    .view(&k.settings, topic, &k.state_dir.join("pull"))?
                {
                    Some(view) => view.rows(selection).await,
                    None => Ok(Vec::new()),
                }
            }
            Backend::Driver(_) => {
                let mut rows = crate::serving::table_rows(self.read_topic(topic).await?);
                if *selection != KeySelection::All {
                    rows.retain(|r| r.key.as_deref().is_some_and(|k| selection.holds(k)));
                }
                Ok(rows)
            }
        }
    }

    /// Stops keeping a table that is gone.
    pub fn forget_table(&self, topic: &str) {
        if let Backend::Kafka(k) = self {
            k.views.forget(topic, &k.state_dir.join("pull"));
        }
    }

    /// Starts a persistent query from `pipeline` into `sink`.
    pub fn start_query(
        &self,
        query: NewQuery<'_>,
        properties: &BTreeMap<String, String>,
        formats: &FormatContext,
    ) -> Result<QueryHandle, String> {
        let NewQuery {
            id,
            group_id,
            sql,
            flow,
            sink,
            metrics,
            host,
        } = query;
        match self {
            Backend::Kafka(k) => PersistentQuery::start(
                crate::runtime::QuerySpec {
                    standbys: (crate::runtime::standby_replicas(properties)? > 0).then(|| {
                        crate::runtime::Standbys::new(k.settings.clone(), metrics.clone())
                    }),
                    id: id.to_string(),
                    flow,
                    sink: sink.clone(),
                    settings: k.settings.clone(),
                    group_id: group_id.to_string(),
                    instance_id: k.instance_id.clone(),
                    process_id: k.process_id.clone(),
                    properties: properties.clone(),
                    log: k.log.clone(),
                    formats: formats.clone(),
                    state_dir: k.state_dir.join(id),
                    metrics,
                    host,
                },
                sql.to_string(),
            )
            .map(QueryHandle::Kafka),
            Backend::Driver(d) => {
                let operators = Operators::new(flow, formats);
                let writer = SinkWriter::new(operators.projection(), sink, formats);
                let from_beginning = properties
                    .get("auto.offset.reset")
                    .map(|v| v.eq_ignore_ascii_case("earliest"))
                    .unwrap_or(true);
                d.add_query(id.to_string(), operators, writer, from_beginning);
                Ok(QueryHandle::Driver)
            }
        }
    }

    pub fn start_push(
        &self,
        id: String,
        group_id: &str,
        operators: Operators,
        properties: &BTreeMap<String, String>,
    ) -> Result<PushQuery, String> {
        match self {
            Backend::Kafka(k) => start_push_query(
                id,
                operators,
                &k.settings,
                group_id,
                properties,
                k.log.clone(),
            ),
            Backend::Driver(d) => {
                let from_beginning = properties
                    .get("auto.offset.reset")
                    .map(|v| v.eq_ignore_ascii_case("earliest"))
                    .unwrap_or(true);
                // The driver runs synchronously and cannot wait for a slow reader: the
                // channel holds what a test produces.
                let (tx, rows) = tokio::sync::mpsc::channel(1 << 16);
                let push = PushQuery::new(id.clone(), &operators, rows.into());
                d.add_push(id.clone(), operators, tx, from_beginning);
                let mut stopped = push.stopped();
                let driver = d.clone();
                tokio::spawn(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                    driver.remove_push(&id);
                });
                Ok(push)
            }
        }
    }
}
