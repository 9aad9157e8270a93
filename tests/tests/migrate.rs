//! `brook migrate` against a server on a real broker: a project of three migrations
//! applied (a dry run, --next, --until, --version), `info` after each step, an applied file
//! edited (validate and apply refuse), a failing migration recorded as ERROR, and the
//! metadata destroyed.

use brook_tests::{broker, free_port, run_brook, unique, BrookRun};
use std::path::Path;

/// Runs `brook migrate -c <project>/ksql-migrations.properties ARGS`: (success, stdout,
/// stderr).
fn migrate(project: &Path, args: &[&str]) -> (bool, String, String) {
    let config = project
        .join("ksql-migrations.properties")
        .display()
        .to_string();
    let mut all = vec!["migrate", "-c", &config];
    all.extend_from_slice(args);
    run_brook(&all)
}

/// The rows of `info`'s table: version, name, state, previous, started, completed, error.
fn info_rows(project: &Path) -> (String, Vec<Vec<String>>) {
    let (ok, out, err) = migrate(project, &["info"]);
    assert!(ok, "info failed: {out}\n{err}");
    let current = out
        .lines()
        .find_map(|l| l.strip_prefix("Current migration version: "))
        .unwrap_or_default()
        .to_string();
    let rows = out
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Version"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    (current, rows)
}

fn states(rows: &[Vec<String>]) -> Vec<(String, String)> {
    rows.iter().map(|r| (r[0].clone(), r[2].clone())).collect()
}

fn pair(v: &str, s: &str) -> (String, String) {
    (v.to_string(), s.to_string())
}

#[test]
fn migrations_apply_validate_and_record_failures() {
    let b = broker();
    let listen = format!("127.0.0.1:{}", free_port());
    let state = std::env::temp_dir().join(unique("brook-state"));
    let server = BrookRun::serve(
        "migrate-server",
        &b.bootstrap,
        &listen,
        &unique("migrate"),
        &state.display().to_string(),
    );
    let project = std::env::temp_dir().join(unique("migrations_project"));
    let (ok, out, err) = run_brook(&[
        "migrate",
        "new-project",
        &project.display().to_string(),
        &format!("http://{listen}"),
    ]);
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = migrate(&project, &["initialize-metadata"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Creating table: MIGRATION_SCHEMA_VERSIONS"),
        "{out}"
    );

    let topic = unique("mig_orders");
    let files = [
        (
            "Create orders",
            "CREATE STREAM orders (id STRING KEY, amount INT)\n  WITH (kafka_topic='${orders_topic}', value_format='JSON', partitions=1);\n",
        ),
        (
            "Big orders",
            "SET 'auto.offset.reset' = 'earliest';\nCREATE STREAM big_orders AS SELECT id, amount FROM orders WHERE amount > 100;\n",
        ),
        (
            "First orders",
            "INSERT INTO orders (id, amount) VALUES ('o1', 50);\nINSERT INTO orders (id, amount) VALUES ('o2', 500);\n",
        ),
    ];
    for (i, (description, sql)) in files.iter().enumerate() {
        let (ok, out, err) = migrate(&project, &["create", description]);
        assert!(ok, "{out}\n{err}");
        let file = project.join("migrations").join(format!(
            "V{:06}__{}.sql",
            i + 1,
            description.replace(' ', "_")
        ));
        assert!(out.contains(&file.display().to_string()), "{out}");
        std::fs::write(&file, sql).expect("write the migration");
    }
    let define = format!("orders_topic={topic}");

    // A dry run applies nothing.
    let (ok, out, err) = migrate(&project, &["apply", "--all", "--dry-run", "-d", &define]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Dry run complete"), "{out}");
    let (current, rows) = info_rows(&project);
    assert_eq!(current, "<none>");
    assert_eq!(
        states(&rows),
        [
            pair("1", "PENDING"),
            pair("2", "PENDING"),
            pair("3", "PENDING")
        ]
    );

    // --next applies the first; --all the rest.
    let (ok, out, err) = migrate(&project, &["apply", "--next", "-d", &define]);
    assert!(ok, "{out}\n{err}");
    let (current, rows) = info_rows(&project);
    assert_eq!(current, "1");
    assert_eq!(
        states(&rows),
        [
            pair("1", "MIGRATED"),
            pair("2", "PENDING"),
            pair("3", "PENDING")
        ]
    );
    // --until V applies up to V; --version V applies V alone, and only after the current.
    let (ok, out, err) = migrate(&project, &["apply", "--until", "2", "-d", &define]);
    assert!(ok, "{out}\n{err}");
    let (current, rows) = info_rows(&project);
    assert_eq!(current, "2");
    assert_eq!(
        states(&rows),
        [
            pair("1", "MIGRATED"),
            pair("2", "MIGRATED"),
            pair("3", "PENDING")
        ]
    );
    let (ok, _, err) = migrate(&project, &["apply", "--version", "1", "-d", &define]);
    assert!(!ok);
    assert!(err.contains("not after the current version 2"), "{err}");
    let (ok, out, err) = migrate(&project, &["apply", "--version", "3", "-d", &define]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Successfully migrated"), "{out}");
    let (current, rows) = info_rows(&project);
    assert_eq!(current, "3");
    assert_eq!(
        states(&rows),
        [
            pair("1", "MIGRATED"),
            pair("2", "MIGRATED"),
            pair("3", "MIGRATED")
        ]
    );
    assert_eq!(rows[0][1], "Create orders");
    let previous: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(previous, ["<none>", "1", "2"]);
    assert!(rows
        .iter()
        .all(|r| r[4].ends_with("UTC") && r[5].ends_with("UTC")));
    // What the migrations did is on the server: the query of version 2 filtered the rows
    // version 3 inserted.
    let big = brook_tests::wait_for(std::time::Duration::from_secs(60), || {
        let records = b.read_topic("BIG_ORDERS", 1, std::time::Duration::from_secs(5));
        (!records.is_empty()).then_some(records)
    })
    .expect("BIG_ORDERS has the big order");
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].key_str(), "o2");
    let (ok, out, _) = migrate(&project, &["apply", "--all", "-d", &define]);
    assert!(ok);
    assert!(out.contains("No eligible migrations found."), "{out}");

    // An applied file that changes fails validation, and apply refuses to go on.
    let second = project.join("migrations").join("V000002__Big_orders.sql");
    let original = std::fs::read_to_string(&second).expect("read");
    std::fs::write(&second, original.replace("> 100", "> 200")).expect("edit");
    let (ok, _, err) = migrate(&project, &["validate"]);
    assert!(!ok, "validate must fail");
    assert!(
        err.contains("migration version 2 was applied with checksum"),
        "{err}"
    );
    let (ok, _, err) = migrate(&project, &["apply", "--all", "-d", &define]);
    assert!(!ok);
    assert!(err.contains("checksum"), "{err}");
    std::fs::write(&second, &original).expect("restore");
    let (ok, out, err) = migrate(&project, &["validate"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Successfully validated checksums"), "{out}");

    // A failing migration is recorded as ERROR, with its reason, and stops the run.
    let (ok, out, err) = migrate(&project, &["create", "Broken"]);
    assert!(ok, "{out}\n{err}");
    std::fs::write(
        project.join("migrations").join("V000004__Broken.sql"),
        "CREATE STREAM broken AS SELECT no_such_column FROM orders;\n",
    )
    .expect("write");
    let (ok, out, err) = migrate(&project, &["create", "After broken"]);
    assert!(ok, "{out}\n{err}");
    std::fs::write(
        project.join("migrations").join("V000005__After_broken.sql"),
        "CREATE STREAM never (id STRING KEY) WITH (kafka_topic='never', value_format='JSON', partitions=1);\n",
    )
    .expect("write");
    let (ok, _, err) = migrate(&project, &["apply", "--all", "-d", &define]);
    assert!(!ok, "apply must fail");
    assert!(
        err.contains("migration version 4 failed, recorded as ERROR"),
        "{err}"
    );
    let (current, rows) = info_rows(&project);
    assert_eq!(current, "4");
    assert_eq!(
        states(&rows),
        [
            pair("1", "MIGRATED"),
            pair("2", "MIGRATED"),
            pair("3", "MIGRATED"),
            pair("4", "ERROR"),
            pair("5", "PENDING")
        ]
    );
    assert!(
        rows[3][6].contains("SELECT column 'NO_SUCH_COLUMN' cannot be resolved"),
        "{rows:?}"
    );
    let (ok, _, err) = migrate(&project, &["validate"]);
    assert!(!ok);
    assert!(err.contains("migration version 4 is ERROR"), "{err}");

    // The metadata goes away; the migrated streams stay.
    let (ok, out, err) = migrate(&project, &["destroy-metadata"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Terminating query with ID: CTAS_MIGRATION_SCHEMA_VERSIONS"),
        "{out}"
    );
    let (ok, _, err) = migrate(&project, &["info"]);
    assert!(!ok);
    assert!(err.contains("initialize-metadata"), "{err}");

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
    let _ = std::fs::remove_dir_all(&project);
    let _ = std::fs::remove_dir_all(&state);
}
