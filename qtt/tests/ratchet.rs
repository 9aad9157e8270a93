//! The conformance ratchet: every case named in `baseline.txt` must still pass, with
//! batches of one record and of a thousand. Set BROOK_QTT_UPDATE_BASELINE=1 to rewrite the
//! baseline with the cases passing now.

use brook_qtt::ratchet::{corpus_cases, hold_baseline, passing};
use brook_qtt::{run_cases, Options};
use std::path::PathBuf;

#[test]
fn no_baseline_case_regresses() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cases = corpus_cases(&here.join("../../shared/qtt/query-validation-tests"));
    let run = |batch_size| {
        run_cases(
            &cases,
            &Options {
                batch_size,
                rest: false,
                kafka: None,
            },
        )
    };
    let small = run(1);
    let large = run(1000);
    println!("QTT with batch size 1: {}", small.totals());
    println!("QTT with batch size 1000: {}", large.totals());
    assert_eq!(
        passing(&small),
        passing(&large),
        "batch size changed which cases pass"
    );
    hold_baseline(&small, &here.join("baseline.txt"));
}
