//! The conformance ratchet: every case named in `baseline.txt` must still pass, with
//! batches of one record and of a thousand. Set BROOK_QTT_UPDATE_BASELINE=1 to rewrite the
//! baseline with the cases passing now.

use brook_qtt::{load_cases, load_path, run_cases, Options, Report, Status};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/qtt/query-validation-tests")
}

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("baseline.txt")
}

fn run(batch_size: usize) -> Report {
    let dir = corpus();
    let files = load_path(&dir)
        .unwrap_or_else(|e| panic!("the QTT corpus is needed at {}: {e}", dir.display()));
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    let cases: Vec<_> = files
        .iter()
        .flat_map(|f| load_cases(f).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    run_cases(
        &cases,
        &Options {
            batch_size,
            rest: false,
        },
    )
}

fn passing(report: &Report) -> BTreeSet<String> {
    report
        .cases
        .iter()
        .filter(|c| c.status == Status::Pass)
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn no_baseline_case_regresses() {
    let small = run(1);
    let large = run(1000);
    println!("QTT with batch size 1: {}", small.totals());
    println!("QTT with batch size 1000: {}", large.totals());
    let now = passing(&small);
    assert_eq!(now, passing(&large), "batch size changed which cases pass");

    if std::env::var_os("BROOK_QTT_UPDATE_BASELINE").is_some() {
        let text: String = now.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(baseline_path(), text).expect("write baseline");
        return;
    }
    let baseline_text = std::fs::read_to_string(baseline_path()).expect("qtt/baseline.txt");
    let baseline: BTreeSet<String> = baseline_text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let regressed: Vec<_> = baseline.difference(&now).collect();
    let reasons: Vec<String> = small
        .cases
        .iter()
        .filter(|c| regressed.contains(&&c.name))
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect();
    assert!(
        regressed.is_empty(),
        "cases that passed no longer do:\n{}",
        reasons.join("\n")
    );
    let gained = now.difference(&baseline).count();
    if gained > 0 {
        println!("{gained} case(s) pass that baseline.txt does not list yet: rerun with BROOK_QTT_UPDATE_BASELINE=1");
    }
}
