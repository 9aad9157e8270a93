//! Fuzz targets for what the server reads from strangers: REST request bodies, sent over
//! real HTTP to every endpoint that takes one, and the records of the command topic. Run
//! as tests for 20 s each (as CI does; `BOLERO_RANDOM_TEST_TIME_MS` sets longer). No input may
//! panic or be answered with a server error: a bad request is the client's (4xx).

use crate::{serve, Listener, Mode};
use brook_engine::runtime::driver::Driver;
use brook_engine::schema_registry::MemoryRegistry;
use brook_engine::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long each target runs in CI; `BOLERO_RANDOM_TEST_TIME_MS` runs it longer.
const BUDGET: Duration = Duration::from_secs(20);

/// Endpoints that take a body (REST Proxy's produce needs Kafka, which the in-process
/// driver is not: it answers 503 before it reads a body).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/ksql"),
    ("POST", "/query-stream"),
    ("POST", "/query"),
    ("POST", "/close-query"),
    ("POST", "/inserts-stream"),
    ("POST", "/connectors"),
    ("PUT", "/connectors/x/config"),
];

/// A server on the in-process driver, on a loopback port of its own: its base URL.
fn start_server() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let engine = Engine::on_driver(
                Arc::new(Driver::new("fuzz_", 1)),
                "fuzz_",
                Arc::new(MemoryRegistry::default()),
            );
            let listener = Listener {
                address: SocketAddr::from(([127, 0, 0, 1], port)),
                tls: None,
                basic_auth: None,
            };
            let _ = serve(engine, listener, Mode::Unrecorded, std::future::pending()).await;
        });
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn fuzz_rest_bodies() {
    let base = start_server();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A body that happens to start a push query streams until the timeout.
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    // A failing input is shrunk by running it again after a panic: the agent's pool holds
    // nothing a panic leaves half-done.
    let agent = std::panic::AssertUnwindSafe(agent);
    let send = |method: &str, path: &str, body: Vec<u8>| {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("Content-Type", "application/json")
            .body(body)
            .expect("request");
        // A pooled connection the server closed after its last answer (it does when an
        // endpoint answered before reading the whole body) fails before the request
        // reaches it: sent again, on a new connection. A server that drops the request
        // itself drops it again.
        let mut outcome = agent.run(request.clone());
        if matches!(outcome, Err(ureq::Error::Io(_))) {
            outcome = agent.run(request);
        }
        match outcome {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                Some((status, text))
            }
            Err(ureq::Error::Timeout(_)) => None,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    };
    // The server binds its port on its own thread: wait until it answers.
    let up = (0..400).any(|_| {
        let answered = agent.get(format!("{base}/info")).call().is_ok();
        if !answered {
            std::thread::sleep(Duration::from_millis(25));
        }
        answered
    });
    assert!(up, "the server never answered");
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(|bytes: &[u8]| {
            let Some((&first, rest)) = bytes.split_first() else {
                return;
            };
            let (method, path) = ROUTES[first as usize % ROUTES.len()];
            // Half the inputs are bodies as they are; half wrap the bytes as the text of
            // the field the endpoint reads, to get past the JSON parser.
            let body = if first & 0x80 == 0 {
                rest.to_vec()
            } else {
                let text = String::from_utf8_lossy(rest);
                serde_json::json!({"ksql": text, "sql": text, "queryId": text, "name": text})
                    .to_string()
                    .into_bytes()
            };
            if let Some((status, text)) = send(method, path, body) {
                assert!(status < 500, "{method} {path} answered {status}: {text}");
            }
        });
}

#[test]
fn fuzz_command_records() {
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(|bytes: &[u8]| {
            if let Ok(command) = crate::command_topic::parse_command(0, bytes) {
                let value = &command.value;
                assert!(
                    value.get("statement").is_some() || value.get("failed").is_some(),
                    "{value}"
                );
            }
        });
}
