//! What the conformance ratchets (`qtt/tests/`) share: loading a corpus whole and holding
//! a report to a committed baseline of passing case names. Set BROOK_QTT_UPDATE_BASELINE=1
//! to rewrite a baseline with the cases passing now. These panic on failure: they are
//! test assertions.

use crate::{load_cases, load_path, Case, Report, Status};
use std::collections::BTreeSet;
use std::path::Path;

/// Every case of the corpus at `dir`; panics if the corpus is missing or empty.
pub fn corpus_cases(dir: &Path) -> Vec<Case> {
    let files =
        load_path(dir).unwrap_or_else(|e| panic!("the corpus is needed at {}: {e}", dir.display()));
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    files
        .iter()
        .flat_map(|f| load_cases(f).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// The names of the cases that pass.
pub fn passing(report: &Report) -> BTreeSet<String> {
    report
        .cases
        .iter()
        .filter(|c| c.status == Status::Pass)
        .map(|c| c.name.clone())
        .collect()
}

/// Fails if a case `baseline` lists no longer passes (or is no longer in the corpus);
/// with BROOK_QTT_UPDATE_BASELINE set, rewrites the baseline instead.
pub fn hold_baseline(report: &Report, baseline: &Path) {
    let now = passing(report);
    if std::env::var_os("BROOK_QTT_UPDATE_BASELINE").is_some() {
        let text: String = now.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(baseline, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", baseline.display()));
        return;
    }
    let text = std::fs::read_to_string(baseline)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", baseline.display()));
    let listed: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let regressed: Vec<String> = listed
        .difference(&now)
        .map(|name| match report.cases.iter().find(|c| &c.name == name) {
            Some(c) => format!("{name}: {}", c.reason),
            None => format!("{name}: no longer in the corpus"),
        })
        .collect();
    assert!(
        regressed.is_empty(),
        "cases that passed no longer do:\n{}",
        regressed.join("\n")
    );
    let gained = now.difference(&listed).count();
    if gained > 0 {
        println!(
            "{gained} case(s) pass that {} does not list yet: rerun with BROOK_QTT_UPDATE_BASELINE=1",
            baseline.display()
        );
    }
}
