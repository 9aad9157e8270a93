//! `brook`: the command line of Brook.

mod client;
mod engine_args;
mod local;
mod migrate;
mod qtt;
mod rows;
mod run;
mod server;
mod shell;
mod table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "brook",
    version,
    about = "Streaming SQL over Kafka, compatible with ksqlDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the statements of a .sql file; persistent queries keep running until
    /// interrupted (SIGINT or SIGTERM), then stop cleanly.
    Run(run::RunArgs),
    /// Serve ksqlDB's REST API (/ksql, /query-stream, /info, /healthcheck).
    Server(server::ServerArgs),
    /// The interactive SQL shell of a server (or -e/-f to run statements and exit).
    Shell(shell::ShellArgs),
    /// Version-controlled deployments of SQL files to a server (ksql-migrations).
    Migrate(migrate::MigrateArgs),
    /// Run ksqlDB query-validation test files through the in-process driver and report
    /// which cases pass.
    Qtt(qtt::QttArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BROOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Server(args) => server::run(args).await,
        Command::Shell(args) => shell::run(args).await,
        Command::Migrate(args) => migrate::run(args),
        Command::Qtt(args) => tokio::task::block_in_place(|| qtt::run(args)),
    }
}
