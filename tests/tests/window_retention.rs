//! Bounded state: a windowed aggregate with `RETENTION 2 HOURS` fed 3 days of event time
//! keeps only the windows that can still change. Expired windows are deleted from the
//! task's store and tombstoned in its changelog, so what a restore rebuilds (the
//! changelog's latest value per key) is bounded by the live windows, whatever the
//! history; the changelog is also created to forget what is older than the retention.

use brook_tests::{broker, unique, wait_for, BrookRun};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const GROUPS: i64 = 10;
const EVERY_MS: i64 = 5 * 60 * 1000;
const DAYS: i64 = 3;

#[test]
fn windows_past_their_retention_leave_the_store_and_the_changelog() {
    let b = broker();
    let input = unique("readings");
    let output = unique("HOURLY");
    b.create_topic_with(&input, 2, &[("retention.ms", "-1")]);
    b.create_topic_with(&output, 2, &[("retention.ms", "-1")]);
    let now = brook_tests::now_millis();
    let hour = 3_600_000;
    // Three days of readings ending an hour ago, aligned to the hour.
    let start = (now - DAYS * 24 * hour) / hour * hour - hour;
    let steps = DAYS * 24 * hour / EVERY_MS;
    let records: Vec<_> = (0..steps)
        .flat_map(|i| {
            (0..GROUPS).map(move |g| {
                (
                    Some(format!("sensor{g}").into_bytes()),
                    Some(json!({"v": i}).to_string().into_bytes()),
                    start + i * EVERY_MS,
                )
            })
        })
        .collect();
    b.produce(&input, &records);
    let service = unique("svc");
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'cache.max.bytes.buffering' = '0';
         CREATE STREAM readings (k STRING KEY, v BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE hourly WITH (kafka_topic = '{output}') AS
           SELECT k, COUNT(*) AS c FROM readings
           WINDOW TUMBLING (SIZE 1 HOUR, RETENTION 2 HOURS, GRACE PERIOD 10 MINUTES)
           GROUP BY k;"
    );
    let run = BrookRun::start(
        "window-retention",
        &sql,
        &[
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &service,
        ],
    );
    // Every window is complete: twelve readings an hour per sensor.
    let total = records.len();
    let out = wait_for(Duration::from_secs(180), || {
        let out = b.read_topic(&output, total, Duration::from_secs(2));
        (out.len() >= total).then_some(out)
    })
    .unwrap_or_else(|| panic!("the output is incomplete; stderr:\n{}", run.stderr()));
    let mut last: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for r in &out {
        last.insert(
            r.key.clone().unwrap_or_default(),
            r.value_json()["C"].as_i64().unwrap_or(-1),
        );
    }
    assert_eq!(
        last.len() as i64,
        GROUPS * DAYS * 24,
        "one result per sensor and hour"
    );
    assert!(
        last.values().all(|c| *c == 12),
        "a window's count is not 12"
    );

    let changelog = b
        .topic_names()
        .into_iter()
        .find(|t| t.contains(&service) && t.ends_with("-Aggregate-Aggregate-Materialize-changelog"))
        .expect("the changelog topic");
    assert_eq!(
        b.topic_config(&changelog, "cleanup.policy").as_deref(),
        Some("compact,delete")
    );
    let retention: i64 = b
        .topic_config(&changelog, "retention.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    assert_eq!(
        retention,
        2 * hour + 24 * hour,
        "the windows' retention and a day"
    );

    // What a restore would rebuild: the changelog's latest value per key.
    let held: i64 = (0..2)
        .map(|p| {
            let (low, high) = b.watermarks(&changelog, p);
            high - low
        })
        .sum();
    let entries = b.read_topic(&changelog, held as usize, Duration::from_secs(30));
    let mut latest: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    for r in &entries {
        latest.insert(r.key.clone().unwrap_or_default(), r.value.is_some());
    }
    let live_windows = latest
        .iter()
        .filter(|(k, live)| **live && k.first() == Some(&0))
        .count() as i64;
    let tombstones = entries.iter().filter(|r| r.value.is_none()).count() as i64;
    // A partition's stream time is at most an hour past the last reading: the windows
    // within 2 hours of it, at most 3 per sensor.
    assert!(
        live_windows > 0 && live_windows <= GROUPS * 3,
        "{live_windows} windows live after {} hours of history",
        DAYS * 24
    );
    assert!(
        tombstones >= GROUPS * (DAYS * 24 - 3),
        "only {tombstones} tombstones in the changelog"
    );
    run.terminate();
}
