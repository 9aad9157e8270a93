//! The server's limits over real HTTP on a real broker: push queries past
//! `ksql.max.push.queries`, pull queries past their concurrency and rate, bodies past
//! `brook.server.request.max.bytes`, idle connections, request heads sent too slowly, and a
//! push query whose client stops reading. Each refusal has ksqlDB's shape, and the server
//! goes on serving others.

use brook_tests::{broker, free_port, unique, wait_for, BrookRun, Http, LoopbackServer};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A server with these settings in its config file: the process and a client.
fn server(name: &str, settings: &str) -> (BrookRun, Http, u16) {
    let b = broker();
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("server.properties");
    std::fs::write(&config, settings).expect("config");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = dir.join("state").display().to_string();
    let config = config.display().to_string();
    let server = BrookRun::serve_with(
        name,
        &b.bootstrap,
        &listen,
        &unique(name),
        &state,
        &["--config", &config],
    );
    (server, Http::new(port), port)
}

/// A topic of `count` records of about 10 kB each, and a stream over it.
fn big_records(http: &Http, count: usize) -> String {
    let topic = unique("big");
    broker().create_topic(&topic, 1);
    let pad = "x".repeat(10_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let records: Vec<_> = (0..count)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(json!({"ID": i, "PAD": pad}).to_string().into_bytes()),
                now,
            )
        })
        .collect();
    broker().produce(&topic, &records);
    let (status, body) = http.ksql(&format!(
        "CREATE STREAM big (k STRING KEY, id INT, pad STRING) WITH (kafka_topic='{topic}', value_format='JSON');"
    ));
    assert_eq!(status, 200, "{body}");
    topic
}

/// A request sent over a connection of its own, which the test reads as it likes.
fn raw_request(port: u16, path: &str, body: &Value) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    stream
}

/// Reads until one of `texts` has arrived: what was read.
fn read_until_any(stream: &mut TcpStream, texts: &[&str]) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !texts
        .iter()
        .any(|text| String::from_utf8_lossy(&seen).contains(text))
    {
        let n = stream.read(&mut buffer).expect("read");
        assert!(
            n > 0,
            "closed before any of {texts:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn read_until(stream: &mut TcpStream, text: &str) -> String {
    read_until_any(stream, &[text])
}

/// The query id in a `/query-stream` header line.
fn query_id(answer: &str) -> String {
    let start = answer.find("\"queryId\":\"").expect("a header line") + 11;
    answer[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn push_query(sql: &str) -> Value {
    json!({"sql": sql, "properties": {"auto.offset.reset": "earliest"}})
}

#[test]
fn queries_and_bodies_past_the_limits_are_refused_and_others_served() {
    let (server, http, port) = server(
        "limits",
        "ksql.max.push.queries=2\n\
         ksql.query.pull.max.concurrent.requests=1\n\
         ksql.query.pull.max.qps=5\n\
         brook.server.request.max.bytes=65536\n",
    );
    big_records(&http, 2000);
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "CREATE TABLE latest AS SELECT k, LATEST_BY_OFFSET(pad) AS pad FROM big GROUP BY k;",
                "streamsProperties": {"auto.offset.reset": "earliest"}})
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");

    // Two push queries run (no new records come, so they only hold their places).
    let live = json!({"sql": "SELECT k, id FROM big EMIT CHANGES;"});
    let mut first = raw_request(port, "/query-stream", &live);
    let first_id = query_id(&read_until(&mut first, "queryId"));
    let mut second = raw_request(port, "/query-stream", &live);
    read_until(&mut second, "queryId");
    let (status, body) = http.post("/query-stream", &live.to_string());
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(error["error_code"], json!(40003), "{body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("Maximum number of push queries exceeded")),
        "{body}"
    );
    // Statements are still served.
    let (status, body) = http.ksql("SHOW STREAMS;");
    assert_eq!(status, 200, "{body:?}");
    // A closed query gives its place back.
    let (status, body) = http.post("/close-query", &json!({"queryId": first_id}).to_string());
    assert_eq!(status, 200, "{body}");
    let admitted = wait_for(Duration::from_secs(30), || {
        let mut third = raw_request(port, "/query-stream", &live);
        let answer = read_until_any(&mut third, &["queryId", "error_code"]);
        answer.contains("queryId").then_some(third)
    });
    assert!(
        admitted.is_some(),
        "a push query is admitted once one closed"
    );
    drop((second, admitted));

    // The table holds every key: a pull query finds the last one.
    let found = wait_for(Duration::from_secs(60), || {
        let (status, body) = http.post(
            "/query",
            &json!({"ksql": "SELECT k FROM latest WHERE k = 'k1999';"}).to_string(),
        );
        (status == 200 && body.contains("k1999")).then_some(())
    });
    assert!(found.is_some(), "the table is materialized");

    // A pull query whose client reads slowly holds the one place: the next is refused.
    let mut slow = raw_request(port, "/query", &json!({"ksql": "SELECT * FROM latest;"}));
    read_until(&mut slow, "header");
    let (status, body) = http.post(
        "/query",
        &json!({"ksql": "SELECT k FROM latest WHERE k = 'k1';"}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Host is at concurrency limit for pull queries. Currently set to 1 maximum concurrent operations."),
        "{body}"
    );
    drop(slow);
    let freed = wait_for(Duration::from_secs(30), || {
        let (status, _) = http.post(
            "/query",
            &json!({"ksql": "SELECT k FROM latest WHERE k = 'k1';"}).to_string(),
        );
        (status == 200).then_some(())
    });
    assert!(
        freed.is_some(),
        "the place is given back when the client goes"
    );

    // Pull queries from 8 clients at once: past 5 started in a second they are refused at
    // the rate limit (those the rate lets through may still find the one place taken).
    let port_of = http.base.clone();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let base = port_of.clone();
                scope.spawn(move || {
                    let client = Http {
                        base,
                        agent: ureq::Agent::config_builder()
                            .http_status_as_error(false)
                            .build()
                            .into(),
                    };
                    (0..5)
                        .map(|_| {
                            client.post(
                                "/query",
                                &json!({"ksql": "SELECT k FROM latest WHERE k = 'k2';"})
                                    .to_string(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client"))
            .collect()
    });
    let count = |text: &str| {
        answers
            .iter()
            .filter(|(status, body)| *status == 400 && body.contains(text))
            .count()
    };
    let at_rate = count("Host is at rate limit for pull queries. Currently set to 5 qps.");
    let at_concurrency = count("Host is at concurrency limit for pull queries.");
    let answered = answers.iter().filter(|(status, _)| *status == 200).count();
    assert!(at_rate >= 1 && answered >= 1, "{answers:?}");
    assert_eq!(
        at_rate + at_concurrency + answered,
        answers.len(),
        "{answers:?}"
    );

    // A body past the limit is refused in ksqlDB's shape; a small one is served.
    let big = json!({"ksql": format!("SHOW STREAMS; -- {}", "x".repeat(100_000))}).to_string();
    let (status, body) = http.post("/ksql", &big);
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["error_code"],
        json!(41300)
    );
    let (status, _) = http.ksql("SHOW STREAMS;");
    assert_eq!(status, 200);

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
}

#[test]
fn idle_connections_slow_heads_and_slow_readers_are_let_go() {
    let (server, http, port) = server(
        "slow",
        "ksql.idle.connection.timeout.seconds=5\n\
         brook.server.request.header.timeout.ms=1000\n\
         brook.query.push.client.timeout.ms=1000\n\
         ksql.max.push.queries=1\n",
    );

    // A connection that sends nothing is closed after the idle timeout.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let opened = Instant::now();
    let n = idle.read(&mut [0u8; 16]).unwrap_or(0);
    let waited = opened.elapsed();
    assert_eq!(n, 0, "the server sent nothing and closed the connection");
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(30),
        "closed after {waited:?}"
    );

    // A request head trickled a line every 200 ms keeps the connection busy, but is cut at
    // the head timeout.
    let mut trickle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    trickle
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let opened = Instant::now();
    trickle
        .write_all(b"GET /info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("start");
    let closed = loop {
        assert!(
            opened.elapsed() < Duration::from_secs(20),
            "a trickled head was never cut"
        );
        if trickle.write_all(b"X-Slow: yes\r\n").is_err() {
            break opened.elapsed();
        }
        match trickle.read(&mut [0u8; 256]) {
            Ok(0) => break opened.elapsed(),
            Ok(_) => panic!("the server answered a request whose head never ended"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break opened.elapsed(),
        }
    };
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "cut after {closed:?} (the idle timeout is 5 s, the head timeout 1 s)"
    );

    // A push query whose client stops reading: the query waits for it, then ends with a
    // message the client finds after the rows it was sent.
    big_records(&http, 3000);
    let mut reader = raw_request(
        port,
        "/query-stream",
        &push_query("SELECT k, pad FROM big EMIT CHANGES;"),
    );
    read_until(&mut reader, "queryId");
    let warned = wait_for(Duration::from_secs(60), || {
        server
            .stderr()
            .contains("The push query was closed: its client took none")
            .then_some(())
    });
    assert!(warned.is_some(), "stderr:\n{}", server.stderr());
    let mut rest = Vec::new();
    reader
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _ = reader.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("brook.query.push.client.timeout.ms"),
        "the answer ends with why: ...{}",
        &rest[rest.len().saturating_sub(600)..]
    );
    // Its place is free again (the limit is one push query).
    let (status, body) = http.post(
        "/query-stream",
        &push_query("SELECT k FROM big EMIT CHANGES LIMIT 1;").to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("k0"), "{body}");

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
}

/// An HTTP server whose every answer is 200 with a body that never ends: the server (it
/// serves until dropped), its URL and how many requests it took.
fn flood() -> (
    LoopbackServer,
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let requests = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let router = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        // Ends when the client stops reading and closes the connection.
        let endless = futures::stream::repeat_with(|| {
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(&[b'x'; 64 * 1024]))
        });
        std::future::ready(axum::body::Body::from_stream(endless))
    });
    let server = LoopbackServer::start(0, router);
    let url = format!("http://127.0.0.1:{}", server.port);
    (server, url, requests)
}

#[test]
fn answers_that_never_end_are_cut_from_a_registry_and_an_endpoint() {
    let (_flood, url, requests) = flood();
    let (server, http, _) = server(
        "flood",
        &format!(
            "ksql.schema.registry.url={url}\nbrook.schema.registry.response.max.bytes=1048576\n"
        ),
    );
    let b = broker();

    // A schema registry that answers with an endless body: refused past its limit.
    let topic = unique("flooded");
    b.create_topic(&topic, 1);
    let (status, body) = http.ksql(&format!(
        "CREATE STREAM flooded WITH (kafka_topic='{topic}', value_format='AVRO');"
    ));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("the answer is larger than 1048576 bytes"),
        "{body}"
    );

    // A sink endpoint that does the same: each request is done once its answer's start is
    // read, so every record is delivered and committed.
    let topic = unique("to_flood");
    b.create_topic(&topic, 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let records: Vec<_> = (0..10)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(json!({"N": i}).to_string().into_bytes()),
                now,
            )
        })
        .collect();
    b.produce(&topic, &records);
    let name = unique("flood_sink");
    let before = requests.load(std::sync::atomic::Ordering::Relaxed);
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": format!(
            "CREATE SINK CONNECTOR `{name}` WITH ('connector.class' = 'AzureFunctionsSink',
               'function.url' = '{url}', 'function.key' = 'k', 'topics' = '{topic}',
               'max.batch.size' = '3', 'offset.flush.interval.ms' = '200',
               'response.max.bytes' = '4096');"),
            "streamsProperties": {"auto.offset.reset": "earliest"}})
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let committed = wait_for(Duration::from_secs(60), || {
        let committed = b.committed(&format!("connect-{name}"), &topic);
        (committed == [10]).then_some(committed)
    });
    assert_eq!(
        committed,
        Some(vec![10]),
        "every record delivered and committed"
    );
    assert!(
        requests.load(std::sync::atomic::Ordering::Relaxed) - before >= 4,
        "10 records in batches of 3"
    );

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
}
