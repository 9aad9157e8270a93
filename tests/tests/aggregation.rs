//! A windowed aggregation under `brook run` on a real broker: 100,000 records over 1,000
//! keys, with the process stopped and restarted mid-stream (cleanly, with its state
//! directory deleted, and killed with `kill -9`). The final table is checked against
//! aggregates computed here.

use brook_tests::{broker, recent_timestamp, unique, wait_for, BrookRun, Input};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const TOTAL: i64 = 100_000;
const KEYS: i64 = 1_000;
const WINDOW_MS: i64 = 60_000;

/// (key, window start) -> (count, sum)
type Table = BTreeMap<(String, i64), (i64, i64)>;

fn inputs() -> (Vec<Input>, Table) {
    // Whole windows, so that every record is within the grace period of the last one.
    let base = recent_timestamp() / WINDOW_MS * WINDOW_MS;
    let mut records = Vec::new();
    let mut expected = Table::new();
    for i in 0..TOTAL {
        let key = format!("k{}", i % KEYS);
        let amount = i % 7;
        let ts = base + i * 5;
        records.push((
            Some(key.clone().into_bytes()),
            Some(json!({"amount": amount}).to_string().into_bytes()),
            ts,
        ));
        let start = ts - ts.rem_euclid(WINDOW_MS);
        let e = expected.entry((key, start)).or_insert((0, 0));
        e.0 += 1;
        e.1 += amount;
    }
    (records, expected)
}

/// The table as the output topic holds it: the last value of each windowed key.
fn final_table(records: &[brook_tests::Record]) -> Table {
    let mut table = Table::new();
    for r in records {
        let key = r.key.clone().unwrap_or_default();
        let Some(split) = key.len().checked_sub(8) else {
            panic!("a windowed key has its window start: {key:?}");
        };
        let name = String::from_utf8_lossy(&key[..split]).into_owned();
        let start = i64::from_be_bytes(key[split..].try_into().expect("8 bytes"));
        let v = r.value_json();
        table.insert(
            (name, start),
            (
                v["CNT"].as_i64().unwrap_or(-1),
                v["TOTAL"].as_i64().unwrap_or(-1),
            ),
        );
    }
    table
}

fn sql(input: &str, output: &str, cache: u64) -> String {
    format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'max.poll.interval.ms' = '6000';
         SET 'session.timeout.ms' = '6000';
         SET 'heartbeat.interval.ms' = '1000';
         SET 'cache.max.bytes.buffering' = '{cache}';
         CREATE STREAM amounts (k STRING KEY, amount BIGINT)
           WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE totals WITH (kafka_topic = '{output}') AS
           SELECT k, COUNT(*) AS cnt, SUM(amount) AS total
           FROM amounts WINDOW TUMBLING (SIZE 1 MINUTE)
           GROUP BY k EMIT CHANGES;"
    )
}

fn args<'a>(b: &'a str, service: &'a str, state: &'a Path) -> Vec<String> {
    vec![
        "--bootstrap-servers".into(),
        b.into(),
        "--service-id".into(),
        service.into(),
        "--instance-id".into(),
        "aggregation-test".into(),
        "--state-dir".into(),
        state.display().to_string(),
    ]
}

/// Runs the first half, stops (cleanly or not), optionally deletes the state directory,
/// runs the second half, and returns the final table and how many updates were written.
fn run_in_two_halves(stop: fn(BrookRun), delete_state: bool, cache: u64) -> (Table, Table, usize) {
    let b = broker();
    let input = unique("amounts");
    let output = unique("TOTALS");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    b.create_topic(&input, 4);
    let (records, expected) = inputs();
    let sql = sql(&input, &output, cache);
    let args = args(&b.bootstrap, &service, &state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let half = records.len() / 2;
    b.produce(&input, &records[..half]);
    let mut run = BrookRun::start("aggregation", &sql, &args);
    run.wait_for_stdout(
        "Created query with ID CTAS_TOTALS_",
        Duration::from_secs(60),
    );
    // The windows the first half opens: all present means the query got that far.
    let first_windows: std::collections::BTreeSet<(String, i64)> = records[..half]
        .iter()
        .map(|(k, _, ts)| {
            let name = String::from_utf8_lossy(k.as_deref().unwrap_or_default()).into_owned();
            (name, ts - ts.rem_euclid(WINDOW_MS))
        })
        .collect();
    let first = wait_for(Duration::from_secs(300), || {
        let got = b.read_topic(&output, first_windows.len(), Duration::from_secs(2));
        let table = final_table(&got);
        first_windows
            .iter()
            .all(|k| table.contains_key(k))
            .then_some(())
    });
    assert!(
        first.is_some(),
        "the first half was not aggregated; stderr:\n{}",
        run.stderr()
    );
    stop(run);
    if delete_state {
        assert!(state.exists(), "the query kept no local state");
        std::fs::remove_dir_all(&state).expect("delete the state directory");
    }

    b.produce(&input, &records[half..]);
    let run = BrookRun::start("aggregation", &sql, &args);
    let done = wait_for(Duration::from_secs(300), || {
        let got = b.read_topic(&output, records.len(), Duration::from_secs(2));
        let table = final_table(&got);
        let complete = expected
            .iter()
            .all(|(k, (count, _))| table.get(k).is_some_and(|(c, _)| c >= count));
        complete.then_some((table, got.len()))
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    let (table, written) =
        done.unwrap_or_else(|| panic!("the second half was not aggregated; stderr:\n{stderr}"));
    (table, expected, written)
}

fn clean_stop(run: BrookRun) {
    assert!(run.terminate().success());
}

#[test]
fn windowed_count_and_sum_survive_a_clean_restart_exactly() {
    // Without the record cache, every record gives exactly one update.
    let (table, expected, written) = run_in_two_halves(clean_stop, false, 0);
    assert_eq!(table, expected);
    assert_eq!(
        written, TOTAL as usize,
        "one update per record, none repeated"
    );
}

#[test]
fn state_is_rebuilt_from_the_changelog_when_the_local_store_is_gone() {
    let (table, expected, _) = run_in_two_halves(clean_stop, true, 10_000_000);
    assert_eq!(table, expected);
}

#[test]
fn kill_9_mid_stream_leaves_no_window_missing_a_record() {
    let (table, expected, _) = run_in_two_halves(BrookRun::kill9, false, 10_000_000);
    // At-least-once: records processed again after the kill may be counted twice.
    for (key, (count, sum)) in &expected {
        let (c, s) = table[key];
        assert!(c >= *count && s >= *sum, "{key:?}: {c}/{s} < {count}/{sum}");
    }
}

#[test]
fn grouping_by_a_value_column_repartitions_rows_to_their_group() {
    let b = broker();
    let input = unique("sales");
    let output = unique("BY_REGION");
    b.create_topic(&input, 4);
    let base = recent_timestamp();
    let mut records = Vec::new();
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..20_000i64 {
        let region = format!("r{}", i % 13);
        let amount = i % 11;
        records.push((
            Some(format!("sale-{i}").into_bytes()),
            Some(
                json!({"region": region, "amount": amount})
                    .to_string()
                    .into_bytes(),
            ),
            base + i,
        ));
        let e = expected.entry(region).or_insert((0, 0));
        e.0 += 1;
        e.1 += amount;
    }
    b.produce(&input, &records);
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM sales (id STRING KEY, region STRING, amount BIGINT)
           WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE by_region WITH (kafka_topic = '{output}') AS
           SELECT region, COUNT(*) AS cnt, SUM(amount) AS total
           FROM sales GROUP BY region;"
    );
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    let args = [
        "--bootstrap-servers",
        b.bootstrap.as_str(),
        "--service-id",
        service.as_str(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
    ];
    let run = BrookRun::start("repartition", &sql, &args);
    let done = wait_for(Duration::from_secs(300), || {
        let got = b.read_topic(&output, expected.len(), Duration::from_secs(2));
        let mut table: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for r in &got {
            let v = r.value_json();
            table.insert(
                r.key_str(),
                (
                    v["CNT"].as_i64().unwrap_or(-1),
                    v["TOTAL"].as_i64().unwrap_or(-1),
                ),
            );
        }
        (table == expected).then_some(())
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    assert!(
        done.is_some(),
        "the per-region totals never matched; stderr:\n{stderr}"
    );
    let repartition =
        format!("_confluent-ksql-{service}query_CTAS_BY_REGION_1-Aggregate-GroupBy-repartition");
    assert_eq!(b.partitions(&repartition), Some(4), "the repartition topic");
}

#[test]
fn a_table_aggregated_by_a_value_column_follows_updates_and_deletes() {
    let b = broker();
    let input = unique("users");
    let output = unique("PER_REGION");
    b.create_topic(&input, 4);
    let base = recent_timestamp();
    let regions = ["north", "south", "east", "west", "center"];
    // Users join, then many move to another region or leave (a tombstone).
    let mut current: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..6_000i64 {
        let user = format!("u{}", i % 2_000);
        let ts = base + i;
        if i >= 4_000 && i % 7 == 0 {
            records.push((Some(user.clone().into_bytes()), None, ts));
            current.remove(&user);
            continue;
        }
        let region = regions[((i * 31) % 5) as usize].to_string();
        let score = i % 13;
        records.push((
            Some(user.clone().into_bytes()),
            Some(
                json!({"region": region, "score": score})
                    .to_string()
                    .into_bytes(),
            ),
            ts,
        ));
        current.insert(user, (region, score));
    }
    let mut expected: BTreeMap<String, (i64, i64)> =
        regions.iter().map(|r| (r.to_string(), (0, 0))).collect();
    for (region, score) in current.values() {
        let e = expected.entry(region.clone()).or_insert((0, 0));
        e.0 += 1;
        e.1 += score;
    }
    b.produce(&input, &records);
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE TABLE users (id STRING PRIMARY KEY, region STRING, score BIGINT)
           WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE per_region WITH (kafka_topic = '{output}') AS
           SELECT region, COUNT(*) AS cnt, SUM(score) AS total
           FROM users GROUP BY region;"
    );
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    let args = [
        "--bootstrap-servers",
        b.bootstrap.as_str(),
        "--service-id",
        service.as_str(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
    ];
    let run = BrookRun::start("table-aggregate", &sql, &args);
    let mut last = BTreeMap::new();
    let done = wait_for(Duration::from_secs(300), || {
        let got = b.read_topic(&output, expected.len(), Duration::from_secs(2));
        let mut table: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for r in &got {
            let v = r.value_json();
            table.insert(
                r.key_str(),
                (
                    v["CNT"].as_i64().unwrap_or(-1),
                    v["TOTAL"].as_i64().unwrap_or(-1),
                ),
            );
        }
        last = table.clone();
        (table == expected).then_some(())
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    assert!(
        done.is_some(),
        "per-region totals {last:?} never matched {expected:?}; stderr:\n{stderr}"
    );
}

#[test]
fn a_second_process_takes_over_partitions_with_their_state() {
    let b = broker();
    let input = unique("amounts");
    let output = unique("TOTALS");
    let service = unique("svc");
    b.create_topic(&input, 4);
    let (records, expected) = inputs();
    let half = records.len() / 2;
    let mut first_half = Table::new();
    for (k, v, ts) in &records[..half] {
        let name = String::from_utf8_lossy(k.as_deref().unwrap_or_default()).into_owned();
        let amount = serde_json::from_slice::<serde_json::Value>(v.as_deref().unwrap_or_default())
            .map(|v| v["amount"].as_i64().unwrap_or(0))
            .unwrap_or(0);
        let e = first_half
            .entry((name, ts - ts.rem_euclid(WINDOW_MS)))
            .or_insert((0, 0));
        e.0 += 1;
        e.1 += amount;
    }
    let sql = sql(&input, &output, 10_000_000);
    let state_a = std::env::temp_dir().join(unique("brook-state-a"));
    let state_b = std::env::temp_dir().join(unique("brook-state-b"));
    let args = |state: &Path, instance: &str| {
        vec![
            "--bootstrap-servers".to_string(),
            b.bootstrap.clone(),
            "--service-id".into(),
            service.clone(),
            "--instance-id".into(),
            instance.into(),
            "--state-dir".into(),
            state.display().to_string(),
        ]
    };
    let args_a = args(&state_a, "a");
    let args_b = args(&state_b, "b");
    let table_now = || final_table(&b.read_topic(&output, 1, Duration::from_secs(2)));

    // One process aggregates the first half alone.
    b.produce(&input, &records[..half]);
    let a = BrookRun::start(
        "scale-a",
        &sql,
        &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let first = wait_for(Duration::from_secs(300), || {
        (table_now() == first_half).then_some(())
    });
    assert!(first.is_some(), "first half; stderr:\n{}", a.stderr());

    // A second process joins: it gets some partitions, and their state from the changelog.
    let b_run = BrookRun::start(
        "scale-b",
        &sql,
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    std::thread::sleep(Duration::from_secs(10));
    b.produce(&input, &records[half..]);
    let done = wait_for(Duration::from_secs(300), || {
        (table_now() == expected).then_some(())
    });
    let (stderr_a, stderr_b) = (a.stderr(), b_run.stderr());
    assert!(b_run.terminate().success());
    assert!(a.terminate().success());
    let _ = std::fs::remove_dir_all(&state_a);
    let _ = std::fs::remove_dir_all(&state_b);
    let restored: usize = stderr_b
        .lines()
        .filter_map(|l| l.split("restored ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        restored > 0,
        "the second process restored no state:\n{stderr_b}"
    );
    assert!(
        done.is_some(),
        "totals differ after the second process joined;\nA:\n{stderr_a}\nB:\n{stderr_b}"
    );
}
