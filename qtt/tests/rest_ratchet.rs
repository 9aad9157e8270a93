//! The REST conformance ratchet: every case named in `rest-baseline.txt` must still pass
//! when ksqlDB's REST test files run through a server's HTTP API. Set
//! BROOK_QTT_UPDATE_BASELINE=1 to rewrite the baseline with the cases passing now.

use brook_qtt::{load_cases, load_path, run_cases, Options, Status};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/qtt/rest-query-validation-tests")
}

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rest-baseline.txt")
}

#[test]
fn no_rest_baseline_case_regresses() {
    let dir = corpus();
    let files = load_path(&dir)
        .unwrap_or_else(|e| panic!("the REST QTT corpus is needed at {}: {e}", dir.display()));
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    let cases: Vec<_> = files
        .iter()
        .flat_map(|f| load_cases(f).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let report = run_cases(
        &cases,
        &Options {
            batch_size: 100,
            rest: true,
        },
    );
    println!("REST QTT: {}", report.totals());
    let now: BTreeSet<String> = report
        .cases
        .iter()
        .filter(|c| c.status == Status::Pass)
        .map(|c| c.name.clone())
        .collect();
    if std::env::var_os("BROOK_QTT_UPDATE_BASELINE").is_some() {
        let text: String = now.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(baseline_path(), text).expect("write the REST baseline");
        return;
    }
    let baseline_text = std::fs::read_to_string(baseline_path()).expect("qtt/rest-baseline.txt");
    let baseline: BTreeSet<String> = baseline_text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let regressed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| baseline.contains(&c.name) && c.status != Status::Pass)
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect();
    let missing: Vec<&String> = baseline
        .iter()
        .filter(|n| !report.cases.iter().any(|c| &c.name == *n))
        .collect();
    assert!(
        regressed.is_empty() && missing.is_empty(),
        "cases that passed no longer do:\n{}\nno longer found: {missing:?}",
        regressed.join("\n")
    );
    let gained = now.difference(&baseline).count();
    if gained > 0 {
        println!("{gained} case(s) pass that rest-baseline.txt does not list yet: rerun with BROOK_QTT_UPDATE_BASELINE=1");
    }
}
