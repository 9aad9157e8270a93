//! Cases Brook keeps for what ksqlDB's reference documents and the shared corpus does not
//! test (`qtt/reference/`): every one must pass, with batches of one record and of a
//! thousand.

use brook_qtt::ratchet::corpus_cases;
use brook_qtt::{run_cases, Options, Report, Status};
use std::path::PathBuf;

#[test]
fn every_reference_case_passes() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cases = corpus_cases(&here.join("reference"));
    for batch_size in [1, 1000] {
        let report = run_cases(
            &cases,
            &Options {
                batch_size,
                rest: false,
                kafka: None,
            },
        );
        let failed = failures(&report);
        assert!(
            failed.is_empty(),
            "batch size {batch_size}:\n{}",
            failed.join("\n")
        );
    }
}

/// The REST cases Brook keeps likewise (`qtt/reference-rest/`): pull queries and the other
/// answers of the REST endpoint that the shared REST corpus does not test.
#[test]
fn every_rest_reference_case_passes() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cases = corpus_cases(&here.join("reference-rest"));
    let report = run_cases(
        &cases,
        &Options {
            batch_size: 1,
            rest: true,
            kafka: None,
        },
    );
    let failed = failures(&report);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(
        !report.cases.is_empty(),
        "no REST reference cases were found"
    );
}

/// Each case that did not pass, with its file and why.
fn failures(report: &Report) -> Vec<String> {
    report
        .cases
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| format!("{} ({}): {}", c.name, c.file, c.reason))
        .collect()
}
