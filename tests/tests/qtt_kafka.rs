//! The QTT sample on the Kafka runtime: `brook qtt --backend kafka` runs the cases of
//! `qtt/kafka-sample.txt` against a real broker (this test binary's own, since each case
//! starts by deleting every topic), and each must end as on the in-process driver: every
//! case of the sample passes there (it is drawn from `qtt/baseline.txt`), so every case
//! must pass here.

use brook_tests::{broker, run_brook};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn the_kafka_sample_ends_as_on_the_driver() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let sample = root.join("qtt/kafka-sample.txt");
    let names: Vec<String> = std::fs::read_to_string(&sample)
        .expect("the sample")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 200, "the sample has {} cases", names.len());
    let baseline: BTreeSet<String> = std::fs::read_to_string(root.join("qtt/baseline.txt"))
        .expect("the baseline")
        .lines()
        .map(str::to_string)
        .collect();
    let off_baseline: Vec<&String> = names.iter().filter(|n| !baseline.contains(*n)).collect();
    assert!(
        off_baseline.is_empty(),
        "sample cases the driver does not pass: {off_baseline:?}"
    );
    let report = std::env::temp_dir().join(brook_tests::unique("qtt-kafka-report"));
    let corpus = root.join("../shared/qtt/query-validation-tests");
    let (ok, stdout, stderr) = run_brook(&[
        "qtt".as_ref(),
        corpus.as_os_str(),
        "--backend".as_ref(),
        "kafka".as_ref(),
        "--bootstrap-servers".as_ref(),
        broker().bootstrap.as_ref(),
        "--cases".as_ref(),
        sample.as_os_str(),
        "--json".as_ref(),
        report.as_os_str(),
    ]);
    assert!(ok, "brook qtt failed:\n{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report")).expect("JSON");
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), names.len(), "{stdout}");
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| c["status"] != "pass")
        .map(|c| format!("{}: {}", c["name"], c["reason"]))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases ended otherwise on Kafka:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    println!("QTT on Kafka: {}", stdout.lines().last().unwrap_or(""));
}
