//! What `brook run` and `brook server` share: how to reach Kafka (or start the embedded
//! broker), the service id, state and schema-registry settings, and starting the engine.

use brook_engine::kafka::{EmbeddedBroker, KafkaSettings, STREAMS_PROPERTIES};
use brook_engine::{Engine, EngineConfig};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct EngineArgs {
    /// Kafka brokers (host:port,...). Without it, an embedded in-process broker is used.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Prefix of consumer groups and internal topics, as ksqlDB's ksql.service.id
    /// (default: default_).
    #[arg(long)]
    pub service_id: Option<String>,
    /// A stable identity for this process in its queries' consumer groups (Kafka static
    /// membership): restarted with the same id after a crash, it takes back its partitions
    /// at once. Give each process of a service its own id.
    #[arg(long)]
    instance_id: Option<String>,
    /// A Confluent-compatible schema registry (http://host:port), for AVRO and JSON_SR.
    #[arg(long)]
    schema_registry_url: Option<String>,
    /// Where stateful queries keep their state stores (a folder per service and query).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// A Kafka client setting passed to every client, as key=value (repeatable).
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    /// Server-wide query settings read from a config file (`ksql.*` and Kafka Streams
    /// settings such as `ksql.streams.processing.guarantee`).
    #[arg(skip)]
    properties: std::collections::BTreeMap<String, String>,
}

/// Kafka client settings a server config file passes to every client as they are.
const KAFKA_PREFIXES: &[&str] = &["security.", "sasl.", "ssl."];

impl EngineArgs {
    /// Takes what a config file sets and the command line does not.
    pub fn fill_from(&mut self, config: &std::collections::HashMap<String, String>) {
        let get = |k: &str| {
            config
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if self.bootstrap_servers.is_none() {
            self.bootstrap_servers = get("bootstrap.servers");
        }
        if self.service_id.is_none() {
            self.service_id = get("ksql.service.id");
        }
        if self.state_dir.is_none() {
            self.state_dir = get("ksql.streams.state.dir").map(PathBuf::from);
        }
        if self.schema_registry_url.is_none() {
            self.schema_registry_url = get("ksql.schema.registry.url");
        }
        let mut keys: Vec<&String> = config.keys().collect();
        keys.sort();
        for key in keys {
            let kafka_key = key.strip_prefix("ksql.streams.").unwrap_or(key);
            // Kafka Streams' own settings, ksqlDB's and Brook's own settings shape how
            // queries and the server run; they are not librdkafka's.
            if STREAMS_PROPERTIES.contains(&kafka_key)
                || (key.starts_with("ksql.") && !key.starts_with("ksql.streams."))
                || key.starts_with("brook.")
            {
                self.properties
                    .entry(key.clone())
                    .or_insert_with(|| config[key].trim().to_string());
                continue;
            }
            let passed = KAFKA_PREFIXES.iter().any(|p| kafka_key.starts_with(p))
                || key.starts_with("ksql.streams.");
            if passed {
                let value = config[key].trim();
                if !self
                    .kafka_properties
                    .iter()
                    .any(|p| p.split('=').next() == Some(kafka_key))
                {
                    self.kafka_properties.push(format!("{kafka_key}={value}"));
                }
            }
        }
    }
}

/// Starts the engine; the embedded broker, if one was started, must outlive it.
pub async fn start_engine(
    args: &EngineArgs,
) -> Result<(Arc<Engine>, Option<Arc<EmbeddedBroker>>), String> {
    let mut embedded = None;
    let bootstrap = match &args.bootstrap_servers {
        Some(servers) => servers.clone(),
        None => {
            let broker = EmbeddedBroker::start().map_err(|e| e.to_string())?;
            eprintln!(
                "No --bootstrap-servers given: using an embedded in-process Kafka broker. \
                 Its data lives only as long as this process."
            );
            let servers = broker.bootstrap_servers();
            embedded = Some(Arc::new(broker));
            servers
        }
    };
    let mut settings = KafkaSettings::new(bootstrap);
    for property in &args.kafka_properties {
        match property.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                settings
                    .client
                    .insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => {
                return Err(format!(
                    "--kafka-property takes KEY=VALUE, got '{property}'"
                ))
            }
        }
    }
    let mut config = EngineConfig::new(settings);
    config.service_id = args.service_id.clone().unwrap_or_else(|| "default_".into());
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    config.embedded = embedded.clone();
    config.instance_id = args.instance_id.clone();
    config.schema_registry_url = args.schema_registry_url.clone();
    config.properties = args.properties.clone();
    let worker_id = args.instance_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        format!("{host}-{}", std::process::id())
    });
    let engine = Engine::start(config).await.map_err(|e| e.to_string())?;
    brook_connectors::Runtime::attach(&engine, worker_id)?;
    Ok((engine, embedded))
}

#[cfg(test)]
mod tests {
    use super::EngineArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        engine: EngineArgs,
    }

    #[test]
    fn a_config_file_fills_what_the_command_line_leaves() {
        let mut args = Args::parse_from(["test", "--service-id", "cli_"]).engine;
        let config = [
            ("bootstrap.servers", "kafka:9092"),
            ("ksql.service.id", "file_"),
            ("security.protocol", "SASL_SSL"),
            ("ksql.streams.sasl.mechanism", "PLAIN"),
            ("ksql.streams.state.dir", "/var/brook"),
            ("listeners", "http://0.0.0.0:8088"),
            ("ksql.streams.processing.guarantee", "exactly_once_v2"),
            ("ksql.internal.topic.replicas", "3"),
            ("brook.server.request.max.bytes", "1024"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        args.fill_from(&config);
        assert_eq!(args.bootstrap_servers.as_deref(), Some("kafka:9092"));
        assert_eq!(
            args.service_id.as_deref(),
            Some("cli_"),
            "the command line wins"
        );
        assert_eq!(
            args.state_dir.as_deref(),
            Some(std::path::Path::new("/var/brook"))
        );
        let mut kafka = args.kafka_properties.clone();
        kafka.sort();
        assert_eq!(
            kafka,
            ["sasl.mechanism=PLAIN", "security.protocol=SASL_SSL"],
            "Kafka Streams and ksqlDB settings are not librdkafka's"
        );
        assert_eq!(
            args.properties
                .get("ksql.streams.processing.guarantee")
                .map(String::as_str),
            Some("exactly_once_v2")
        );
        assert_eq!(
            args.properties
                .get("ksql.internal.topic.replicas")
                .map(String::as_str),
            Some("3")
        );
        assert_eq!(
            args.properties
                .get("brook.server.request.max.bytes")
                .map(String::as_str),
            Some("1024")
        );
    }
}
