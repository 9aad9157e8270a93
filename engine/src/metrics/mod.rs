//! What Brook counts, for `/metrics` (Prometheus text format), DESCRIBE EXTENDED and the
//! scaling signal. Query tasks count through a `QueryMetrics` handle; HTTP servers through
//! `Metrics::http_request`; what Kafka knows (consumer lag) and what the connector runtime
//! counts are taken when scraped (see `Engine::scrape`).

mod activity;
mod connectors;
mod process;
mod scaling;
pub mod usage;

use activity::TopicActivity;
pub use activity::TopicStatistics;
use connectors::ConnectorCollector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
pub use scaling::{lag_threshold, GroupBacklog, PartitionBacklog, Scaling, DEFAULT_LAG_THRESHOLD};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    query: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryTopicLabels {
    query: String,
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    /// `query` or `connector`.
    kind: String,
    name: String,
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies from a millisecond to about a minute.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// A process's metrics: registered once, counted into by every query and server.
pub struct Metrics {
    registry: Registry,
    consumed_records: Family<QueryTopicLabels, Counter>,
    consumed_bytes: Family<QueryTopicLabels, Counter>,
    produced_records: Family<QueryTopicLabels, Counter>,
    produced_bytes: Family<QueryTopicLabels, Counter>,
    processing_errors: Family<QueryLabels, Counter>,
    late_records: Family<QueryLabels, Counter>,
    restored_records: Family<QueryLabels, Counter>,
    standby_records: Family<QueryTopicLabels, Counter>,
    standby_partitions: Family<QueryTopicLabels, Gauge>,
    standby_lag: Family<QueryTopicLabels, Gauge>,
    cpu_seconds: Family<QueryLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    state_keys: Family<QueryLabels, Gauge>,
    state_bytes: Family<QueryLabels, Gauge>,
    /// Each query's and connector's usage in this process, until its last interval is
    /// written.
    usage: Mutex<BTreeMap<(usage::UsageKind, String), Arc<usage::Usage>>>,
    commit_seconds: Histograms<QueryLabels>,
    end_to_end_seconds: Histograms<QueryLabels>,
    lag: Family<LagLabels, Gauge>,
    /// The label sets of the lag figures set last, to replace them at the next scrape.
    lag_labels: Mutex<Vec<LagLabels>>,
    desired_replicas: Gauge,
    total_lag: Gauge,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Histograms<RouteLabels>,
    connectors: ConnectorCollector,
    /// Per topic, for DESCRIBE EXTENDED.
    topics: Mutex<BTreeMap<String, TopicActivity>>,
    /// The topics each query counted records of, to forget its label sets with it.
    query_topics: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            consumed_records: Family::default(),
            consumed_bytes: Family::default(),
            produced_records: Family::default(),
            produced_bytes: Family::default(),
            processing_errors: Family::default(),
            late_records: Family::default(),
            restored_records: Family::default(),
            standby_records: Family::default(),
            standby_partitions: Family::default(),
            standby_lag: Family::default(),
            cpu_seconds: Family::default(),
            state_keys: Family::default(),
            state_bytes: Family::default(),
            usage: Mutex::default(),
            commit_seconds: Family::new_with_constructor(latency_histogram),
            end_to_end_seconds: Family::new_with_constructor(latency_histogram),
            lag: Family::default(),
            lag_labels: Mutex::default(),
            desired_replicas: Gauge::default(),
            total_lag: Gauge::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
            connectors: ConnectorCollector::default(),
            topics: Mutex::default(),
            query_topics: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "brook_query_consumed_records",
            "Input records a persistent query processed and committed",
            metrics.consumed_records.clone(),
        );
        registry.register(
            "brook_query_consumed_bytes",
            "Bytes of keys and values of the input records a query processed",
            metrics.consumed_bytes.clone(),
        );
        registry.register(
            "brook_query_produced_records",
            "Records a query wrote, by topic (its sink, repartition and changelog topics)",
            metrics.produced_records.clone(),
        );
        registry.register(
            "brook_query_produced_bytes",
            "Bytes of keys and values of the records a query wrote",
            metrics.produced_bytes.clone(),
        );
        registry.register(
            "brook_query_processing_errors",
            "Records a query could not process (each one is in the processing log)",
            metrics.processing_errors.clone(),
        );
        registry.register(
            "brook_query_late_records_dropped",
            "Records that came after their window closed (past its grace period)",
            metrics.late_records.clone(),
        );
        registry.register(
            "brook_query_restored_records",
            "Changelog records read to restore a query's state stores",
            metrics.restored_records.clone(),
        );
        registry.register(
            "brook_query_standby_records",
            "Changelog records applied to this process's standby copies of a query's stores",
            metrics.standby_records.clone(),
        );
        registry.register(
            "brook_query_standby_partitions",
            "Changelog partitions of a query this process keeps a standby copy of",
            metrics.standby_partitions.clone(),
        );
        registry.register(
            "brook_query_standby_lag_records",
            "Changelog records this process's standby copies have still to apply",
            metrics.standby_lag.clone(),
        );
        registry.register(
            "brook_query_cpu_seconds",
            "CPU time a query's tasks spent on its operators (decoding, state, encoding)",
            metrics.cpu_seconds.clone(),
        );
        registry.register(
            "brook_query_state_keys",
            "Keys a query's state stores in this process hold (RocksDB's estimate)",
            metrics.state_keys.clone(),
        );
        registry.register(
            "brook_query_state_bytes",
            "Bytes a query's state stores in this process hold (RocksDB's estimate)",
            metrics.state_bytes.clone(),
        );
        registry.register(
            "brook_query_commit_duration_seconds",
            "How long a query's commits took (offsets, or the transaction under exactly-once)",
            metrics.commit_seconds.clone(),
        );
        registry.register(
            "brook_query_end_to_end_latency_seconds",
            "From an output record's timestamp to its write",
            metrics.end_to_end_seconds.clone(),
        );
        registry.register(
            "brook_consumer_lag_records",
            "Records of a partition a query's or connector's consumer group has still to read",
            metrics.lag.clone(),
        );
        registry.register(
            "brook_scaling_desired_replicas",
            "Replicas the backlog asks for: ceil(total lag / ksql.scaling.lag.threshold), at most the partitions",
            metrics.desired_replicas.clone(),
        );
        registry.register(
            "brook_scaling_total_lag_records",
            "Records all queries and sink connectors of this process have still to read",
            metrics.total_lag.clone(),
        );
        registry.register(
            "brook_http_requests",
            "HTTP requests answered, by route and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "brook_http_request_duration_seconds",
            "How long HTTP requests took to answer (to the first byte of a streamed answer)",
            metrics.http_seconds.clone(),
        );
        registry.register_collector(Box::new(metrics.connectors.clone()));
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        Self {
            registry,
            ..metrics
        }
    }

    /// The Prometheus text format (0.0.4) of everything counted.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// The handle a query's tasks count through.
    pub fn query(self: &Arc<Self>, id: &str) -> QueryMetrics {
        let labels = QueryLabels { query: id.into() };
        QueryMetrics {
            id: id.into(),
            errors: self.processing_errors.get_or_create_owned(&labels),
            late: self.late_records.get_or_create_owned(&labels),
            restored: self.restored_records.get_or_create_owned(&labels),
            commit: self.commit_seconds.get_or_create_owned(&labels),
            end_to_end: self.end_to_end_seconds.get_or_create_owned(&labels),
            cpu: self.cpu_seconds.get_or_create_owned(&labels),
            state_keys: self.state_keys.get_or_create_owned(&labels),
            state_bytes: self.state_bytes.get_or_create_owned(&labels),
            usage: self.usage_of(usage::UsageKind::Query, id),
            metrics: self.clone(),
        }
    }

    /// The usage `kind` `name` counts into: a new one if an earlier one of the name ended.
    fn usage_of(&self, kind: usage::UsageKind, name: &str) -> Arc<usage::Usage> {
        lock(&self.usage)
            .entry((kind, name.to_string()))
            .and_modify(|u| {
                if u.ended.load(std::sync::atomic::Ordering::Relaxed) {
                    *u = Arc::default();
                }
            })
            .or_default()
            .clone()
    }

    /// What a connector's tasks in this process count their usage into.
    pub fn connector_usage(&self, name: &str) -> Arc<usage::Usage> {
        self.usage_of(usage::UsageKind::Connector, name)
    }

    /// A dropped connector's usage is written one last time, then dropped.
    pub fn forget_connector(&self, name: &str) {
        if let Some(u) = lock(&self.usage).get(&(usage::UsageKind::Connector, name.to_string())) {
            u.ended.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Drops the figures of a query that was terminated.
    pub fn forget_query(&self, id: &str) {
        let labels = QueryLabels { query: id.into() };
        self.processing_errors.remove(&labels);
        self.late_records.remove(&labels);
        self.restored_records.remove(&labels);
        self.commit_seconds.remove(&labels);
        self.end_to_end_seconds.remove(&labels);
        self.cpu_seconds.remove(&labels);
        self.state_keys.remove(&labels);
        self.state_bytes.remove(&labels);
        // Its usage is written one last time, then dropped (see `take_usage`).
        if let Some(u) = lock(&self.usage).get(&(usage::UsageKind::Query, id.to_string())) {
            u.ended.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let topics = lock(&self.query_topics).remove(id).unwrap_or_default();
        for topic in topics {
            let labels = QueryTopicLabels {
                query: id.into(),
                topic,
            };
            for family in [
                &self.consumed_records,
                &self.consumed_bytes,
                &self.produced_records,
                &self.produced_bytes,
                &self.standby_records,
            ] {
                family.remove(&labels);
            }
            self.standby_partitions.remove(&labels);
            self.standby_lag.remove(&labels);
        }
    }

    /// Each query's and connector's usage since its last record, for `window`. Give back what was written
    /// with `usage::Usage::mark_written`.
    pub fn usage_since_last(
        &self,
        service_id: &str,
        process_id: &str,
        window: (i64, i64),
    ) -> Vec<(Arc<usage::Usage>, usage::UsageRecord, usage::Totals)> {
        lock(&self.usage)
            .iter()
            .map(|((kind, id), u)| {
                let (record, totals) = u.since_last(service_id, process_id, (*kind, id), window);
                (u.clone(), record, totals)
            })
            .collect()
    }

    /// Drops the usage of terminated queries once their last records are written.
    pub fn forget_ended_usage(&self, written: &[Arc<usage::Usage>]) {
        lock(&self.usage).retain(|_, u| {
            !(u.ended.load(std::sync::atomic::Ordering::Relaxed)
                && written.iter().any(|w| Arc::ptr_eq(w, u)))
        });
    }

    /// What this process did with `topic`, as DESCRIBE EXTENDED shows it.
    pub fn topic_statistics(&self, topic: &str) -> TopicStatistics {
        lock(&self.topics)
            .entry(topic.to_string())
            .or_default()
            .statistics()
    }

    /// Sets the consumer lag and scaling figures, replacing the last ones.
    pub fn set_scaling(&self, scaling: &Scaling) {
        let mut labels = lock(&self.lag_labels);
        for l in labels.drain(..) {
            self.lag.remove(&l);
        }
        for (kind, groups) in [
            ("query", &scaling.queries),
            ("connector", &scaling.connectors),
        ] {
            for group in groups {
                for p in &group.partition_lags {
                    let l = LagLabels {
                        kind: kind.into(),
                        name: group.name.clone(),
                        topic: p.topic.clone(),
                        partition: p.partition,
                    };
                    self.lag.get_or_create(&l).set(p.lag as i64);
                    labels.push(l);
                }
            }
        }
        self.desired_replicas.set(scaling.desired_replicas as i64);
        self.total_lag.set(scaling.total_lag as i64);
    }

    /// The connector runtime's statuses, for the next encoding.
    pub fn set_connectors(&self, statuses: Vec<crate::connect::ConnectorStatus>) {
        self.connectors.set(statuses);
    }

    /// Counts an HTTP request answered: `route` is the matched route's pattern, never the
    /// raw path, so that the label set stays bounded.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.into(),
                route: route.into(),
                status,
            })
            .inc();
        self.http_seconds
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn count(&self, query: &str, topic: &str, direction: Direction, records: u64, bytes: u64) {
        if records == 0 {
            return;
        }
        let labels = QueryTopicLabels {
            query: query.into(),
            topic: topic.into(),
        };
        let (records_family, bytes_family) = match direction {
            Direction::Consumed => (&self.consumed_records, &self.consumed_bytes),
            Direction::Produced => (&self.produced_records, &self.produced_bytes),
        };
        records_family.get_or_create(&labels).inc_by(records);
        bytes_family.get_or_create(&labels).inc_by(bytes);
        lock(&self.query_topics)
            .entry(query.into())
            .or_default()
            .insert(topic.into());
        let mut topics = lock(&self.topics);
        let activity = topics.entry(topic.into()).or_default();
        match direction {
            Direction::Consumed => activity.consumed.add(records, bytes),
            Direction::Produced => activity.produced.add(records, bytes),
        }
    }
}

enum Direction {
    Consumed,
    Produced,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one persistent query's tasks count through.
#[derive(Clone)]
pub struct QueryMetrics {
    id: String,
    metrics: Arc<Metrics>,
    errors: Counter,
    late: Counter,
    restored: Counter,
    commit: Histogram,
    end_to_end: Histogram,
    cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    state_keys: Gauge,
    state_bytes: Gauge,
    usage: Arc<usage::Usage>,
}

impl QueryMetrics {
    /// Input records processed and committed.
    pub fn consumed<'a>(
        &self,
        records: impl IntoIterator<Item = &'a crate::pipeline::InputRecord>,
    ) {
        let mut by_topic: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for r in records {
            let e = by_topic.entry(r.topic.as_str()).or_default();
            e.0 += 1;
            e.1 += record_bytes(&r.key, &r.value);
        }
        for (topic, (records, bytes)) in by_topic {
            self.metrics
                .count(&self.id, topic, Direction::Consumed, records, bytes);
            self.usage.records_read.fetch_add(records, Relaxed);
            self.usage.bytes_read.fetch_add(bytes, Relaxed);
        }
    }

    /// CPU time spent on the query's operators.
    pub fn cpu(&self, nanos: u64) {
        self.cpu.inc_by(nanos as f64 / 1e9);
        self.usage.cpu_nanos.fetch_add(nanos, Relaxed);
    }

    /// What the query's stores in this process hold now.
    pub fn state(&self, keys: u64, bytes: u64) {
        self.state_keys.set(keys as i64);
        self.state_bytes.set(bytes as i64);
        self.usage.state_keys.store(keys, Relaxed);
        self.usage.state_bytes.store(bytes, Relaxed);
    }

    /// Records written to `topic` and acknowledged; their timestamps give the end-to-end
    /// latency of the query's output.
    pub fn produced(&self, topic: &str, records: &[crate::runtime::OutputRecord], output: bool) {
        let bytes = records.iter().map(|r| record_bytes(&r.key, &r.value)).sum();
        self.metrics.count(
            &self.id,
            topic,
            Direction::Produced,
            records.len() as u64,
            bytes,
        );
        self.usage
            .records_written
            .fetch_add(records.len() as u64, Relaxed);
        self.usage.bytes_written.fetch_add(bytes, Relaxed);
        if output {
            let now = chrono::Utc::now().timestamp_millis();
            for r in records {
                // Timestamps from the future (a producer's clock ahead) count as no delay.
                self.end_to_end
                    .observe((now - r.timestamp).max(0) as f64 / 1000.0);
            }
        }
    }

    /// Records written to a store's changelog (and acknowledged): counted for the topic,
    /// and in the query's usage apart from its outputs.
    pub fn changelog_written(&self, topic: &str, records: u64, bytes: u64) {
        if records == 0 {
            return;
        }
        self.metrics
            .count(&self.id, topic, Direction::Produced, records, bytes);
        self.usage
            .changelog_records_written
            .fetch_add(records, Relaxed);
        self.usage.changelog_bytes_written.fetch_add(bytes, Relaxed);
    }

    /// Records that could not be processed (they go to the processing log).
    pub fn failed(&self, errors: &[crate::pipeline::RecordError]) {
        if errors.is_empty() {
            return;
        }
        self.errors.inc_by(errors.len() as u64);
        let mut topics = lock(&self.metrics.topics);
        for e in errors {
            let record = match e {
                crate::pipeline::RecordError::Deserialization { record, .. }
                | crate::pipeline::RecordError::Processing { record, .. } => record,
            };
            topics
                .entry(record.topic.clone())
                .or_default()
                .failed
                .add(1, record_bytes(&record.key, &record.value));
        }
    }

    pub fn late(&self, records: u64) {
        self.late.inc_by(records);
    }

    pub fn restored(&self, records: u64) {
        self.restored.inc_by(records);
    }

    /// How many changelog partitions of `changelog` this process keeps standby copies of,
    /// and the records they have still to apply (when known).
    pub fn standby(&self, changelog: &str, partitions: u64, lag: Option<u64>) {
        let labels = self.topic_labels(changelog);
        self.metrics
            .standby_partitions
            .get_or_create(&labels)
            .set(partitions as i64);
        if let Some(lag) = lag {
            self.metrics
                .standby_lag
                .get_or_create(&labels)
                .set(lag as i64);
        }
    }

    /// Changelog records applied to standby copies.
    pub fn standby_applied(&self, changelog: &str, records: u64) {
        if records > 0 {
            let labels = self.topic_labels(changelog);
            self.metrics
                .standby_records
                .get_or_create(&labels)
                .inc_by(records);
        }
    }

    /// The labels of one of the query's topics, remembered to be forgotten with it.
    fn topic_labels(&self, topic: &str) -> QueryTopicLabels {
        lock(&self.metrics.query_topics)
            .entry(self.id.clone())
            .or_default()
            .insert(topic.into());
        QueryTopicLabels {
            query: self.id.clone(),
            topic: topic.into(),
        }
    }

    pub fn committed_in(&self, elapsed: Duration) {
        self.commit.observe(elapsed.as_secs_f64());
    }
}

fn record_bytes(key: &Option<Vec<u8>>, value: &Option<Vec<u8>>) -> u64 {
    (key.as_ref().map_or(0, Vec::len) + value.as_ref().map_or(0, Vec::len)) as u64
}

#[cfg(test)]
mod tests {
    use super::Metrics;
    use crate::pipeline::InputRecord;
    use std::sync::Arc;

    fn record(topic: &str, value: &str) -> InputRecord {
        InputRecord {
            headers: vec![],
            topic: topic.into(),
            partition: 0,
            offset: 0,
            timestamp: 0,
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    #[test]
    fn query_figures_are_encoded_and_forgotten_with_the_query() {
        let metrics = Arc::new(Metrics::new());
        let q = metrics.query("CSAS_OUT_1");
        q.consumed(&[record("in", "abc"), record("in", "de")]);
        let lag = crate::runtime::lag::PartitionLag {
            topic: "in".into(),
            partition: 3,
            committed: Some(8),
            start: 0,
            end: 50,
        };
        let scaling = super::Scaling::of(&[("CSAS_OUT_1".into(), vec![lag])], &[], 1000);
        metrics.set_scaling(&scaling);
        let text = metrics.encode();
        assert!(
            text.contains(r#"brook_query_consumed_records_total{query="CSAS_OUT_1",topic="in"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"brook_query_consumed_bytes_total{query="CSAS_OUT_1",topic="in"} 7"#)
        );
        assert!(text.contains(
            r#"brook_consumer_lag_records{kind="query",name="CSAS_OUT_1",topic="in",partition="3"} 42"#
        ));
        assert!(text.contains("brook_scaling_desired_replicas 1"));
        assert!(text.contains("brook_process_resident_memory_bytes"));
        metrics.set_scaling(&super::Scaling::of(&[], &[], 1000));
        metrics.forget_query("CSAS_OUT_1");
        let text = metrics.encode();
        assert!(!text.contains("CSAS_OUT_1"), "{text}");
        // DESCRIBE EXTENDED's figures are per topic and outlive the query.
        assert!(metrics
            .topic_statistics("in")
            .statistics
            .contains("consumer-total-messages:         2"));
    }
}
