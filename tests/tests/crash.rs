//! `kill -9` in the middle of a stream: after a restart, every expected output is there.

use brook_tests::{broker, recent_timestamp, unique, wait_for, BrookRun};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn kill_9_mid_stream_loses_nothing() {
    let b = broker();
    let input = unique("payments");
    let output = unique("LARGE");
    let service = unique("svc");
    b.create_topic(&input, 3);
    const TOTAL: i64 = 30_000;
    let base = recent_timestamp();
    let records: Vec<_> = (0..TOTAL)
        .map(|i| {
            (
                Some(format!("p{i}").into_bytes()),
                Some(json!({"n": i}).to_string().into_bytes()),
                base + i,
            )
        })
        .collect();
    let expected: BTreeSet<(String, i64)> = (0..TOTAL)
        .filter(|i| i % 3 != 0)
        .map(|i| (format!("p{i}"), i * 10))
        .collect();

    // The killed process never leaves its consumer groups. With a stable instance id the
    // restarted process takes its place at once; short timeouts bound any wait for it.
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'max.poll.interval.ms' = '6000';
         SET 'session.timeout.ms' = '6000';
         SET 'heartbeat.interval.ms' = '1000';
         CREATE STREAM payments (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM large WITH (kafka_topic = '{output}') AS
           SELECT k, n * 10 AS tenfold FROM payments WHERE n % 3 <> 0;"
    );
    let args = [
        "--bootstrap-servers",
        b.bootstrap.as_str(),
        "--service-id",
        service.as_str(),
        "--instance-id",
        "crash-test",
    ];
    let run = BrookRun::start("crash", &sql, &args);

    // The first records are there from the start; the rest are fed while it runs, and the
    // process is killed while the feed is still going: what comes after the kill cannot
    // have been processed, so the kill is mid-stream.
    b.produce(&input, &records[..2_000]);
    let some_output = wait_for(Duration::from_secs(60), || {
        (!b.read_topic(&output, 1, Duration::from_millis(500))
            .is_empty())
        .then_some(())
    });
    assert!(
        some_output.is_some(),
        "no output before the kill; stderr:\n{}",
        run.stderr()
    );
    let fed_all = Arc::new(AtomicBool::new(false));
    let feeder = {
        let topic = input.clone();
        let fed_all = fed_all.clone();
        let chunks: Vec<Vec<_>> = records[2_000..].chunks(1_000).map(|c| c.to_vec()).collect();
        std::thread::spawn(move || {
            for chunk in chunks {
                broker().produce(&topic, &chunk);
                std::thread::sleep(Duration::from_millis(100));
            }
            fed_all.store(true, Ordering::SeqCst);
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    run.kill9();
    assert!(
        !fed_all.load(Ordering::SeqCst),
        "the feed ended before the kill; the test proves nothing"
    );
    feeder.join().expect("feeder");

    let run = BrookRun::start("crash", &sql, &args);
    let complete = wait_for(Duration::from_secs(120), || {
        let got = b.read_topic(&output, expected.len(), Duration::from_secs(2));
        let keys: BTreeSet<(String, i64)> = got
            .iter()
            .map(|r| {
                (
                    r.key_str(),
                    r.value_json()["TENFOLD"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        expected.is_subset(&keys).then_some(got.len())
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let written = complete
        .unwrap_or_else(|| panic!("outputs are missing after the restart; stderr:\n{stderr}"));
    assert!(written >= expected.len());
}
