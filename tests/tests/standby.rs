//! Standby replicas on a real broker: two processes of one service run a windowed
//! aggregate with `num.standby.replicas=1`, each running half of its tasks and keeping a
//! warm copy of the other half's stores. The first is killed with `kill -9`; the second
//! takes its tasks over from the warm copies, restoring only the changelog records the
//! copies had not reached (none, once they caught up), and the totals are exact (the
//! query runs exactly once; the copies read the changelog's committed records).

use brook_tests::{
    broker, free_port, metric_sample, now_millis, unique, wait_for, BrookRun, Http, Input,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const PARTITIONS: i32 = 4;
const GROUPS: i64 = 200;

/// Records `from..to`, keyed `g<i % GROUPS>`, all within one hour-long window.
fn records(window: i64, from: i64, to: i64) -> Vec<Input> {
    (from..to)
        .map(|i| {
            (
                Some(format!("g{}", i % GROUPS).into_bytes()),
                Some(json!({"n": i}).to_string().into_bytes()),
                window + i / 100,
            )
        })
        .collect()
}

/// Each group's last (count, sum) in the output.
fn totals(b: &brook_tests::Broker, topic: &str, at_least: usize) -> BTreeMap<Vec<u8>, (i64, i64)> {
    let mut last = BTreeMap::new();
    for r in b.read_committed(topic, at_least, Duration::from_secs(5)) {
        let v = r.value_json();
        last.insert(
            r.key.clone().unwrap_or_default(),
            (v["C"].as_i64().unwrap_or(0), v["S"].as_i64().unwrap_or(0)),
        );
    }
    last
}

/// What a complete output of records `0..n` holds per group: its count and sum.
fn expected(n: i64) -> Vec<(i64, i64)> {
    let mut per_group: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for i in 0..n {
        let e = per_group.entry(i % GROUPS).or_default();
        e.0 += 1;
        e.1 += i;
    }
    let mut all: Vec<_> = per_group.into_values().collect();
    all.sort();
    all
}

fn complete(b: &brook_tests::Broker, topic: &str, n: i64) -> bool {
    let mut got: Vec<_> = totals(b, topic, n as usize).into_values().collect();
    got.sort();
    got == expected(n)
}

#[test]
fn a_standby_copy_takes_over_a_killed_process_tasks_without_a_full_restore() {
    let b = broker();
    let (input, output) = (unique("standby_in"), unique("STANDBY_OUT"));
    b.create_topic(&input, PARTITIONS);
    // The start of the hour before the last: every record falls in that one window.
    let window = (now_millis() - 3_600_000) / 3_600_000 * 3_600_000;
    let service = unique("standby_svc");
    // Exactly once, so that a batch caught in the takeover's rebalance is not counted
    // twice and the totals are exact. Static members (each process has an instance id),
    // with short timeouts that bound any rebalance.
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'num.standby.replicas' = '1';
         SET 'processing.guarantee' = 'exactly_once_v2';
         SET 'cache.max.bytes.buffering' = '0';
         SET 'max.poll.interval.ms' = '10000';
         SET 'session.timeout.ms' = '6000';
         SET 'heartbeat.interval.ms' = '1000';
         CREATE STREAM src (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE standby_out WITH (kafka_topic = '{output}') AS
           SELECT k, COUNT(*) AS c, SUM(n) AS s FROM src
           WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY k;"
    );
    let start = |name: &str, instance: &str| {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let state = std::env::temp_dir().join(unique("standby_state"));
        let run = BrookRun::start(
            name,
            &sql,
            &[
                "--bootstrap-servers",
                &b.bootstrap,
                "--service-id",
                &service,
                "--state-dir",
                &state.display().to_string(),
                "--metrics-listen",
                &listen,
                "--instance-id",
                instance,
            ],
        );
        (run, Http::new(port))
    };
    let scrape = |http: &Http| http.get("/metrics").map(|(_, text)| text);

    b.produce(&input, &records(window, 0, 20_000));
    let first_instance = unique("standby_first");
    let (first, first_http) = start("standby-first", &first_instance);
    assert!(
        wait_for(Duration::from_secs(120), || complete(b, &output, 20_000)
            .then_some(()))
        .is_some(),
        "the first process did not aggregate the first records; stderr:\n{}",
        first.stderr()
    );

    // The second process takes half of the tasks; each opens its tasks' stores when
    // their first records come, and keeps copies of the other half.
    let (second, second_http) = start("standby-second", &unique("standby_second"));
    let copies = |http: &Http| {
        scrape(http).and_then(|t| metric_sample(&t, "brook_query_standby_partitions", &[]))
    };
    let mut produced = 20_000;
    let mut split = false;
    while !split && produced < 40_000 {
        b.produce(&input, &records(window, produced, produced + 2_000));
        produced += 2_000;
        split = wait_for(Duration::from_secs(20), || {
            (copies(&first_http) == Some(2.0) && copies(&second_http) == Some(2.0)).then_some(())
        })
        .is_some();
    }
    assert!(
        split,
        "the processes did not split the tasks (copies: {:?} and {:?}); first:\n{}\nsecond:\n{}",
        copies(&first_http),
        copies(&second_http),
        first.stderr(),
        second.stderr()
    );
    b.produce(&input, &records(window, produced, 40_000));
    assert!(
        wait_for(Duration::from_secs(120), || complete(b, &output, 40_000)
            .then_some(()))
        .is_some(),
        "the two processes did not aggregate the second records"
    );
    // Everything read is committed, and the second process's copies have caught up.
    let caught_up = wait_for(Duration::from_secs(60), || {
        let a = scrape(&first_http)?;
        let b_text = scrape(&second_http)?;
        let lag = metric_sample(&a, "brook_consumer_lag_records", &[])?;
        let standby_lag = metric_sample(&b_text, "brook_query_standby_lag_records", &[])?;
        (lag == 0.0 && standby_lag == 0.0).then_some(b_text)
    })
    .unwrap_or_else(|| panic!("the copies did not catch up; second:\n{}", second.stderr()));
    let restored_before =
        metric_sample(&caught_up, "brook_query_restored_records_total", &[]).unwrap_or(0.0);
    let applied =
        metric_sample(&caught_up, "brook_query_standby_records_total", &[]).unwrap_or(0.0);
    // What a full restore of the first process's half would read: about half of the
    // changelog (each batch writes each key it changed once).
    let changelog = format!(
        "_confluent-ksql-{service}query_CTAS_STANDBY_OUT_1-Aggregate-Aggregate-Materialize-changelog"
    );
    let changelog_records: i64 = (0..PARTITIONS).map(|p| b.watermarks(&changelog, p).1).sum();
    assert!(
        changelog_records >= 1_000,
        "the changelog has only {changelog_records} records"
    );
    assert!(
        applied >= changelog_records as f64 / 4.0,
        "the copies applied only {applied} of {changelog_records} changelog records"
    );

    first.kill9();
    // The dead member is removed as an operator removes a static member that died (the
    // test broker never expires one by itself).
    let group = format!("_confluent-ksql-{service}query_CTAS_STANDBY_OUT_1");
    b.remove_static_member(&group, &first_instance)
        .unwrap_or_else(|e| panic!("cannot remove the killed member: {e}"));
    b.produce(&input, &records(window, 40_000, 50_000));
    assert!(
        wait_for(Duration::from_secs(180), || complete(b, &output, 50_000)
            .then_some(()))
        .is_some(),
        "the second process did not take over; stderr:\n{}",
        second.stderr()
    );
    let after = scrape(&second_http).expect("metrics of the second process");
    let restored = metric_sample(&after, "brook_query_restored_records_total", &[]).unwrap_or(0.0)
        - restored_before;
    // Without the copies, taking the two tasks over restores their whole changelog
    // partitions (about half of `changelog_records`); with them, none, as they had
    // caught up.
    eprintln!(
        "changelog {changelog_records} records, copies applied {applied}, restored on takeover {restored}"
    );
    assert!(
        restored < changelog_records as f64 / 20.0,
        "taking over restored {restored} of {changelog_records} changelog records; stderr:\n{}",
        second.stderr()
    );
    assert!(second.terminate().success());
}
