//! The REST conformance ratchet: every case named in `rest-baseline.txt` must still pass
//! when ksqlDB's REST test files run through a server's HTTP API. Set
//! BROOK_QTT_UPDATE_BASELINE=1 to rewrite the baseline with the cases passing now.

use brook_qtt::ratchet::{corpus_cases, hold_baseline};
use brook_qtt::{run_cases, Options};
use std::path::PathBuf;

#[test]
fn no_rest_baseline_case_regresses() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cases = corpus_cases(&here.join("../../shared/qtt/rest-query-validation-tests"));
    let report = run_cases(
        &cases,
        &Options {
            batch_size: 100,
            rest: true,
            kafka: None,
        },
    );
    println!("REST QTT: {}", report.totals());
    hold_baseline(&report, &here.join("rest-baseline.txt"));
}
