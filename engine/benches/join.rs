//! Throughput of a stream-table join on one core: a table of users loaded first, then
//! JSON trades decoded, each joined with its user's row from a RocksDB store (flushed
//! after every batch, as a task does before it commits) and the enriched rows encoded.
//! Only the trades are timed.
//!
//!     cargo bench -p brook-engine --bench join [-- TRADES USERS [BATCH]]

mod plans;

use brook_engine::dataflow::Operators;
use brook_engine::formats::FormatContext;
use brook_engine::pipeline::InputRecord;
use brook_engine::sink::SinkWriter;
use std::time::Instant;

fn main() {
    let trades = plans::argument(0, 1_000_000);
    let users = plans::argument(1, 10_000).max(1);
    let batch = plans::argument(2, 1_000).max(1);

    let script = "CREATE STREAM trades (user_id STRING KEY, trade_id BIGINT, amount BIGINT)
                    WITH (kafka_topic='trades', value_format='JSON');
                  CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, tier STRING)
                    WITH (kafka_topic='users', value_format='JSON');
                  CREATE STREAM enriched AS
                    SELECT t.user_id AS user_id, t.trade_id, t.amount, u.name, u.tier
                    FROM trades t LEFT JOIN users u ON t.user_id = u.user_id;";
    let (plan, sink) = plans::plan(script);
    let formats = FormatContext::default();
    let operators = Operators::new(plan, &formats);
    let writer = SinkWriter::new(operators.projection(), &sink, &formats);
    let dir = std::env::temp_dir().join(format!("brook-bench-{}", std::process::id()));
    let mut store = brook_state::Store::open(&dir).expect("store");

    let record = |topic: &str, offset: usize, key: String, value: String| InputRecord {
        headers: vec![],
        topic: topic.into(),
        partition: 0,
        offset: offset as i64,
        timestamp: offset as i64,
        key: Some(key.into_bytes()),
        value: Some(value.into_bytes()),
    };
    let table: Vec<InputRecord> = (0..users)
        .map(|u| {
            record(
                "users",
                u,
                format!("user-{u}"),
                format!(r#"{{"NAME":"user {u}","TIER":"silver"}}"#),
            )
        })
        .collect();
    let stream: Vec<InputRecord> = (0..trades)
        .map(|i| {
            record(
                "trades",
                i,
                format!("user-{}", (i * 7919) % users),
                format!(r#"{{"TRADE_ID":{i},"AMOUNT":{}}}"#, i % 1000),
            )
        })
        .collect();

    let mut errors = Vec::new();
    for chunk in table.chunks(batch) {
        operators
            .process(chunk, &mut store, &mut errors)
            .expect("load the table");
        store.flush(None).expect("flush");
    }
    let start = Instant::now();
    let mut written = 0usize;
    for chunk in stream.chunks(batch) {
        let output = operators
            .process(chunk, &mut store, &mut errors)
            .expect("process");
        store.flush(None).expect("flush");
        written += writer
            .encode(operators.projection(), &output, &mut errors)
            .len();
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(errors.is_empty(), "{} records failed", errors.len());
    assert_eq!(written, trades, "one enriched trade per trade");
    println!(
        "stream-table LEFT JOIN: {trades} trades, {users} users, batches of {batch}, {written} results, {:.2}s, {:.0} records/s on one core",
        elapsed,
        trades as f64 / elapsed
    );
}
