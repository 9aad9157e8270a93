//! Kafka through `rdkafka`: client settings, topic administration, the embedded broker.

mod admin;
mod embedded;
mod producer;

pub use admin::Topics;
pub use embedded::EmbeddedBroker;
pub use producer::SharedProducer;

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
];

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

    /// A consumer that commits only when told to. `properties` are the session's. With an
    /// `instance_id` the consumer is a static group member (Kafka's `group.instance.id`): a
    /// restart with the same id takes back its partitions at once, without waiting for the
    /// broker to expire the member that died.
    pub fn consumer_config(
        &self,
        group_id: &str,
        properties: &BTreeMap<String, String>,
        instance_id: Option<&str>,
    ) -> ClientConfig {
        let mut config = self.base_config();
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
            .consumer_config("g", &Default::default(), None)
            .create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }
}
