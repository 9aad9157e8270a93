//! REST Proxy v3's produce API on `brook server`, with a real HTTP client on loopback and
//! a real broker: 10,000 records streamed in one chunked request land in order with one
//! delivery report each; single records get their report as the answer; bad requests get
//! REST Proxy's error shape, and a bad record in a stream gets its own report without
//! ending the stream.

use brook_tests::{broker, free_port, murmur2_partition, unique, BrookRun};
use serde_json::{json, Value};
use std::time::Duration;

fn serve() -> (BrookRun, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = std::env::temp_dir().join(unique("brook-state"));
    let server = BrookRun::serve(
        "rest-proxy",
        &broker().bootstrap,
        &listen,
        &unique("svc"),
        &state.display().to_string(),
    );
    (server, format!("http://{listen}"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn get(url: &str) -> (u16, Value) {
    let mut response = agent().get(url).call().expect("GET");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&body).expect("JSON"))
}

/// POSTs `body` with a length (one record): the status and the answer.
fn post(url: &str, body: &str) -> (u16, Value) {
    let mut response = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .expect("POST");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// POSTs `body` chunked (a stream of records): every report, in order.
fn post_streamed(url: &str, body: Vec<u8>) -> Vec<Value> {
    let mut reader = std::io::Cursor::new(body);
    let response = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(ureq::SendBody::from_reader(&mut reader))
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let reader = response.into_body().into_reader();
    serde_json::Deserializer::from_reader(reader)
        .into_iter::<Value>()
        .map(|r| r.expect("a JSON report"))
        .collect()
}

#[test]
fn ten_thousand_streamed_records_land_in_order_with_a_report_each() {
    let b = broker();
    let topic = unique("rp_records");
    b.create_topic(&topic, 1);
    let (_server, base) = serve();
    let cluster = b.cluster_id();
    let (status, clusters) = get(&format!("{base}/v3/clusters"));
    assert_eq!(status, 200, "{clusters}");
    assert_eq!(clusters["kind"], "KafkaClusterList");
    assert_eq!(clusters["data"][0]["cluster_id"], cluster.as_str());
    let (status, one) = get(&format!("{base}/v3/clusters/{cluster}"));
    assert_eq!((status, &one["cluster_id"]), (200, &json!(cluster)));

    let url = format!("{base}/v3/clusters/{cluster}/topics/{topic}/records");
    let n = 10_000;
    let mut body = Vec::new();
    for i in 0..n {
        let record = json!({
            "key": {"type": "STRING", "data": format!("k{i}")},
            "value": {"type": "JSON", "data": {"n": i, "name": format!("r{i}")}},
            "headers": [{"name": "seq", "value": base64_of(&i.to_string())}],
        });
        body.extend_from_slice(record.to_string().as_bytes());
    }
    let reports = post_streamed(&url, body);
    assert_eq!(reports.len(), n, "one report per record");
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["error_code"], 200, "record {i}: {r}");
        assert_eq!(r["offset"], i as i64, "record {i}: {r}");
        assert_eq!(r["topic_name"], topic.as_str());
        assert_eq!(r["cluster_id"], cluster.as_str());
        assert_eq!(r["key"]["type"], "STRING");
        assert_eq!(r["key"]["size"], format!("k{i}").len());
        assert_eq!(r["value"]["type"], "JSON");
    }
    let records = b.read_topic(&topic, n, Duration::from_secs(60));
    assert_eq!(records.len(), n);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.key_str(), format!("k{i}"));
        assert_eq!(r.value_json(), json!({"n": i, "name": format!("r{i}")}));
        assert_eq!(r.header("seq"), Some(i.to_string().as_str()));
    }
}

fn base64_of(text: &str) -> String {
    // The test's own encoder keeps the test independent of the server's decoder.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn single_records_and_bad_requests() {
    let b = broker();
    let topic = unique("rp_single");
    b.create_topic(&topic, 4);
    let (_server, base) = serve();
    let cluster = b.cluster_id();
    let url = format!("{base}/v3/clusters/{cluster}/topics/{topic}/records");

    // A keyed record goes where Java clients put it; BINARY data is base64; the
    // timestamp is the record's.
    let (status, report) = post(
        &url,
        &json!({
            "key": {"type": "BINARY", "data": base64_of("user-7")},
            "value": {"type": "STRING", "data": "hello"},
            "timestamp": "2026-12-01T10:00:00Z",
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{report}");
    let expected = murmur2_partition(b"user-7", 4);
    assert_eq!(report["partition_id"], expected);
    assert_eq!(report["timestamp"], "2026-12-01T10:00:00.000Z");
    assert_eq!(report["value"], json!({"type": "STRING", "size": 5}));
    let records = b.read_topic(&topic, 1, Duration::from_secs(30));
    assert_eq!(records[0].key.as_deref(), Some(&b"user-7"[..]));
    assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(records[0].partition, expected);
    // An explicit partition wins.
    let (status, report) = post(
        &url,
        r#"{"partition_id": 3, "value": {"type": "JSON", "data": [1, 2]}}"#,
    );
    assert_eq!(
        (status, &report["partition_id"]),
        (200, &json!(3)),
        "{report}"
    );

    // Bad requests: REST Proxy's shape, the request's status.
    let cases = [
        ("{not json", 400, "Invalid JSON"),
        (
            r#"{"value": {"type": "BINARY", "data": "***"}}"#,
            400,
            "base64",
        ),
        (
            r#"{"value": {"type": "XML", "data": "x"}}"#,
            400,
            "Unknown data type XML",
        ),
        (
            r#"{"value": {"type": "STRING", "data": 5}}"#,
            400,
            "STRING data must be a string",
        ),
        (r#"{"partitions": 1}"#, 400, "unknown field"),
        (r#"{"timestamp": "yesterday"}"#, 400, "timestamp"),
        (r#"{"partition_id": 9, "value": {"data": 1}}"#, 404, ""),
    ];
    for (body, code, message) in cases {
        let (status, answer) = post(&url, body);
        assert_eq!(status, code, "{body}: {answer}");
        assert_eq!(answer["error_code"], code, "{body}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{body}: {answer}"
        );
    }
    let (status, answer) = post(
        &format!("{base}/v3/clusters/{cluster}/topics/no_such_topic_here/records"),
        r#"{"value": {"data": 1}}"#,
    );
    assert_eq!(
        (status, &answer["error_code"]),
        (404, &json!(404)),
        "{answer}"
    );
    let (status, answer) = post(
        &format!("{base}/v3/clusters/not-{cluster}/topics/{topic}/records"),
        r#"{"value": {"data": 1}}"#,
    );
    assert_eq!(status, 404, "{answer}");
    assert!(answer["message"]
        .as_str()
        .is_some_and(|m| m.contains("cannot be found")));

    // In a stream, a bad record has its own report and the others go on.
    let body = [
        r#"{"value": {"data": {"n": 1}}}"#,
        r#"{"value": {"type": "BINARY", "data": "***"}}"#,
        r#"{"value": {"data": {"n": 3}}}"#,
    ]
    .join("\n");
    let reports = post_streamed(&url, body.into_bytes());
    let codes: Vec<&Value> = reports.iter().map(|r| &r["error_code"]).collect();
    assert_eq!(
        codes,
        [&json!(200), &json!(400), &json!(200)],
        "{reports:?}"
    );
    // A stream broken by bad JSON ends with a report that says why.
    let reports = post_streamed(&url, br#"{"value": {"data": 1}} {oops"#.to_vec());
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[1]["error_code"], 400);
}
