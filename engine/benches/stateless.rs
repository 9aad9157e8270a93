//! Throughput of the stateless path on one core: JSON records decoded into Arrow batches,
//! filtered, projected and encoded back to JSON, as a persistent query's task does between
//! the consumer and the producer.
//!
//!     cargo bench -p brook-engine --bench stateless [-- RECORDS [BATCH]]

mod plans;

use brook_engine::dataflow::Operators;
use brook_engine::formats::FormatContext;
use brook_engine::pipeline::InputRecord;
use brook_engine::sink::SinkWriter;
use std::time::Instant;

fn main() {
    let records = plans::argument(0, 1_000_000);
    let batch = plans::argument(1, 1_000);

    let script =
        "CREATE STREAM orders (k STRING KEY, id BIGINT, amount DOUBLE, name STRING, tier STRING)
                    WITH (kafka_topic='orders', value_format='JSON');
                  CREATE STREAM big AS SELECT k, id, amount * 2 AS doubled, name + '!' AS shout
                    FROM orders WHERE amount > 50 AND tier IN ('gold', 'silver');";
    let (plan, sink) = plans::plan(script);
    let formats = FormatContext::default();
    let operators = Operators::new(plan, &formats);
    let writer = SinkWriter::new(operators.projection(), &sink, &formats);
    let mut store = brook_state::Store::memory();

    let tiers = ["gold", "silver", "bronze"];
    let input: Vec<InputRecord> = (0..records)
        .map(|i| InputRecord {
            headers: vec![],
            topic: "orders".into(),
            partition: 0,
            offset: i as i64,
            timestamp: i as i64,
            key: Some(format!("order-{i}").into_bytes()),
            value: Some(
                format!(
                    r#"{{"ID":{i},"AMOUNT":{}.5,"NAME":"customer {}","TIER":"{}"}}"#,
                    i % 100,
                    i % 1000,
                    tiers[i % 3]
                )
                .into_bytes(),
            ),
        })
        .collect();

    let start = Instant::now();
    let mut written = 0usize;
    let mut errors = Vec::new();
    for chunk in input.chunks(batch) {
        let output = operators
            .process(chunk, &mut store, &mut errors)
            .expect("process");
        written += writer
            .encode(operators.projection(), &output, &mut errors)
            .len();
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert!(errors.is_empty(), "{} records failed", errors.len());
    println!(
        "stateless JSON filter+project: {records} records in batches of {batch}, {written} written, {:.2}s, {:.0} records/s on one core",
        elapsed,
        records as f64 / elapsed
    );
}
