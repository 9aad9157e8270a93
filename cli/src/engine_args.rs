//! What `brook run` and `brook server` share: how to reach Kafka (or start the embedded
//! broker), the service id, state and schema-registry settings, and starting the engine.

use brook_engine::kafka::{EmbeddedBroker, KafkaSettings};
use brook_engine::{Engine, EngineConfig};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct EngineArgs {
    /// Kafka brokers (host:port,...). Without it, an embedded in-process broker is used.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Prefix of consumer groups and internal topics, as ksqlDB's ksql.service.id.
    #[arg(long, default_value = "default_")]
    pub service_id: String,
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
    config.service_id = args.service_id.clone();
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    config.embedded = embedded.clone();
    config.instance_id = args.instance_id.clone();
    config.schema_registry_url = args.schema_registry_url.clone();
    let engine = Engine::start(config).await.map_err(|e| e.to_string())?;
    Ok((engine, embedded))
}
