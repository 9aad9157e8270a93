//! `brook run FILE.sql`: the headless runner.

use crate::engine_args::{start_engine, EngineArgs};
use crate::rows::print_push_query;
use brook_engine::{Session, StatementResult};
use brook_sql::ast::Statement;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The statements to run.
    file: PathBuf,
    /// Serve `/metrics` (Prometheus) and `/scaling` on this address while running.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    engine: EngineArgs,
}

pub async fn run(args: RunArgs) -> ExitCode {
    // SIGTERM is taken from the start, so that one that comes while the run is already
    // ending lets it end cleanly rather than killing it.
    #[cfg(unix)]
    let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
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
    let (engine, embedded) = match start_engine(&args.engine).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = match args.metrics_listen {
        None => None,
        Some(address) => match tokio::net::TcpListener::bind(address).await {
            Ok(tcp) => Some(tokio::spawn(brook_server::serve_metrics(
                engine.clone(),
                tcp,
                async move {
                    let _ = metrics_stopped.await;
                },
            ))),
            Err(e) => {
                // An operator asked for the figures: running without them would hide that.
                eprintln!("error: cannot listen on {address} for metrics: {e}");
                engine.shutdown().await;
                drop(engine);
                drop(embedded);
                return ExitCode::FAILURE;
            }
        },
    };
    let mut session = Session::new(engine.clone());
    let mut code = run_statements(&file, &statements, &mut session).await;
    let connectors: Vec<String> = engine
        .connectors()
        .map(|c| c.statuses().into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    if code == ExitCode::SUCCESS && (!engine.queries().await.is_empty() || !connectors.is_empty()) {
        let mut ids: Vec<String> = engine
            .queries()
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.extend(connectors.iter().map(|c| format!("connector {c}")));
        eprintln!(
            "Running {}. Stop with Ctrl-C (SIGINT) or SIGTERM.",
            ids.join(", ")
        );
        tokio::select! {
            _ = wait_for_signal() => {
                eprintln!("Stopping: committing processed offsets and leaving consumer groups.");
            }
            failed = all_failed(&engine) => {
                for (id, reason) in failed {
                    eprintln!("error: query {id} failed: {reason}");
                }
                eprintln!("Stopping: every persistent query has failed.");
                code = ExitCode::FAILURE;
            }
        }
    }
    engine.shutdown().await;
    let _ = stop_metrics.send(());
    if let Some(served) = metrics {
        match served.await {
            Ok(Err(e)) => eprintln!("error: {e}"),
            Err(e) => eprintln!("error: the metrics listener failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
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

/// Waits until every persistent query is in ERROR; returns each one's id and reason.
async fn all_failed(engine: &brook_engine::Engine) -> Vec<(String, String)> {
    use brook_engine::runtime::QueryStatus;
    loop {
        let queries = engine.queries().await;
        let failed: Vec<(String, String)> = queries
            .iter()
            .filter_map(|(id, status)| match status {
                QueryStatus::Error(failure) => Some((id.clone(), failure.message.clone())),
                _ => None,
            })
            .collect();
        if !queries.is_empty() && failed.len() == queries.len() {
            return failed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

pub(crate) async fn run_statements(
    file: &str,
    statements: &[Statement],
    session: &mut Session,
) -> ExitCode {
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
            Ok(StatementResult::Listing(listing)) => print_listing(&listing),
            Ok(StatementResult::Warning(message)) => println!("Warning: {message}"),
            Ok(StatementResult::ConnectorCreated(info)) => {
                println!("Created connector {}", info.name)
            }
            Ok(StatementResult::ConnectorDropped(name)) => println!("Dropped connector \"{name}\""),
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

pub(crate) async fn wait_for_signal() {
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

/// `SHOW` / `LIST` output: a line per item.
fn print_listing(listing: &brook_engine::Listing) {
    use brook_engine::Listing;
    match listing {
        Listing::Sources { sources, .. } => {
            for s in sources {
                println!(
                    "{} | {} | {} | {}{}",
                    s.name,
                    s.topic,
                    s.key_format,
                    s.value_format,
                    if s.window.is_some() {
                        " | windowed"
                    } else {
                        ""
                    }
                );
            }
        }
        Listing::Queries(queries) => {
            for q in queries {
                println!("{} | {} | {} | {}", q.id, q.state, q.sink, q.sql);
                if let Some(error) = &q.error {
                    println!("  error: {}", error.message);
                }
            }
        }
        Listing::Source(d) => print_source(d),
        Listing::Properties {
            properties: items, ..
        }
        | Listing::Variables(items)
        | Listing::Types(items) => {
            for (k, v) in items {
                println!("{k} = {v}");
            }
        }
        Listing::Topics { topics, consumers } => {
            for (name, partitions, replicas) in topics {
                let read = consumers
                    .as_ref()
                    .map(|c| c.get(name).copied().unwrap_or_default())
                    .map(|c| format!(" | {} consumer(s) in {} group(s)", c.consumers, c.groups))
                    .unwrap_or_default();
                println!("{name} | {partitions} partition(s) | replication {replicas}{read}");
            }
        }
        Listing::Functions(functions) => {
            for f in functions {
                println!("{} | {} | {}", f.name, f.kind, f.category);
            }
        }
        Listing::Function { name, kind } => println!("{name} | {kind}"),
        Listing::Connectors(connectors) => {
            for c in connectors {
                println!(
                    "{} | {} | {} | {}",
                    c.name,
                    c.kind.name(),
                    c.class,
                    c.summary()
                );
            }
        }
        Listing::Connector { status, .. } => {
            println!(
                "Name: {} | {} | {}",
                status.name,
                status.class,
                status.summary()
            );
            for t in &status.tasks {
                println!(
                    " task {} | {} | sent {} | retries {} | dead letters {}{}",
                    t.id,
                    t.state.name(),
                    t.records_sent,
                    t.retries,
                    t.dead_letters,
                    t.trace
                        .as_deref()
                        .map(|e| format!(" | {e}"))
                        .unwrap_or_default()
                );
            }
        }
        Listing::Usage(usage) => {
            for u in usage {
                println!(
                    "{} {} | read {} records, {} bytes | wrote {} records, {} bytes | changelogs {} records, {} bytes | {:.3} CPU s | state {} bytes",
                    u.kind.name(),
                    u.query_id,
                    u.records_read,
                    u.bytes_read,
                    u.records_written,
                    u.bytes_written,
                    u.changelog_records_written,
                    u.changelog_bytes_written,
                    u.cpu_seconds,
                    u.state_bytes
                );
            }
        }
        Listing::ConnectorPlugins(plugins) => {
            for p in plugins {
                println!("{} | {} | {}", p.class, p.kind.name(), p.version);
            }
        }
        Listing::Query(q) => print_query(q),
        Listing::QueryDescriptions(queries) => queries.iter().for_each(print_query),
        Listing::SourceDescriptions(sources) => sources.iter().for_each(print_source),
    }
}

fn print_query(q: &brook_engine::QueryDescription) {
    println!("{} | {}", q.id, q.statement);
    println!("{}", q.execution_plan);
}

fn print_source(d: &brook_engine::SourceDescription) {
    println!(
        "Name: {} ({}) | topic {} | {} / {}",
        d.summary.name,
        d.kind.keyword(),
        d.summary.topic,
        d.summary.key_format,
        d.summary.value_format
    );
    for (name, t, key) in &d.columns {
        println!(" {name} | {t}{}", if *key { " KEY" } else { "" });
    }
}
