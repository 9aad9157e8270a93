//! Throughput of a tumbling-window COUNT/SUM on one core: JSON records decoded, grouped by
//! key, aggregated in a RocksDB store (flushed after every batch, as a task does before it
//! commits) and the updated rows encoded, for a given number of distinct keys.
//!
//!     cargo bench -p brook-engine --bench aggregation [-- RECORDS KEYS [BATCH]]

mod plans;

use brook_engine::dataflow::Operators;
use brook_engine::formats::FormatContext;
use brook_engine::pipeline::InputRecord;
use brook_engine::sink::SinkWriter;
use std::time::Instant;

fn main() {
    let records = plans::argument(0, 1_000_000);
    let keys = plans::argument(1, 1_000).max(1);
    let batch = plans::argument(2, 1_000).max(1);

    let script = "CREATE STREAM amounts (k STRING KEY, amount BIGINT)
                    WITH (kafka_topic='amounts', value_format='JSON');
                  CREATE TABLE totals AS SELECT k, COUNT(*) AS cnt, SUM(amount) AS total
                    FROM amounts WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k;";
    let (plan, sink) = plans::plan(script);
    let formats = FormatContext::default();
    let operators = Operators::new(plan, &formats);
    let writer = SinkWriter::new(operators.projection(), &sink, &formats);
    let dir = std::env::temp_dir().join(format!("brook-bench-{}", std::process::id()));
    let mut store = brook_state::Store::open(&dir).expect("store");

    let input: Vec<InputRecord> = (0..records)
        .map(|i| InputRecord {
            headers: vec![],
            topic: "amounts".into(),
            partition: 0,
            offset: i as i64,
            // Ten records a millisecond: every key sees several windows.
            timestamp: (i / 10) as i64,
            key: Some(format!("key-{}", i % keys).into_bytes()),
            value: Some(format!(r#"{{"AMOUNT":{}}}"#, i % 100).into_bytes()),
        })
        .collect();

    let start = Instant::now();
    let mut written = 0usize;
    let mut errors = Vec::new();
    for chunk in input.chunks(batch) {
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
    println!(
        "tumbling COUNT/SUM: {records} records, {keys} keys, batches of {batch}, {written} updates, {:.2}s, {:.0} records/s on one core",
        elapsed,
        records as f64 / elapsed
    );
}
