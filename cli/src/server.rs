//! `brook server`: the ksqlDB-compatible REST API over one engine.

use crate::engine_args::{start_engine, EngineArgs};
use crate::run::wait_for_signal;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where to listen for HTTP requests.
    #[arg(long, default_value = "0.0.0.0:8088")]
    listen: SocketAddr,
    /// Headless mode: run this file's statements at start; /ksql then takes none.
    #[arg(long)]
    queries_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

pub async fn run(args: ServerArgs) -> ExitCode {
    let (engine, embedded) = match start_engine(&args.engine).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut session = brook_engine::Session::new(engine.clone());
    if let Some(file) = &args.queries_file {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let statements = match brook_sql::parse_statements(&text, &mut Default::default()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}:{}:{}: {e}", e.position.line, e.position.column);
                return ExitCode::FAILURE;
            }
        };
        let code = crate::run::run_statements(&name, &statements, &mut session).await;
        if code != ExitCode::SUCCESS {
            engine.shutdown().await;
            return code;
        }
    }
    let mode = if args.queries_file.is_some() {
        brook_server::Mode::Headless
    } else {
        brook_server::Mode::Interactive
    };
    let served = brook_server::serve(engine.clone(), args.listen, mode, wait_for_signal()).await;
    drop(session);
    eprintln!("Stopping: committing processed offsets and leaving consumer groups.");
    engine.shutdown().await;
    drop(engine);
    drop(embedded);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
