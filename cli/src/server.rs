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
    let served = brook_server::serve(engine.clone(), args.listen, wait_for_signal()).await;
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
