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
    let report = run_cases(
        &cases,
        &Options {
            batch_size: args.batch_size.max(1),
            rest: args.rest,
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
