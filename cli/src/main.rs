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
    /// How log lines are written to stderr: `text`, or `json` (one object per line, with
    /// the query or connector task each line comes from) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BROOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Server(args) => server::run(args).await,
        Command::Shell(args) => shell::run(args).await,
        Command::Migrate(args) => migrate::run(args),
        Command::Qtt(args) => tokio::task::block_in_place(|| qtt::run(args)),
    }
}
