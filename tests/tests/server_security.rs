//! `brook server --config FILE` with an HTTPS listener and basic authentication, on a real
//! broker: requests without (or with wrong) credentials are refused with ksqlDB's 401,
//! health checks stay open, and the shell talks to it with -u/-p over TLS.

use brook_tests::{broker, free_port, run_brook, unique, wait_for, BrookRun};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A self-signed certificate for 127.0.0.1: (certificate, key) PEM files.
fn certificate(dir: &Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command makes the test certificate");
    assert!(out.status.success(), "{out:?}");
    (cert.display().to_string(), key.display().to_string())
}

/// curl over HTTPS trusting `ca`: (status, body).
fn curl(url: &str, ca: &str, credentials: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "--cacert", ca, "-w", "\n%{http_code}"]);
    if let Some(c) = credentials {
        command.args(["-u", c]);
    }
    if let Some(b) = body {
        command.args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            b,
        ]);
    }
    let out = command.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn https_with_basic_authentication_from_a_config_file() {
    let b = broker();
    let dir = std::env::temp_dir().join(unique("secure"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = certificate(&dir);
    let users = dir.join("users.properties");
    std::fs::write(&users, "# user: password, roles\nalice: wonderland,admin\n").expect("users");
    let port = free_port();
    let config = dir.join("brook-server.properties");
    std::fs::write(
        &config,
        format!(
            "listeners=https://127.0.0.1:{port}\n\
             bootstrap.servers={}\n\
             ksql.service.id={}\n\
             ksql.streams.state.dir={}\n\
             authentication.method=BASIC\n\
             authentication.realm=BrookTest\n\
             authentication.basic.users.file={}\n\
             listener.tls.certificate.location={cert}\n\
             listener.tls.key.location={key}\n",
            b.bootstrap,
            unique("secure"),
            dir.join("state").display(),
            users.display()
        ),
    )
    .expect("config");
    let config_arg = config.display().to_string();
    let mut server = BrookRun::start_server("secure-server", &["--config", &config_arg]);
    let base = format!("https://127.0.0.1:{port}");
    let up = wait_for(Duration::from_secs(60), || {
        if !server.is_running() {
            return Some(false);
        }
        let (status, _) = curl(&format!("{base}/chc/live"), &cert, None, None);
        (status == 200).then_some(true)
    });
    assert_eq!(
        up,
        Some(true),
        "no HTTPS answer; stderr:\n{}",
        server.stderr()
    );

    // Without credentials, or with a wrong password: ksqlDB's 401.
    let (status, body) = curl(&format!("{base}/info"), &cert, None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error_code\":40100"), "{body}");
    let (status, _) = curl(&format!("{base}/info"), &cert, Some("alice:nope"), None);
    assert_eq!(status, 401);
    let (status, _) = curl(&format!("{base}/info"), &cert, Some("bob:wonderland"), None);
    assert_eq!(status, 401);
    // With them, over TLS.
    let (status, body) = curl(
        &format!("{base}/info"),
        &cert,
        Some("alice:wonderland"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("KsqlServerInfo"), "{body}");
    let (status, body) = curl(
        &format!("{base}/ksql"),
        &cert,
        Some("alice:wonderland"),
        Some(r#"{"ksql": "SHOW STREAMS;"}"#),
    );
    assert_eq!(status, 200, "{body}");
    // Plain HTTP is not served.
    let (status, _) = curl(&format!("http://127.0.0.1:{port}/info"), &cert, None, None);
    assert_ne!(status, 200);

    // The shell, with -u/-p, trusting the server's certificate.
    let topic = unique("secure_topic");
    let shell = |args: &[&str]| {
        let mut all = vec!["shell", base.as_str(), "--ca-file", cert.as_str()];
        all.extend_from_slice(args);
        run_brook(&all)
    };
    let (ok, stdout, stderr) = shell(&[
        "-u",
        "alice",
        "-p",
        "wonderland",
        "-e",
        &format!(
            "CREATE STREAM secure_s (id INT KEY, v STRING) WITH (kafka_topic='{topic}', value_format='JSON', partitions=1); SHOW STREAMS;"
        ),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("SECURE_S"), "{stdout}");
    let (ok, _, stderr) = shell(&["-u", "alice", "-p", "wrong", "-e", "SHOW STREAMS;"]);
    assert!(!ok);
    assert!(stderr.contains("Unauthorized"), "{stderr}");

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
