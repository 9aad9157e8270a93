//! `brook run` as a user meets it: the quick start on the embedded broker, and errors.

use brook_tests::BrookRun;
use std::path::PathBuf;
use std::time::Duration;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(name)
}

#[test]
fn quickstart_prints_its_rows_on_the_embedded_broker() {
    let dir = std::env::temp_dir().join(brook_tests::unique("quickstart"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut run = BrookRun::start_file(&dir, &example("quickstart.sql"), &[]);
    run.wait_for_stdout("Limit Reached", Duration::from_secs(120));
    let out = run.stdout();
    assert!(
        run.stderr().contains("embedded"),
        "says the broker is embedded:\n{}",
        run.stderr()
    );
    for row in [
        "| alice        | /home        | 1.2          | desktop      |",
        "| alice        | /docs        | 0.9          | desktop      |",
        "| carol        | /docs        | 4.5          | mobile       |",
    ] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    assert!(!out.contains("bob"), "bob's visit is filtered out:\n{out}");
    assert!(run.terminate().success());
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let run = BrookRun::start(
        "syntax",
        "SET 'a' = 'b';\nCREATE STREAM s (id INT KEY\n  WITH (kafka_topic='t');",
        &[],
    );
    let (status, _, stderr) = run.wait(Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        stderr.contains("statements.sql:3:3: Syntax Error at line 3:3: expected ','"),
        "{stderr}"
    );
}

#[test]
fn planning_errors_stop_the_run_with_the_statement_position() {
    let run = BrookRun::start(
        "plan",
        "SET 'auto.offset.reset' = 'earliest';\nCREATE STREAM s (id INT KEY, v STRING) WITH (kafka_topic='t', value_format='JSON', partitions=1);\nCREATE STREAM o AS SELECT v FROM s;",
        &[],
    );
    let (status, _, stderr) = run.wait(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        stderr.contains("statements.sql:3:1: error: The query used to build `O` must include the key column ID in its projection"),
        "{stderr}"
    );
}

#[test]
fn a_push_query_aggregates_as_rows_arrive() {
    let mut run = BrookRun::start(
        "push-aggregate",
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM pv (user_id STRING KEY, page STRING)
           WITH (kafka_topic='pv', value_format='JSON', partitions=2);
         INSERT INTO pv (user_id, page) VALUES ('alice', '/a');
         INSERT INTO pv (user_id, page) VALUES ('bob', '/a');
         INSERT INTO pv (user_id, page) VALUES ('alice', '/b');
         SELECT page, COUNT(*) AS n FROM pv GROUP BY page EMIT CHANGES LIMIT 3;",
        &[],
    );
    run.wait_for_stdout("Limit Reached", Duration::from_secs(120));
    let out = run.stdout();
    // The two partitions may interleave, but each page counts up in order.
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| /")).collect();
    let a: Vec<&&str> = rows.iter().filter(|l| l.starts_with("| /a ")).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(a[0].contains("| 1 ") && a[1].contains("| 2 "), "{out}");
    assert!(
        rows.iter()
            .any(|l| l.starts_with("| /b ") && l.contains("| 1 ")),
        "{out}"
    );
    let _ = run.terminate();
}
