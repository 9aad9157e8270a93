//! `brook run FILE.sql`: the headless runner.

use crate::rows::print_push_query;
use brook_engine::kafka::{EmbeddedBroker, KafkaSettings};
use brook_engine::{Engine, EngineConfig, Session, StatementResult};
use brook_sql::ast::Statement;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The statements to run.
    file: PathBuf,
    /// Kafka brokers (host:port,...). Without it, an embedded in-process broker is used.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Prefix of consumer groups and internal topics, as ksqlDB's ksql.service.id.
    #[arg(long, default_value = "default_")]
    service_id: String,
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

pub async fn run(args: RunArgs) -> ExitCode {
    let file = args.file.display().to_string();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut variables = Default::default();
    let statements = match brook_sql::parse_statements(&text, &mut variables) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{file}:{}:{}: {}", e.position.line, e.position.column, e);
            return ExitCode::FAILURE;
        }
    };
    // The embedded broker lives as long as this function.
    let mut embedded = None;
    let bootstrap = match &args.bootstrap_servers {
        Some(servers) => servers.clone(),
        None => match EmbeddedBroker::start() {
            Ok(broker) => {
                eprintln!(
                    "No --bootstrap-servers given: using an embedded in-process Kafka broker. \
                     Its data lives only as long as this process."
                );
                let servers = broker.bootstrap_servers();
                embedded = Some(std::sync::Arc::new(broker));
                servers
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
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
                eprintln!("error: --kafka-property takes KEY=VALUE, got '{property}'");
                return ExitCode::FAILURE;
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
    let engine = match Engine::start(config).await {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut session = Session::new(engine.clone());
    let code = run_statements(&file, &statements, &mut session).await;
    if code == ExitCode::SUCCESS && !engine.queries().await.is_empty() {
        let ids: Vec<String> = engine
            .queries()
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        eprintln!(
            "Running {}. Stop with Ctrl-C (SIGINT) or SIGTERM.",
            ids.join(", ")
        );
        wait_for_signal().await;
        eprintln!("Stopping: committing processed offsets and leaving consumer groups.");
    }
    engine.shutdown().await;
    if let Some(log) = engine.processing_log() {
        if log.count() > 0 {
            eprintln!(
                "{} record(s) could not be processed; see the topic {}.",
                log.count(),
                log.topic
            );
        }
    }
    // Kafka clients go before the embedded broker they talk to.
    drop(session);
    drop(engine);
    drop(embedded);
    code
}

async fn run_statements(file: &str, statements: &[Statement], session: &mut Session) -> ExitCode {
    for statement in statements {
        let result = tokio::select! {
            r = session.execute(statement) => r,
            _ = wait_for_signal() => return ExitCode::SUCCESS,
        };
        match result {
            Ok(StatementResult::Status { message, .. }) => {
                if !message.is_empty() {
                    println!("{message}");
                }
            }
            Ok(StatementResult::Rows(push)) => {
                let finished = tokio::select! {
                    r = print_push_query(push) => r,
                    _ = wait_for_signal() => return ExitCode::SUCCESS,
                };
                if let Err(e) = finished {
                    eprintln!(
                        "{file}:{}:{}: error: {e}",
                        statement.position.line, statement.position.column
                    );
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                let at = e.position.unwrap_or(statement.position);
                eprintln!("{file}:{}:{}: error: {}", at.line, at.column, e.message);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
