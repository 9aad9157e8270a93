//! `brook qtt PATH...`: runs ksqlDB's query-validation tests and reports.

use brook_qtt::{load_cases, load_path, run_cases, Options, Status};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct QttArgs {
    /// Test files, or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Also write every case's result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Consecutive input records handed to the queries at once.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Run REST test files (rest-query-validation-tests) through a server's REST API.
    #[arg(long)]
    rest: bool,
    /// Run only the cases whose full name matches this regular expression.
    #[arg(long)]
    filter: Option<String>,
    /// Run only the cases this file names, one full name per line (`#` starts a comment).
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Where the queries run: the in-process driver, or the Kafka runtime on a real broker
    /// (`--bootstrap-servers`; each case deletes the topics the one before it left).
    #[arg(long, value_enum, default_value_t = Backend::Driver)]
    backend: Backend,
    /// The broker for `--backend kafka`.
    #[arg(long)]
    bootstrap_servers: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Driver,
    Kafka,
}

pub fn run(args: QttArgs) -> ExitCode {
    let filter = match args.filter.as_deref().map(regex::Regex::new).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: --filter is not a valid regular expression: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cases = Vec::new();
    for path in &args.paths {
        let files = match load_path(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        for file in files {
            match load_cases(&file) {
                Ok(c) => cases.extend(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if let Some(f) = &filter {
        cases.retain(|c| f.is_match(&c.name));
    }
    if let Some(path) = &args.cases {
        let names = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let names: std::collections::BTreeSet<&str> = names
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        cases.retain(|c| names.contains(c.name.as_str()));
        if cases.len() < names.len() {
            eprintln!(
                "error: {} of the {} cases {} names are not in the test files",
                names.len() - cases.len(),
                names.len(),
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let kafka = match (args.backend, args.bootstrap_servers) {
        (Backend::Driver, _) => None,
        (Backend::Kafka, Some(servers)) => Some(servers),
        (Backend::Kafka, None) => {
            eprintln!("error: --backend kafka needs --bootstrap-servers");
            return ExitCode::FAILURE;
        }
    };
    if kafka.is_some() && args.rest {
        eprintln!("error: REST cases run on the driver only");
        return ExitCode::FAILURE;
    }
    let report = run_cases(
        &cases,
        &Options {
            batch_size: args.batch_size.max(1),
            rest: args.rest,
            kafka,
        },
    );
    for case in report.cases.iter().filter(|c| c.status == Status::Fail) {
        println!("FAIL {}: {}", case.name, case.reason.replace('\n', " "));
    }
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!("{}", report.totals());
    ExitCode::SUCCESS
}
