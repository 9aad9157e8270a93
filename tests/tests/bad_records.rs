//! Malformed records between good ones: the good ones come out, the bad ones are in the
//! processing log with reasons, and the query keeps running.

use brook_tests::{broker, recent_timestamp, unique, wait_for, BrookRun};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn malformed_records_go_to_the_processing_log_and_the_query_keeps_running() {
    let b = broker();
    let input = unique("readings");
    let output = unique("CLEAN");
    let service = format!("{}_", unique("svc"));
    b.create_topic(&input, 1);
    let base = recent_timestamp();
    let good = |i: i32| {
        (
            Some(i.to_be_bytes().to_vec()),
            Some(
                json!({"sensor": format!("s{i}"), "temp": i})
                    .to_string()
                    .into_bytes(),
            ),
            base + i as i64,
        )
    };
    let records = vec![
        good(1),
        (
            Some(2i32.to_be_bytes().to_vec()),
            Some(b"{not json".to_vec()),
            base + 2,
        ),
        good(3),
        (
            Some(4i32.to_be_bytes().to_vec()),
            Some(br#"{"sensor": "s4", "temp": "hot"}"#.to_vec()),
            base + 4,
        ),
        (
            Some(vec![0, 5]),
            Some(json!({"sensor": "s5", "temp": 5}).to_string().into_bytes()),
            base + 5,
        ),
        good(6),
    ];
    b.produce(&input, &records);
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM readings (id INT KEY, sensor STRING, temp INT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM clean WITH (kafka_topic = '{output}') AS SELECT id, sensor, temp * 2 AS t2 FROM readings;"
    );
    let mut run = BrookRun::start(
        "bad",
        &sql,
        &[
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &service,
        ],
    );
    let out = wait_for(Duration::from_secs(60), || {
        let got = b.read_topic(&output, 3, Duration::from_secs(2));
        (got.len() >= 3).then_some(got)
    })
    .unwrap_or_else(|| panic!("good records missing; stderr:\n{}", run.stderr()));
    let sensors: Vec<Value> = out
        .iter()
        .map(|r| r.value_json()["SENSOR"].clone())
        .collect();
    assert_eq!(sensors, vec![json!("s1"), json!("s3"), json!("s6")]);
    assert_eq!(out[0].key.as_deref(), Some(&1i32.to_be_bytes()[..]));

    let log_topic = format!("{service}ksql_processing_log");
    let log = b.read_topic(&log_topic, 3, Duration::from_secs(30));
    assert_eq!(log.len(), 3, "one processing log entry per bad record");
    let entries: Vec<Value> = log.iter().map(|r| r.value_json()).collect();
    let mut offsets = Vec::new();
    for e in &entries {
        assert_eq!(e["level"], "ERROR");
        let err = &e["message"]["deserializationError"];
        assert_eq!(err["topic"], json!(input));
        assert_eq!(err["partition"], json!(0));
        assert!(
            err["errorMessage"].as_str().is_some_and(|m| !m.is_empty()),
            "{e}"
        );
        offsets.push((
            err["offset"].as_i64().unwrap_or(-1),
            err["target"].as_str().unwrap_or("").to_string(),
        ));
    }
    offsets.sort();
    assert_eq!(
        offsets,
        vec![
            (1, "value".to_string()),
            (3, "value".to_string()),
            (4, "key".to_string())
        ]
    );
    assert!(
        entries[0]["message"]["deserializationError"]["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("JSON")
    );
    assert!(
        run.stderr().contains("processing error"),
        "the errors are logged too"
    );

    // Still running: new good records come through.
    assert!(run.is_running());
    b.produce(&input, &[good(7)]);
    let more = wait_for(Duration::from_secs(30), || {
        let got = b.read_topic(&output, 4, Duration::from_secs(2));
        (got.len() >= 4).then_some(got)
    });
    assert!(
        more.is_some(),
        "the query stopped after bad records; stderr:\n{}",
        run.stderr()
    );
    assert!(run.terminate().success());
}
