//! Repartition topics keep (`retention.ms=-1`, whatever the broker's default) what a query moves through them until the query has read it:
//! records whose event times are older than the broker's default retention (a replay of
//! last month's data) are aggregated exactly, and the query purges what it committed past.

use brook_tests::{broker, unique, wait_for, BrookRun};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn old_event_times_pass_through_the_repartition_topic() {
    let b = broker();
    let input = unique("old_clicks");
    let output = unique("OLD_PER_PAGE");
    // The input and output keep everything; the repartition topic is Brook's to create.
    b.create_topic_with(&input, 2, &[("retention.ms", "-1")]);
    b.create_topic_with(&output, 2, &[("retention.ms", "-1")]);
    let month_ago = brook_tests::now_millis() - 30 * 24 * 3_600_000;
    const TOTAL: i64 = 2_000;
    let records: Vec<_> = (0..TOTAL)
        .map(|i| {
            (
                Some(format!("u{i}").into_bytes()),
                Some(
                    json!({"page": format!("/p{}", i % 10)})
                        .to_string()
                        .into_bytes(),
                ),
                month_ago + i,
            )
        })
        .collect();
    b.produce(&input, &records);
    let service = unique("svc");
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'cache.max.bytes.buffering' = '0';
         SET 'repartition.purge.interval.ms' = '200';
         CREATE STREAM clicks (u STRING KEY, page STRING) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE per_page WITH (kafka_topic = '{output}') AS
           SELECT page, COUNT(*) AS n FROM clicks GROUP BY page;"
    );
    let run = BrookRun::start(
        "old-events",
        &sql,
        &[
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &service,
        ],
    );
    let expected: BTreeMap<String, i64> = (0..10).map(|p| (format!("/p{p}"), TOTAL / 10)).collect();
    let last = |records: &[brook_tests::Record]| {
        let mut last = BTreeMap::new();
        for r in records {
            last.insert(r.key_str(), r.value_json()["N"].as_i64().unwrap_or(-1));
        }
        last
    };
    let totals = wait_for(Duration::from_secs(120), || {
        let totals = last(&b.read_topic(&output, TOTAL as usize, Duration::from_secs(2)));
        (totals == expected).then_some(totals)
    });
    assert_eq!(
        totals,
        Some(expected),
        "old records were lost in the repartition topic; stderr:\n{}",
        run.stderr()
    );
    // What the query committed past is deleted from the repartition topic.
    let repartition = b
        .topic_names()
        .into_iter()
        .find(|t| t.contains(&service) && t.ends_with("-Aggregate-GroupBy-repartition"))
        .expect("the repartition topic");
    assert_eq!(
        b.topic_config(&repartition, "retention.ms").as_deref(),
        Some("-1"),
        "the broker may delete the repartition topic's old records"
    );
    let purged = wait_for(Duration::from_secs(60), || {
        let low: i64 = (0..2).map(|p| b.watermarks(&repartition, p).0).sum();
        (low > 0).then_some(low)
    });
    assert!(
        purged.is_some(),
        "the repartition topic was never purged; stderr:\n{}",
        run.stderr()
    );
    run.terminate();
}
