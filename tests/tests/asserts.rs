//! `ASSERT TOPIC` in a `brook run` script on a real broker: a script goes on when its
//! assertions hold and stops with ksqlDB's message when one does not.

use brook_tests::{broker, unique, BrookRun};
use std::time::Duration;

#[test]
fn assertions_that_hold_let_the_script_go_on() {
    let b = broker();
    let topic = unique("asserted");
    b.create_topic(&topic, 3);
    let missing = unique("missing");
    let script = format!(
        "ASSERT TOPIC `{topic}` WITH (PARTITIONS=3) TIMEOUT 5 SECONDS;
         ASSERT NOT EXISTS TOPIC `{missing}`;
         CREATE STREAM s (id INT KEY, v STRING) WITH (kafka_topic='{topic}', value_format='JSON');"
    );
    let mut run = BrookRun::start("asserts", &script, &["--bootstrap-servers", &b.bootstrap]);
    run.wait_for_stdout("Stream created", Duration::from_secs(60));
    let out = run.stdout();
    assert!(out.contains(&format!("Topic {topic} exists")), "{out}");
    assert!(
        out.contains(&format!("Topic {missing} does not exist")),
        "{out}"
    );
    assert!(run.terminate().success());
}

#[test]
fn a_failing_assertion_stops_the_script_with_the_reason() {
    let b = broker();
    let topic = unique("three");
    b.create_topic(&topic, 3);
    let missing = unique("missing");
    for (assertion, reason) in [
        (
            format!("ASSERT TOPIC `{missing}` TIMEOUT 2 SECONDS;"),
            format!("Topic {missing} does not exist"),
        ),
        (
            format!("ASSERT TOPIC `{topic}` WITH (PARTITIONS=2);"),
            format!(
                "Mismatched configuration for topic {topic}: For config partitions, expected 2 got 3"
            ),
        ),
        (
            format!("ASSERT NOT EXISTS TOPIC `{topic}`;"),
            format!("Topic {topic} exists"),
        ),
    ] {
        let script = format!(
            "{assertion}\nCREATE STREAM never (id INT KEY) WITH (kafka_topic='{topic}', value_format='JSON');"
        );
        let run = BrookRun::start("asserts", &script, &["--bootstrap-servers", &b.bootstrap]);
        let (status, out, stderr) = run.wait(Duration::from_secs(60));
        assert!(!status.success(), "{assertion} should fail the run");
        assert!(stderr.contains(&reason), "{assertion}: {stderr}");
        assert!(!out.contains("Stream created"), "the script stopped at {assertion}: {out}");
    }
}
