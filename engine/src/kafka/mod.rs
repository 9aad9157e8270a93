//! Kafka through `rdkafka`: client settings, topic administration, the embedded broker.

mod admin;
mod embedded;
mod producer;
mod topic_settings;

pub use admin::{GroupMember, TopicConsumers, Topics};
pub use embedded::EmbeddedBroker;
pub use producer::SharedProducer;
pub use topic_settings::{Holds, TopicSettings};

use rdkafka::ClientConfig;
use std::collections::BTreeMap;

/// How to reach the brokers, plus settings passed through to every client.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    /// librdkafka settings for all clients (security, timeouts, ...).
    pub client: BTreeMap<String, String>,
}

/// Session properties that are consumer settings, under their librdkafka names. ksqlDB
/// also accepts them prefixed with `ksql.streams.`.
const CONSUMER_PROPERTIES: &[&str] = &[
    "auto.offset.reset",
    "max.poll.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    PREFETCH_SETTING,
];

/// librdkafka's bound on what a consumer has fetched and not yet handed out.
const PREFETCH_SETTING: &str = "queued.max.messages.kbytes";

/// How far a consumer reads ahead of what it has handed out. librdkafka's default is 64 MB
/// per consumer, and a process holds one consumer per persistent query, push query,
/// standby, view and sink task: a hundred push queries from the start of a long topic
/// would hold gigabytes. A setting of the same name in the server's Kafka settings or
/// the session's properties wins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prefetch {
    /// Persistent queries, sink tasks, restores and standbys: room for full batches of
    /// every partition.
    Throughput,
    /// One client's rows (push queries, PRINT), the command topic, offset lookups.
    Small,
}

impl Prefetch {
    fn kbytes(self) -> &'static str {
        match self {
            Prefetch::Throughput => "16384",
            Prefetch::Small => "1024",
        }
    }
}

impl KafkaSettings {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            client: BTreeMap::new(),
        }
    }

    pub fn base_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.client {
            config.set(k, v);
        }
        config
    }

    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.base_config();
        // Kafka's Java clients place keyed records by murmur2; so must we, for co-partitioning.
        // Idempotence keeps retries from writing a record twice or out of order. Brook
        // creates every topic it writes: a deleted one is an error, not recreated by the
        // broker with its default partition count (which would break co-partitioning).
        config
            .set("partitioner", "murmur2_random")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .set("allow.auto.create.topics", "false");
        config
    }

    /// A consumer that reads partitions it assigns itself and commits nothing.
    pub fn reader_config(&self, group: &str, prefetch: Prefetch) -> ClientConfig {
        let mut config = self.consumer_base(prefetch);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        config
    }

    /// The client settings with the prefetch bound, unless they set one themselves.
    fn consumer_base(&self, prefetch: Prefetch) -> ClientConfig {
        let mut config = self.base_config();
        if !self.client.contains_key(PREFETCH_SETTING) {
            config.set(PREFETCH_SETTING, prefetch.kbytes());
        }
        config
    }

    /// A consumer that commits only when told to. `properties` are the session's. With an
    /// `instance_id` the consumer is a static group member (Kafka's `group.instance.id`): a
    /// restart with the same id takes back its partitions at once, without waiting for the
    /// broker to expire the member that died.
    pub fn consumer_config(
        &self,
        group_id: &str,
        properties: &BTreeMap<String, String>,
        instance_id: Option<&str>,
        prefetch: Prefetch,
    ) -> ClientConfig {
        let mut config = self.consumer_base(prefetch);
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "latest");
        if let Some(id) = instance_id {
            config.set("group.instance.id", id);
        }
        for (key, value) in properties {
            let name = key.strip_prefix("ksql.streams.").unwrap_or(key);
            if CONSUMER_PROPERTIES.contains(&name) {
                config.set(name, value);
            }
        }
        config
    }
}

/// Kafka Streams settings and ksqlDB query settings: they shape how queries run and are
/// not librdkafka settings, with or without the `ksql.streams.` prefix.
pub const STREAMS_PROPERTIES: &[&str] = &[
    "processing.guarantee",
    "cache.max.bytes.buffering",
    "commit.interval.ms",
    "num.stream.threads",
    "num.standby.replicas",
    "replication.factor",
    "task.timeout.ms",
    "max.task.idle.ms",
    "state.dir",
    "auto.offset.reset",
];

/// The replication factor of internal topics (changelogs, repartition topics, the command
/// topic, the processing log): `ksql.internal.topic.replicas`, else Kafka Streams'
/// `replication.factor`, else -1, the broker's `default.replication.factor`.
pub fn internal_replicas(properties: &BTreeMap<String, String>) -> i32 {
    [
        "ksql.internal.topic.replicas",
        "ksql.streams.replication.factor",
        "replication.factor",
    ]
    .iter()
    .find_map(|k| properties.get(*k).and_then(|v| v.trim().parse().ok()))
    .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::KafkaSettings;
    use rdkafka::producer::BaseProducer;

    /// SSL and SASL settings reach the clients, and the clients are built with what they
    /// need for them.
    #[test]
    fn clients_take_ssl_and_sasl_settings() {
        let mut settings = KafkaSettings::new("127.0.0.1:1");
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "brook"),
            ("sasl.password", "secret"),
            ("ssl.endpoint.identification.algorithm", "none"),
        ] {
            settings.client.insert(k.into(), v.into());
        }
        let config = settings.producer_config();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        let producer: Result<BaseProducer, _> = config.create();
        assert!(producer.is_ok(), "{:?}", producer.err());
        let consumer: Result<rdkafka::consumer::BaseConsumer, _> = settings
            .consumer_config("g", &Default::default(), None, super::Prefetch::Throughput)
            .create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }

    /// Every consumer's read-ahead is bounded, more tightly for one client's rows; the
    /// server's Kafka settings and then the session's properties may set it, and
    /// librdkafka takes every bound (it fits `fetch.max.bytes` under it).
    #[test]
    fn consumers_read_ahead_within_a_bound_that_settings_may_change() {
        use super::Prefetch;
        let mut settings = KafkaSettings::new("127.0.0.1:1");
        let bound = |settings: &KafkaSettings, properties: &[(&str, &str)], p| {
            let properties = properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let config = settings.consumer_config("g", &properties, None, p);
            let consumer: Result<rdkafka::consumer::BaseConsumer, _> = config.create();
            assert!(consumer.is_ok(), "{:?}", consumer.err());
            config.get("queued.max.messages.kbytes").map(str::to_string)
        };
        assert_eq!(
            bound(&settings, &[], Prefetch::Throughput).as_deref(),
            Some("16384")
        );
        assert_eq!(
            bound(&settings, &[], Prefetch::Small).as_deref(),
            Some("1024")
        );
        let session = [("ksql.streams.queued.max.messages.kbytes", "2048")];
        assert_eq!(
            bound(&settings, &session, Prefetch::Small).as_deref(),
            Some("2048")
        );
        settings
            .client
            .insert("queued.max.messages.kbytes".into(), "4096".into());
        assert_eq!(
            bound(&settings, &[], Prefetch::Small).as_deref(),
            Some("4096")
        );
        let reader = settings.reader_config("r", Prefetch::Small);
        assert_eq!(reader.get("queued.max.messages.kbytes"), Some("4096"));
    }
}
