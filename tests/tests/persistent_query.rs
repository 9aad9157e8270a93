//! A persistent query under `brook run` on a real broker: exact output for 10,000 records
//! over 4 partitions, and a clean stop.

use brook_tests::{broker, murmur2_partition, recent_timestamp, unique, wait_for, BrookRun};
use serde_json::json;
use std::time::Duration;

#[test]
fn csas_filters_and_projects_10000_records_over_4_partitions() {
    let b = broker();
    let input = unique("orders");
    let output = unique("BIG_ORDERS");
    b.create_topic(&input, 4);
    let tiers = ["gold", "silver", "bronze"];
    let mut records = Vec::new();
    let mut expected = Vec::new();
    let base = recent_timestamp();
    for i in 0..10_000i64 {
        let key = format!("order-{i}");
        let amount = (i % 100) as f64 + 0.5;
        let tier = tiers[(i % 3) as usize];
        let name = format!("c{}", i % 37);
        let value = json!({"ID": i, "Amount": amount, "customer": {"NAME": name, "tier": tier}, "extra": "ignored"});
        let ts = base + i * 10;
        records.push((
            Some(key.clone().into_bytes()),
            Some(value.to_string().into_bytes()),
            ts,
        ));
        if amount > 50.0 && tier != "bronze" {
            let parity = if i % 2 == 0 { "even" } else { "odd" };
            expected.push((
                key.clone(),
                json!({"ID": i, "DOUBLED": amount * 2.0, "WHO": format!("{name}/{tier}"), "PARITY": parity}),
                ts,
                murmur2_partition(key.as_bytes(), 4),
            ));
        }
    }
    b.produce(&input, &records);

    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM orders (k STRING KEY, id INT, amount DOUBLE, customer STRUCT<name STRING, tier STRING>)
           WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM big_orders WITH (kafka_topic = '{output}') AS
           SELECT k, id, amount * 2 AS doubled, customer->name + '/' + customer->tier AS who,
                  CASE WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END AS parity
           FROM orders
           WHERE amount > 50 AND customer->tier IN ('gold', 'silver')
           EMIT CHANGES;"
    );
    let mut run = BrookRun::start(
        "csas",
        &sql,
        &[
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &unique("svc"),
        ],
    );
    run.wait_for_stdout(
        "Created query with ID CSAS_BIG_ORDERS_",
        Duration::from_secs(60),
    );
    let done = wait_for(Duration::from_secs(120), || {
        let got = b.read_topic(&output, expected.len(), Duration::from_secs(5));
        (got.len() >= expected.len()).then_some(())
    });
    assert!(
        done.is_some(),
        "output incomplete; stderr:\n{}",
        run.stderr()
    );
    assert!(run.terminate().success());

    assert_eq!(
        b.partitions(&output),
        Some(4),
        "the sink topic takes the source's partition count"
    );
    let got = b.read_topic(&output, expected.len(), Duration::from_secs(30));
    assert_eq!(
        got.len(),
        expected.len(),
        "a clean run writes each result once"
    );
    let mut got: Vec<_> = got
        .iter()
        .map(|r| (r.key_str(), r.value_json(), r.timestamp, r.partition))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
}

#[test]
fn restart_resumes_from_committed_offsets() {
    let b = broker();
    let input = unique("events");
    let output = unique("COPY");
    let service = unique("svc");
    b.create_topic(&input, 2);
    let base = recent_timestamp();
    let batch = |from: i64, to: i64| -> Vec<_> {
        (from..to)
            .map(|i| {
                (
                    Some(i.to_string().into_bytes()),
                    Some(json!({"v": i}).to_string().into_bytes()),
                    base + i,
                )
            })
            .collect()
    };
    b.produce(&input, &batch(0, 500));
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM events (k STRING KEY, v BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM copy WITH (kafka_topic = '{output}') AS SELECT k, v FROM events;"
    );
    let args = [
        "--bootstrap-servers",
        b.bootstrap.as_str(),
        "--service-id",
        service.as_str(),
    ];
    let run = BrookRun::start("restart", &sql, &args);
    let first = wait_for(Duration::from_secs(60), || {
        (b.read_topic(&output, 500, Duration::from_secs(2)).len() >= 500).then_some(())
    });
    assert!(
        first.is_some(),
        "first run incomplete; stderr:\n{}",
        run.stderr()
    );
    assert!(run.terminate().success());

    // Records produced while it was stopped are processed by the next run, and only they.
    b.produce(&input, &batch(500, 800));
    let run = BrookRun::start("restart", &sql, &args);
    let second = wait_for(Duration::from_secs(60), || {
        (b.read_topic(&output, 800, Duration::from_secs(2)).len() >= 800).then_some(())
    });
    assert!(
        second.is_some(),
        "second run incomplete; stderr:\n{}",
        run.stderr()
    );
    assert!(run.terminate().success());
    let got = b.read_topic(&output, 800, Duration::from_secs(10));
    assert_eq!(
        got.len(),
        800,
        "a clean stop commits its offsets: nothing is processed twice"
    );
}
