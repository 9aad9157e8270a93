//! `brook shell` against a server on a real broker: interactively through a
//! pseudo-terminal (a statement over two lines, a push query with LIMIT, Ctrl-C ending a
//! query but not the shell, Tab completion of a stream's name, the history file), and
//! with `-e` and `-f`.

use brook_tests::{broker, brook_binary, free_port, run_brook, unique, BrookRun};
use std::process::Command;

struct Setup {
    server: BrookRun,
    url: String,
    state: std::path::PathBuf,
}

fn server(name: &str) -> Setup {
    let b = broker();
    let listen = format!("127.0.0.1:{}", free_port());
    let state = std::env::temp_dir().join(unique("brook-state"));
    let server = BrookRun::serve(
        name,
        &b.bootstrap,
        &listen,
        &unique(name),
        &state.display().to_string(),
    );
    Setup {
        server,
        url: format!("http://{listen}"),
        state,
    }
}

impl Setup {
    fn stop(self) {
        let stderr = self.server.stderr();
        assert!(self.server.terminate().success(), "{stderr}");
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

#[test]
fn shell_in_a_terminal() {
    let setup = server("shell_pty");
    let topic = unique("shell_topic");
    let stream = unique("SHELL_S");
    let history = std::env::temp_dir().join(unique("brook_history"));
    let mut command = Command::new(brook_binary());
    command
        .args(["shell", &setup.url, "--history-file"])
        .arg(&history)
        .env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).expect("spawn the shell");
    let fail = |step: &str, e: rexpect::error::Error| -> ! { panic!("{step}: {e}") };
    p.exp_string("brook> ")
        .unwrap_or_else(|e| fail("the prompt", e));

    // A statement over two lines: the first has no ';' yet.
    p.send_line(&format!("CREATE STREAM {stream} (id INT KEY, v STRING)"))
        .expect("send");
    p.send_line(&format!(
        "  WITH (kafka_topic='{topic}', value_format='JSON', partitions=1);"
    ))
    .expect("send");
    p.exp_string("Stream created")
        .unwrap_or_else(|e| fail("CREATE STREAM", e));
    p.exp_string("brook> ")
        .unwrap_or_else(|e| fail("prompt", e));
    for (id, v) in [(1, "first"), (2, "second")] {
        p.send_line(&format!(
            "INSERT INTO {stream} (id, v) VALUES ({id}, '{v}');"
        ))
        .expect("send");
        p.exp_string("brook> ")
            .unwrap_or_else(|e| fail("INSERT", e));
    }
    p.send_line("SET 'auto.offset.reset' = 'earliest';")
        .expect("send");
    p.exp_string("Successfully changed local property 'auto.offset.reset' to 'earliest'.")
        .unwrap_or_else(|e| fail("SET", e));

    // A push query with LIMIT streams its rows, then ends.
    p.send_line(&format!("SELECT id, v FROM {stream} EMIT CHANGES LIMIT 2;"))
        .expect("send");
    p.exp_string("| first")
        .unwrap_or_else(|e| fail("first row", e));
    p.exp_string("| second")
        .unwrap_or_else(|e| fail("second row", e));
    p.exp_string("Limit Reached")
        .unwrap_or_else(|e| fail("LIMIT", e));
    p.exp_string("brook> ")
        .unwrap_or_else(|e| fail("prompt", e));

    // A query without LIMIT runs until Ctrl-C, which ends the query, not the shell.
    p.send_line(&format!("SELECT v FROM {stream} EMIT CHANGES;"))
        .expect("send");
    p.exp_string("| second")
        .unwrap_or_else(|e| fail("rows of the open query", e));
    std::thread::sleep(std::time::Duration::from_millis(500));
    p.send_control('c').expect("Ctrl-C");
    p.exp_string("Query terminated")
        .unwrap_or_else(|e| fail("Ctrl-C", e));
    p.exp_string("brook> ")
        .unwrap_or_else(|e| fail("the shell survives Ctrl-C", e));

    // Tab completes the stream's name.
    let prefix = &stream[..stream.len() - 4];
    p.send(&format!("DESCRIBE {prefix}")).expect("send");
    p.send("\t").expect("Tab");
    p.send_line(";").expect("send");
    p.exp_string(&format!("Kafka topic          : {topic}"))
        .unwrap_or_else(|e| fail("DESCRIBE of the completed name", e));
    p.exp_string("brook> ")
        .unwrap_or_else(|e| fail("prompt", e));

    // Errors are shown, and the shell goes on.
    p.send_line("DESCRIBE nothing_here;").expect("send");
    p.exp_string("Could not find STREAM/TABLE 'NOTHING_HERE'")
        .unwrap_or_else(|e| fail("an error", e));
    p.exp_string("brook> ")
        .unwrap_or_else(|e| fail("prompt", e));

    p.send_line("exit").expect("send");
    p.exp_eof().unwrap_or_else(|e| fail("exit", e));
    let remembered = std::fs::read_to_string(&history).expect("the history file");
    assert!(
        remembered.contains(&format!("SELECT id, v FROM {stream} EMIT CHANGES LIMIT 2;")),
        "{remembered}"
    );
    assert!(
        remembered.contains("DESCRIBE nothing_here;"),
        "{remembered}"
    );
    let _ = std::fs::remove_file(&history);
    setup.stop();
}

fn shell(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["shell"];
    all.extend_from_slice(args);
    run_brook(&all)
}

#[test]
fn shell_runs_statements_from_the_command_line_and_files() {
    let setup = server("shell_e");
    let topic = unique("shell_e_topic");
    let (ok, out, err) = shell(&[
        &setup.url,
        "-e",
        &format!(
            "DEFINE t = '{topic}';
             CREATE STREAM readings (sensor STRING KEY, celsius DOUBLE)
               WITH (kafka_topic='${{t}}', value_format='JSON', partitions=1);
             INSERT INTO readings (sensor, celsius) VALUES ('s1', 20.5);
             SHOW STREAMS;"
        ),
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("| Stream created |"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("| READINGS") && l.contains(&topic) && l.contains("| JSON")),
        "{out}"
    );

    let dir = std::env::temp_dir().join(unique("shell_f"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("queries.sql");
    std::fs::write(
        &file,
        "SET 'auto.offset.reset' = 'earliest';
         OUTPUT JSON;
         SELECT sensor, celsius FROM readings EMIT CHANGES LIMIT 1;
         SELECT * FROM readings;",
    )
    .expect("write");
    let script = dir.join("script.sql");
    std::fs::write(&script, "SHOW STREAMS;\n").expect("write");
    let (ok, out, err) = shell(&[
        &setup.url,
        "-e",
        &format!("RUN SCRIPT '{}';", script.display()),
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("| READINGS"), "RUN SCRIPT ran the file: {out}");
    let (ok, out, err) = shell(&[&setup.url, "-f", &file.display().to_string()]);
    assert!(ok, "{out}\n{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(rows, ["[\"s1\",20.5]", "[\"s1\",20.5]"], "{out}");
    assert!(out.contains("Limit Reached"), "{out}");

    // SPOOL copies each statement (as `ksql> ...`) and what it printed to a file, until
    // SPOOL OFF.
    let spooled = dir.join("spool.txt");
    let (ok, out, err) = shell(&[
        &setup.url,
        "-e",
        &format!(
            "SPOOL {}; SHOW STREAMS; SPOOL OFF; SHOW TABLES;",
            spooled.display()
        ),
    ]);
    assert!(ok, "{out}\n{err}");
    let text = std::fs::read_to_string(&spooled).expect("the spool file");
    assert!(text.contains("ksql> SHOW STREAMS;"), "{text}");
    assert!(text.contains("| READINGS"), "{text}");
    assert!(!text.contains("SHOW TABLES"), "{text}");
    assert!(out.contains("| READINGS"), "{out}");

    // A failing statement stops the run with its message and a failure status.
    let (ok, _, err) = shell(&[&setup.url, "-e", "SELECT nope FROM readings;"]);
    assert!(!ok);
    assert!(
        err.contains("SELECT column 'NOPE' cannot be resolved"),
        "{err}"
    );

    // A server that is not there is said to be unreachable.
    let (ok, _, err) = shell(&[
        &format!("http://127.0.0.1:{}", free_port()),
        "-e",
        "SHOW STREAMS;",
    ]);
    assert!(!ok);
    assert!(err.contains("is unreachable"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    setup.stop();
}
