//! The supervisor on a real broker: a query whose sink topic is deleted under it goes to
//! ERROR with the reason while another query of the process keeps running; `brook run`
//! exits non-zero when every query it runs has failed; the query endpoints refuse
//! statements that would change the service.

use brook_tests::{broker, free_port, recent_timestamp, unique, wait_for, BrookRun, Http};
use serde_json::{json, Value};
use std::time::Duration;

fn records(from: i64, to: i64) -> Vec<brook_tests::Input> {
    let base = recent_timestamp();
    (from..to)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(json!({"n": i}).to_string().into_bytes()),
                base + i,
            )
        })
        .collect()
}

/// A server of a service of its own on the test broker, and a client of it.
fn serve(name: &str) -> (BrookRun, Http) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = std::env::temp_dir().join(unique("brook-state"));
    let server = BrookRun::serve(
        name,
        &broker().bootstrap,
        &listen,
        &unique("svc"),
        &state.display().to_string(),
    );
    (server, Http::new(port))
}

/// The query writing `sink`, as SHOW QUERIES lists it.
fn query_of(http: &Http, sink: &str) -> Option<Value> {
    let (_, answer) = http.ksql("SHOW QUERIES;");
    answer[0]["queries"]
        .as_array()?
        .iter()
        .find(|q| q["sinks"][0].as_str() == Some(sink))
        .cloned()
}

#[test]
fn a_query_whose_sink_is_deleted_fails_visibly_while_another_runs() {
    let b = broker();
    let (left_in, right_in) = (unique("left_in"), unique("right_in"));
    let (left_out, right_out) = (unique("left_out"), unique("right_out"));
    b.create_topic(&left_in, 1);
    b.create_topic(&right_in, 1);
    let (server, http) = serve("sink-deleted");
    let (status, answer) = http.ksql(&format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'ksql.query.retry.backoff.initial.ms' = '60000';
         CREATE STREAM left_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{left_in}', value_format = 'JSON');
         CREATE STREAM right_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{right_in}', value_format = 'JSON');
         CREATE STREAM left_out WITH (kafka_topic = '{left_out}') AS SELECT k, n FROM left_in;
         CREATE STREAM right_out WITH (kafka_topic = '{right_out}') AS SELECT k, n FROM right_in;"
    ));
    assert_eq!(status, 200, "{answer}");
    b.produce(&left_in, &records(0, 10));
    b.produce(&right_in, &records(0, 10));
    assert_eq!(
        b.read_topic(&left_out, 10, Duration::from_secs(60)).len(),
        10
    );
    assert_eq!(
        b.read_topic(&right_out, 10, Duration::from_secs(60)).len(),
        10
    );

    b.delete_topic(&left_out);
    b.produce(&left_in, &records(10, 20));
    b.produce(&right_in, &records(10, 20));
    let failed = wait_for(Duration::from_secs(120), || {
        query_of(&http, "LEFT_OUT").filter(|q| q["state"] == "ERROR")
    });
    let failed = failed.unwrap_or_else(|| {
        panic!(
            "the query never showed ERROR: {:?}\nstderr:\n{}",
            query_of(&http, "LEFT_OUT"),
            server.stderr()
        )
    });
    // The other query is untouched: running, and its output complete.
    assert_eq!(
        query_of(&http, "RIGHT_OUT").map(|q| q["state"].clone()),
        Some(json!("RUNNING"))
    );
    assert_eq!(
        b.read_topic(&right_out, 20, Duration::from_secs(60)).len(),
        20
    );
    // The broker did not bring the deleted topic back: Brook creates the topics it writes.
    assert_eq!(b.partitions(&left_out), None);

    // EXPLAIN says why, and when.
    let id = failed["id"].as_str().expect("query id").to_string();
    let (status, explained) = http.ksql(&format!("EXPLAIN {id};"));
    assert_eq!(status, 200, "{explained}");
    let description = &explained[0]["queryDescription"];
    assert_eq!(description["state"], "ERROR");
    let errors = description["queryErrors"].as_array().expect("queryErrors");
    let last = errors.last().expect("an error");
    let message = last["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains(&left_out), "{message}");
    assert!(last["timestamp"].as_i64().unwrap_or(0) > recent_timestamp());

    // The command that started it is in ERROR too, with the query's failure; the other
    // command still succeeded.
    let (status, body) = http
        .get("/status/stream/LEFT_OUT/create")
        .expect("an answer from /status");
    assert_eq!(status, 200, "{body}");
    let command: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(command["status"], "ERROR", "{command}");
    let message = command["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&id) && message.contains(&left_out),
        "{message}"
    );
    let (_, body) = http.get("/status").expect("an answer from /status");
    let all: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        all["commandStatuses"]["stream/LEFT_OUT/create"], "ERROR",
        "{all}"
    );
    assert_eq!(
        all["commandStatuses"]["stream/RIGHT_OUT/create"], "SUCCESS",
        "{all}"
    );
}

#[test]
fn brook_run_exits_when_every_query_has_failed() {
    let b = broker();
    let input = unique("only_in");
    let output = unique("only_out");
    b.create_topic(&input, 1);
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM only_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM only_out WITH (kafka_topic = '{output}') AS SELECT k, n FROM only_in;"
    );
    let service = unique("svc");
    let run = BrookRun::start(
        "run-fails",
        &sql,
        &[
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &service,
        ],
    );
    b.produce(&input, &records(0, 5));
    assert_eq!(b.read_topic(&output, 5, Duration::from_secs(60)).len(), 5);
    b.delete_topic(&output);
    b.produce(&input, &records(5, 10));
    let (status, _, stderr) = run.wait(Duration::from_secs(120));
    assert!(!status.success(), "brook run succeeded; stderr:\n{stderr}");
    assert!(
        stderr.contains("query CSAS_ONLY_OUT_") && stderr.contains(&output),
        "the reason is not named; stderr:\n{stderr}"
    );
}

#[test]
fn query_endpoints_run_queries_only() {
    let b = broker();
    let input = unique("kept");
    b.create_topic(&input, 1);
    let (_server, http) = serve("query-endpoints");
    let (status, answer) = http.ksql(&format!(
        "CREATE STREAM kept (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');"
    ));
    assert_eq!(status, 200, "{answer}");
    let drop = "DROP STREAM kept DELETE TOPIC;";
    for (path, body) in [
        ("/query-stream", json!({"sql": drop, "properties": {}})),
        ("/query", json!({"ksql": drop, "streamsProperties": {}})),
    ] {
        let (status, text) = http.post(path, &body.to_string());
        assert_eq!(status, 400, "{path}: {text}");
        let error: Value = serde_json::from_str(&text).expect("JSON error");
        assert_eq!(error["@type"], "statement_error", "{path}: {text}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("DropStream"),
            "{path}: {text}"
        );
    }
    let (_, listed) = http.ksql("SHOW STREAMS;");
    let names: Vec<&str> = listed[0]["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"KEPT"), "{listed}");
    assert_eq!(b.partitions(&input), Some(1), "the topic is still there");
}

/// A table written with a partitioner that is not Kafka's default: the join counts the
/// records away from their key's partition, says so once with the fix, and DESCRIBE
/// EXTENDED shows the count.
#[test]
fn a_join_counts_records_away_from_their_key_partition() {
    let b = broker();
    let users = unique("rr_users");
    let trades = unique("rr_trades");
    b.create_topic(&users, 4);
    b.create_topic(&trades, 4);
    // Round robin, as a producer without the Java partitioner might write them.
    let rows: Vec<(i32, Vec<u8>, Vec<u8>)> = (0..100)
        .map(|u| {
            (
                u % 4,
                format!("u{u}").into_bytes(),
                json!({"name": format!("n{u}")}).to_string().into_bytes(),
            )
        })
        .collect();
    let misplaced = rows
        .iter()
        .filter(|(p, key, _)| brook_tests::murmur2_partition(key, 4) != *p)
        .count();
    assert!(misplaced > 0);
    b.produce_to_partitions(&users, &rows);
    let (server, http) = serve("misplaced");
    let output = unique("rr_enriched");
    let (status, answer) = http.ksql(&format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic = '{users}', value_format = 'JSON');
         CREATE STREAM trades (user_id STRING KEY, amount BIGINT) WITH (kafka_topic = '{trades}', value_format = 'JSON');
         CREATE STREAM enriched WITH (kafka_topic = '{output}') AS
           SELECT t.user_id AS user_id, t.amount AS amount, u.name AS name
           FROM trades t LEFT JOIN users u ON t.user_id = u.id;"
    ));
    assert_eq!(status, 200, "{answer}");
    let base = recent_timestamp();
    let feed: Vec<_> = (0..100)
        .map(|u| {
            (
                Some(format!("u{u}").into_bytes()),
                Some(json!({"amount": u}).to_string().into_bytes()),
                base + u,
            )
        })
        .collect();
    b.produce(&trades, &feed);
    assert_eq!(
        b.read_topic(&output, 100, Duration::from_secs(60)).len(),
        100
    );
    let stats = wait_for(Duration::from_secs(30), || {
        let (_, described) = http.ksql("DESCRIBE trades EXTENDED;");
        let stats = described[0]["sourceDescription"]["errorStats"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        stats
            .contains(&format!("misplaced-records:{misplaced:>10}"))
            .then_some(stats)
    });
    assert!(
        stats.is_some(),
        "DESCRIBE EXTENDED does not count {misplaced} misplaced records; stderr:\n{}",
        server.stderr()
    );
    let warnings = server
        .stderr()
        .matches("partitioner=murmur2_random")
        .count();
    assert_eq!(
        warnings,
        1,
        "the fix is said once; stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn a_restore_reports_its_progress_in_the_querys_status() {
    let b = broker();
    let input = unique("restore_in");
    b.create_topic(&input, 2);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    let start = || {
        BrookRun::serve(
            "restore",
            &b.bootstrap,
            &listen,
            &service,
            &state.display().to_string(),
        )
    };
    let server = start();
    let http = Http::new(port);
    let (status, answer) = http.ksql(&format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'cache.max.bytes.buffering' = '0';
         CREATE STREAM restore_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE restore_counts AS SELECT k, COUNT(*) AS c FROM restore_in GROUP BY k;"
    ));
    assert_eq!(status, 200, "{answer}");
    b.produce(&input, &records(0, 2000));
    let query = wait_for(Duration::from_secs(60), || {
        let q = query_of(&http, "RESTORE_COUNTS")?;
        q["id"].as_str().map(str::to_string)
    })
    .expect("the query runs");
    let changelog = wait_for(Duration::from_secs(60), || {
        b.topic_names()
            .into_iter()
            .find(|t| t.contains(query.as_str()) && t.ends_with("-changelog"))
    })
    .expect("the query's changelog");
    // Every record processed: the query's group has committed the end of its input (its
    // changelog writes are acknowledged before its offsets are committed).
    let ends: Vec<i64> = (0..2).map(|p| b.watermarks(&input, p).1).collect();
    let group = format!("_confluent-ksql-{service}query_{query}");
    let settled = wait_for(Duration::from_secs(60), || {
        (b.committed(&group, &input) == ends).then_some(())
    });
    assert!(settled.is_some(), "{group} did not commit {ends:?}");
    let at_stop: Vec<(i64, i64)> = (0..2).map(|p| b.watermarks(&changelog, p)).collect();
    server.terminate();

    // Without its local state, the restarted server restores both stores from the
    // changelog when records come for them, and EXPLAIN tells how far each came.
    std::fs::remove_dir_all(&state).expect("remove the state");
    let server = start();
    b.produce(&input, &records(2000, 2050));
    let restores = wait_for(Duration::from_secs(120), || {
        let (_, explained) = http.ksql(&format!("EXPLAIN {query};"));
        let restores = explained[0]["queryDescription"]["restores"]
            .as_array()?
            .clone();
        (restores.len() == 2 && restores.iter().all(|r| r["done"] == true)).then_some(restores)
    })
    .unwrap_or_else(|| panic!("no restores; stderr:\n{}", server.stderr()));
    for r in &restores {
        assert_eq!(r["changelog"], changelog.as_str(), "{r}");
        let partition = r["partition"].as_u64().expect("partition") as usize;
        let (low, high) = at_stop[partition];
        assert_eq!(r["toRestore"], high - low, "{r}");
        assert_eq!(r["restored"], high - low, "{r}");
    }
    assert!(server.terminate().success());
}
