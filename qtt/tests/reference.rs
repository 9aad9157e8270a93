//! Cases Brook keeps for what ksqlDB's reference documents and the shared corpus does not
//! test (`qtt/reference/`): every one must pass, with batches of one record and of a
//! thousand.

use brook_qtt::ratchet::corpus_cases;
use brook_qtt::{run_cases, Options, Status};
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
        let failed: Vec<String> = report
            .cases
            .iter()
            .filter(|c| c.status != Status::Pass)
            .map(|c| format!("{} ({}): {}", c.name, c.file, c.reason))
            .collect();
        assert!(
            failed.is_empty(),
            "batch size {batch_size}:\n{}",
            failed.join("\n")
        );
    }
}
