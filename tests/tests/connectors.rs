//! Sink connectors on a real broker, delivering to a real HTTP endpoint on loopback that
//! records what it gets: batch and pending-request limits, at-least-once across failures
//! of the endpoint and of brook, offset order with one request in flight, dead letters,
//! failed tasks and their restart, the connector statements' entities and Kafka
//! Connect's REST API, and connectors restored from the command topic.

use brook_tests::{
    broker, free_port, recent_timestamp, records_of, unique, wait_for, BrookRun, Endpoint, Http,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// Records k0.. with values {"n": i}; those whose i is in `bad` carry a marker the
/// endpoint can be told to refuse.
fn records(from: i64, to: i64, bad: &dyn Fn(i64) -> bool) -> Vec<brook_tests::Input> {
    let base = recent_timestamp();
    (from..to)
        .map(|i| {
            let value = if bad(i) {
                json!({"n": i, "bad": true})
            } else {
                json!({"n": i})
            };
            (
                Some(format!("k{i}").into_bytes()),
                Some(value.to_string().into_bytes()),
                base + i,
            )
        })
        .collect()
}

struct Server {
    run: BrookRun,
    http: Http,
    service: String,
    state: String,
}

fn serve(name: &str) -> Server {
    serve_as(name, &unique("svc"), &unique("brook-state"))
}

/// A server of `service`; its consumers are static members named after the service, so a
/// server restarted after `kill -9` takes its partitions back at once.
fn serve_as(name: &str, service: &str, state: &str) -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = std::env::temp_dir().join(state).display().to_string();
    let instance = format!("{service}-server");
    let run = BrookRun::serve_with(
        name,
        &broker().bootstrap,
        &listen,
        service,
        &state,
        &["--instance-id", &instance],
    );
    Server {
        run,
        http: Http::new(port),
        service: service.to_string(),
        state,
    }
}

fn ok(http: &Http, sql: &str) -> Value {
    let (status, answer) = http.ksql(sql);
    assert_eq!(status, 200, "{sql}: {answer}");
    answer
}

/// Creates the Azure Functions sink `name` of `topic` to `endpoint`, with `extra`
/// properties (`'k' = 'v', ...`) besides the URL, key and topic.
fn create_fn_sink(http: &Http, name: &str, endpoint: &Endpoint, topic: &str, extra: &str) {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    ok(
        http,
        &format!(
            "CREATE SINK CONNECTOR `{name}` WITH ('connector.class' = 'AzureFunctionsSink',
               'function.url' = '{}', 'function.key' = 'k', 'topics' = '{topic}'{extra});",
            endpoint.url()
        ),
    );
}

/// A connector's Kafka Connect status.
fn status(http: &Http, name: &str) -> Value {
    let (code, body) = http.call("GET", &format!("/connectors/{name}/status"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

fn task_figure(status: &Value, field: &str) -> u64 {
    status["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t[field].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until the endpoint has acknowledged every offset of `topic`'s partitions;
/// returns how many distinct records it got.
fn wait_delivered(endpoint: &Endpoint, expected: usize) -> BTreeSet<(i64, i64)> {
    let got = wait_for(LONG, || {
        let delivered: BTreeSet<(i64, i64)> = endpoint.delivered().into_iter().collect();
        (delivered.len() >= expected).then_some(delivered)
    });
    got.unwrap_or_else(|| {
        let delivered: BTreeSet<(i64, i64)> = endpoint.delivered().into_iter().collect();
        panic!("the endpoint got {} of {expected} records", delivered.len())
    })
}

/// Every offset of every partition of `topic`, as the broker has them.
fn all_offsets(topic: &str) -> BTreeSet<(i64, i64)> {
    let b = broker();
    (0..b.partitions(topic).unwrap_or(0))
        .flat_map(|p| {
            let (low, high) = b.watermarks(topic, p);
            (low..high).map(move |o| (p as i64, o))
        })
        .collect()
}

#[test]
fn batches_and_pending_requests_stay_within_their_limits_and_every_record_arrives() {
    let b = broker();
    let topic = unique("trades");
    b.create_topic(&topic, 4);
    let n = 100_000;
    b.produce(&topic, &records(0, n, &|_| false));
    let endpoint = Endpoint::start();
    endpoint.set_delay(Duration::from_millis(20));
    let secrets = std::env::temp_dir().join(unique("secrets"));
    std::fs::write(&secrets, "function.key=s3cret-key\n").unwrap();
    let server = serve("sink-limits");
    let name = unique("fn_sink");
    let answer = ok(
        &server.http,
        &format!(
            "CREATE SINK CONNECTOR `{name}` WITH (
               'connector.class' = 'AzureFunctionsSink',
               'function.url' = '{}',
               'function.key' = '${{file:{}:function.key}}',
               'topics' = '{topic}',
               'tasks.max' = '2',
               'max.batch.size' = '500',
               'max.pending.requests' = '4',
               'offset.flush.interval.ms' = '200');",
            endpoint.url(),
            secrets.display()
        ),
    );
    assert_eq!(answer[0]["@type"], "connector_info", "{answer}");
    assert_eq!(answer[0]["info"]["tasks"].as_array().map(Vec::len), Some(2));
    // The secret is stored and shown by reference only.
    assert!(answer[0]["info"]["config"]["function.key"]
        .as_str()
        .is_some_and(|k| k.starts_with("${file:")));

    let delivered = wait_delivered(&endpoint, n as usize);
    assert_eq!(
        delivered,
        all_offsets(&topic),
        "every record, at least once"
    );
    let received = endpoint.received();
    let sizes: Vec<usize> = received.iter().map(|r| records_of(&r.body).len()).collect();
    assert!(sizes.iter().all(|&s| (1..=500).contains(&s)), "{sizes:?}");
    assert!(sizes.contains(&500), "batches are filled: {sizes:?}");
    let max_in_flight = received
        .iter()
        .map(|r| r.in_flight_of_agent)
        .max()
        .unwrap_or(0);
    assert!(
        (2..=4).contains(&max_in_flight),
        "a task had {max_in_flight} requests in flight at most"
    );
    let agents: BTreeSet<&str> = received.iter().map(|r| r.user_agent.as_str()).collect();
    assert_eq!(agents.len(), 2, "two tasks: {agents:?}");
    assert!(received
        .iter()
        .all(|r| r.function_key.as_deref() == Some("s3cret-key")));
    // Each batch holds records of one partition, in offset order.
    for r in &received {
        let records = records_of(&r.body);
        assert!(records
            .windows(2)
            .all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1));
    }
    // The group commits the end of every partition.
    let ends: Vec<i64> = (0..4).map(|p| b.watermarks(&topic, p).1).collect();
    let committed = wait_for(LONG, || {
        let committed = b.committed(&format!("connect-{name}"), &topic);
        (committed == ends).then_some(committed)
    });
    assert_eq!(committed, Some(ends));
    let s = status(&server.http, &name);
    assert_eq!(s["connector"]["state"], "RUNNING", "{s}");
    assert!(task_figure(&s, "records_sent") >= n as u64, "{s}");
    // `/metrics` counts the same: records sent by the two tasks, none left to read.
    let (_, text) = server.http.get("/metrics").expect("/metrics");
    let figure = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(&format!("connector=\"{name}\"")))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    };
    assert!(
        figure("brook_connector_records_sent_total{") >= n as f64,
        "{text}"
    );
    assert_eq!(figure("brook_connector_tasks_running{"), 2.0, "{text}");
    let lag: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("brook_consumer_lag_records{")
                && l.contains("kind=\"connector\"")
                && l.contains(&format!("name=\"{name}\""))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(lag, 0.0, "{text}");
    assert!(text.contains(&format!("name=\"{name}\"")), "{text}");
    server.run.terminate();
}

#[test]
fn committed_offsets_never_pass_an_unanswered_batch() {
    let b = broker();
    let topic = unique("stalled");
    b.create_topic(&topic, 1);
    b.produce(&topic, &records(0, 60, &|_| false));
    let endpoint = Endpoint::start();
    let server = serve("sink-stall");
    let name = unique("stall_sink");
    // The first batch's answer is held: the batches behind it are answered, but the
    // partition's offset cannot be committed past the first one's start.
    endpoint.stall(true);
    create_fn_sink(
        &server.http,
        &name,
        &endpoint,
        &topic,
        "'max.batch.size' = '10', 'max.pending.requests' = '3', 'offset.flush.interval.ms' = '50'",
    );
    let group = format!("connect-{name}");
    assert!(
        wait_for(LONG, || (endpoint.arrived() >= 3).then_some(())).is_some(),
        "three requests in flight"
    );
    // While they are held, several commit intervals pass and nothing is committed.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        assert_eq!(
            b.committed(&group, &topic),
            vec![-1],
            "committed while unanswered"
        );
    }
    assert_eq!(endpoint.arrived(), 3, "no more than 3 requests in flight");
    endpoint.stall(false);
    wait_delivered(&endpoint, 60);
    assert_eq!(
        wait_for(LONG, || {
            let c = b.committed(&group, &topic);
            (c == vec![60]).then_some(c)
        }),
        Some(vec![60])
    );
    server.run.terminate();
}

#[test]
fn one_pending_request_keeps_offset_order_through_refused_connections_and_503s() {
    let b = broker();
    let topic = unique("ordered");
    b.create_topic(&topic, 4);
    b.produce(&topic, &records(0, 2000, &|_| false));
    let first = Endpoint::start();
    let port = first.port;
    let server = serve("sink-order");
    let name = unique("order_sink");
    create_fn_sink(
        &server.http,
        &name,
        &first,
        &topic,
        "'max.batch.size' = '50', 'offset.flush.interval.ms' = '100', 'request.timeout.ms' = '2000'",
    );
    first.set_delay(Duration::from_millis(5));
    assert!(wait_for(LONG, || (first.delivered().len() >= 200).then_some(())).is_some());
    let url = first.url();
    let before = first.stop();
    // Connections are refused now: the task retries, and says so in its status.
    b.produce(&topic, &records(2000, 4000, &|_| false));
    assert!(
        wait_for(LONG, || (task_figure(
            &status(&server.http, &name),
            "retries"
        ) > 0)
            .then_some(()))
        .is_some(),
        "retries show in the status"
    );
    // Then the endpoint is back, answering 503 for a while before it recovers.
    let second = Endpoint::start_on(port);
    assert_eq!(second.url(), url);
    second.fail_for(503, Duration::from_secs(5));
    wait_delivered(&second, 0);
    let all = all_offsets(&topic);
    let got = wait_for(LONG, || {
        let mut got: BTreeSet<(i64, i64)> = before
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| records_of(&r.body))
            .collect();
        got.extend(second.delivered());
        (got == all).then_some(got)
    });
    if got.is_none() {
        let mut got: BTreeSet<(i64, i64)> = before
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| records_of(&r.body))
            .collect();
        got.extend(second.delivered());
        let missing: Vec<_> = all.difference(&got).take(20).collect();
        panic!(
            "{} records missing after the outage, such as {missing:?}; status {}",
            all.len() - got.len(),
            status(&server.http, &name)
        );
    }
    assert!(second.received().iter().any(|r| r.status == 503));
    // Per partition, the answered batches' offsets only go up: no batch overtook a
    // failing one, and none was delivered twice.
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for r in before.iter().chain(second.received().iter()) {
        if r.status != 200 {
            continue;
        }
        for (partition, offset) in records_of(&r.body) {
            let previous = last.insert(partition, offset);
            assert!(
                previous.is_none_or(|p| p < offset),
                "partition {partition}: {offset} after {previous:?}"
            );
        }
    }
    assert_eq!(status(&server.http, &name)["tasks"][0]["state"], "RUNNING");
    server.run.terminate();
}

#[test]
fn refused_records_go_to_the_dead_letter_topic_with_the_reason() {
    let b = broker();
    let topic = unique("dlq_in");
    let dlq = unique("dlq");
    b.create_topic(&topic, 1);
    b.produce(&topic, &records(0, 100, &|i| i % 10 == 3));
    let endpoint = Endpoint::start();
    endpoint.refuse(Some("\"bad\":true"));
    let server = serve("sink-dlq");
    let name = unique("dlq_sink");
    create_fn_sink(
        &server.http,
        &name,
        &endpoint,
        &topic,
        &format!(
            "'max.batch.size' = '10', 'max.pending.requests' = '2', 'errors.tolerance' = 'all',
             'errors.deadletterqueue.topic.name' = '{dlq}',
             'errors.deadletterqueue.context.headers.enable' = 'true'"
        ),
    );
    let good: BTreeSet<(i64, i64)> = (0..100).filter(|i| i % 10 != 3).map(|i| (0, i)).collect();
    let delivered = wait_delivered(&endpoint, good.len());
    assert_eq!(
        delivered, good,
        "the records the endpoint takes, and only them"
    );
    let mut letters = b.read_topic(&dlq, 10, LONG);
    assert_eq!(letters.len(), 10, "{letters:?}");
    // Two requests in flight: dead letters of different batches may come in either order.
    letters.sort_by_key(|l| l.value_json()["n"].as_i64());
    for (letter, i) in letters.iter().zip((0..100).filter(|i| i % 10 == 3)) {
        assert_eq!(letter.key_str(), format!("k{i}"));
        assert_eq!(letter.value_json(), json!({"n": i, "bad": true}));
        assert_eq!(
            letter.header("__connect.errors.topic"),
            Some(topic.as_str())
        );
        assert_eq!(
            letter.header("__connect.errors.offset"),
            Some(i.to_string().as_str())
        );
        assert!(
            letter
                .header("__connect.errors.exception.message")
                .is_some_and(|m| m.contains("400")),
            "{letter:?}"
        );
    }
    assert!(wait_for(LONG, || (task_figure(
        &status(&server.http, &name),
        "dead_letters"
    ) == 10)
        .then_some(()))
    .is_some());

    // The reports, on by default: a result record per delivered record, its value the
    // endpoint's answer, and an error record per refused one, each naming its input.
    let results = b.read_topic(&format!("{name}-success"), good.len(), LONG);
    let reported: BTreeSet<(i64, i64)> = results
        .iter()
        .map(|r| {
            assert_eq!(r.value.as_deref(), Some(b"ok".as_slice()), "{r:?}");
            assert_eq!(r.header("input_record_topic"), Some(topic.as_str()));
            let offset = r.header("input_record_offset").and_then(|o| o.parse().ok());
            assert_eq!(r.key_str(), format!("k{}", offset.unwrap_or(-1)));
            (
                r.header("input_record_partition")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(-1),
                offset.unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(reported, good, "a result record per delivered record");
    let errors = b.read_topic(&format!("{name}-error"), 10, LONG);
    let mut refused: Vec<i64> = errors
        .iter()
        .map(|e| {
            assert_eq!(e.header("status_code"), Some("400"), "{e:?}");
            assert_eq!(e.header("reason_phrase"), Some("Bad Request"), "{e:?}");
            assert_eq!(e.header("url"), Some(endpoint.url().as_str()), "{e:?}");
            assert_eq!(e.header("response_content"), Some("refused"), "{e:?}");
            let value = String::from_utf8_lossy(e.value.as_deref().unwrap_or_default());
            assert!(value.contains("answered 400"), "{value}");
            assert_eq!(e.header("error_message"), Some(value.as_ref()));
            assert!(e
                .header("input_record_timestamp")
                .is_some_and(|t| !t.is_empty()));
            e.header("input_record_offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(-1)
        })
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        (0..100).filter(|i| i % 10 == 3).collect::<Vec<_>>()
    );
    server.run.terminate();
}

#[test]
fn a_failing_task_is_failed_with_its_trace_until_restarted() {
    let b = broker();
    let topic = unique("fail_in");
    b.create_topic(&topic, 1);
    b.produce(&topic, &records(0, 20, &|i| i == 5));
    let endpoint = Endpoint::start();
    endpoint.refuse(Some("\"bad\":true"));
    let server = serve("sink-fail");
    let name = unique("fail_sink");
    create_fn_sink(
        &server.http,
        &name,
        &endpoint,
        &topic,
        "'behavior.on.error' = 'fail', 'offset.flush.interval.ms' = '50',
         'reporter.result.topic.name' = '', 'reporter.error.topic.name' = ' '",
    );
    let failed = wait_for(LONG, || {
        let s = status(&server.http, &name);
        (s["tasks"][0]["state"] == "FAILED").then_some(s)
    })
    .expect("the task fails");
    let trace = failed["tasks"][0]["trace"].as_str().unwrap_or_default();
    assert!(trace.contains("400") && trace.contains("@5"), "{trace}");
    let (_, shown) = server.http.ksql("SHOW CONNECTORS;");
    let listed = shown[0]["connectors"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name.as_str()).cloned())
        .expect("listed");
    assert_eq!(listed["state"], "WARNING (0/1 tasks RUNNING)", "{listed}");
    let delivered: BTreeSet<(i64, i64)> = endpoint.delivered().into_iter().collect();
    assert_eq!(
        delivered,
        (0..5).map(|i| (0, i)).collect(),
        "nothing past the failure"
    );

    endpoint.refuse(None);
    let (code, body) = server.http.call(
        "POST",
        &format!("/connectors/{name}/restart?includeTasks=true&onlyFailed=true"),
        None,
    );
    assert_eq!(code, 202, "{body}");
    let delivered = wait_delivered(&endpoint, 20);
    assert_eq!(delivered, (0..20).map(|i| (0, i)).collect());
    assert_eq!(status(&server.http, &name)["tasks"][0]["state"], "RUNNING");
    // Blank report topic names turn the reports off.
    for suffix in ["success", "error"] {
        assert_eq!(b.partitions(&format!("{name}-{suffix}")), None);
    }
    server.run.terminate();
}

#[test]
fn connector_statements_and_connect_rest_api_and_restarts() {
    let b = broker();
    let topic = unique("rest_in");
    b.create_topic(&topic, 2);
    b.produce(&topic, &records(0, 3000, &|_| false));
    let endpoint = Endpoint::start();
    endpoint.set_delay(Duration::from_millis(30));
    let server = serve("sink-rest");
    let http = &server.http;
    let name = "USER_TRADES_SINK";
    let create = format!(
        "CREATE SINK CONNECTOR user_trades_sink WITH ('connector.class' = 'io.confluent.connect.azure.functions.AzureFunctionsSinkConnector',
           'function.url' = '{}', 'function.key' = 'k', 'topics' = '{topic}',
           'max.batch.size' = '20', 'offset.flush.interval.ms' = '100');",
        endpoint.url()
    );
    ok(http, &format!("CREATE STREAM rest_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{topic}', value_format = 'JSON');"));
    let created = ok(http, &create);
    assert_eq!(created[0]["info"]["name"], name);
    assert_eq!(created[0]["info"]["type"], "sink");
    let (code, again) = http.ksql(&create);
    assert_eq!(code, 400);
    assert!(again["message"]
        .as_str()
        .is_some_and(|m| m.contains(&format!("Connector {name} already exists"))));
    let warned = ok(
        http,
        &create.replace(
            "CONNECTOR user_trades_sink",
            "CONNECTOR IF NOT EXISTS user_trades_sink",
        ),
    );
    assert_eq!(warned[0]["@type"], "warning_entity");

    let listed = ok(http, "SHOW SINK CONNECTORS;");
    assert_eq!(listed[0]["@type"], "connector_list");
    assert_eq!(
        listed[0]["connectors"][0],
        json!({"name": name, "type": "sink",
               "className": "io.confluent.connect.azure.functions.AzureFunctionsSinkConnector",
               "state": "RUNNING (1/1 tasks RUNNING)"})
    );
    assert_eq!(
        ok(http, "SHOW SOURCE CONNECTORS;")[0]["connectors"],
        json!([])
    );
    let plugins = ok(http, "LIST CONNECTOR PLUGINS;");
    assert!(plugins[0]["connectorsPlugins"].as_array().is_some_and(|p| p
        .iter()
        .any(|p| p["className"] == "io.confluent.connect.http.HttpSinkConnector")));
    let described = ok(http, "DESCRIBE CONNECTOR user_trades_sink;");
    assert_eq!(described[0]["@type"], "connector_description");
    assert_eq!(described[0]["topics"], json!([topic]));
    assert_eq!(described[0]["sources"][0]["name"], "REST_IN");
    assert_eq!(described[0]["sources"][0]["type"], "STREAM");
    assert_eq!(described[0]["status"]["tasks"][0]["state"], "RUNNING");
    let (code, refused) = http.ksql("CREATE SINK CONNECTOR jdbc WITH ('connector.class' = 'io.confluent.connect.jdbc.JdbcSinkConnector', 'topics' = 'x');");
    assert_eq!(code, 400);
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("AzureFunctionsSink")),
        "{refused}"
    );

    // Kafka Connect's REST API.
    let (code, names) = http.call("GET", "/connectors", None);
    assert_eq!(
        (code, serde_json::from_str::<Value>(&names).unwrap()),
        (200, json!([name]))
    );
    let second = json!({"name": "second", "config": {
        "connector.class": "HttpSink", "http.api.url": endpoint.url(), "topics": topic,
        "request.body.format": "json", "batch.max.size": "100"}});
    let (code, body) = http.call("POST", "/connectors", Some(&second.to_string()));
    assert_eq!(code, 201, "{body}");
    let (code, _) = http.call("POST", "/connectors", Some(&second.to_string()));
    assert_eq!(code, 409);
    let (code, body) = http.call("GET", "/connectors/second/config", None);
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["http.api.url"],
        endpoint.url()
    );
    let (code, body) = http.call("GET", "/connectors?expand=status", None);
    assert_eq!(code, 200);
    let expanded: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(expanded["second"]["status"]["type"], "sink", "{expanded}");
    let (code, _) = http.call("DELETE", "/connectors/second", None);
    assert_eq!(code, 204);
    let (code, body) = http.call("GET", "/connectors/second/status", None);
    assert_eq!(code, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error_code"],
        404
    );
    let (code, body) = http.call("GET", "/connector-plugins", None);
    assert_eq!(code, 200, "{body}");

    // kill -9 mid-stream: a restarted server restores the connector from the command
    // topic and nothing is lost.
    assert!(wait_for(LONG, || (endpoint.delivered().len() >= 500).then_some(())).is_some());
    let Server {
        run,
        service,
        state,
        ..
    } = server;
    run.kill9();
    let restarted = serve_as("sink-rest-2", &service, &state);
    let http = &restarted.http;
    assert_eq!(
        ok(http, "SHOW CONNECTORS;")[0]["connectors"][0]["name"],
        name,
        "restored from the command topic"
    );
    b.produce(&topic, &records(3000, 4000, &|_| false));
    let all = all_offsets(&topic);
    let got = wait_for(LONG, || {
        let got: BTreeSet<(i64, i64)> = endpoint
            .received()
            .iter()
            .filter(|r| r.status == 200 && r.user_agent.contains(name))
            .flat_map(|r| records_of(&r.body))
            .collect();
        (got == all).then_some(())
    });
    assert!(got.is_some(), "nothing lost across kill -9");

    let dropped = ok(http, "DROP CONNECTOR user_trades_sink;");
    assert_eq!(dropped[0]["@type"], "drop_connector");
    assert_eq!(dropped[0]["connectorName"], name);
    let warned = ok(http, "DROP CONNECTOR IF EXISTS user_trades_sink;");
    assert_eq!(warned[0]["@type"], "warning_entity");
    let (code, _) = http.ksql("DROP CONNECTOR user_trades_sink;");
    assert_eq!(code, 400);
    restarted.run.terminate();
}

#[test]
fn datagen_writes_its_quickstart_records() {
    let b = broker();
    let topic = unique("gen_trades");
    let server = serve("datagen");
    let answer = ok(
        &server.http,
        &format!(
            "CREATE SOURCE CONNECTOR gen WITH ('connector.class' = 'DatagenSource',
               'kafka.topic' = '{topic}', 'quickstart' = 'stock_trades',
               'max.interval' = '1', 'iterations' = '200');"
        ),
    );
    assert_eq!(answer[0]["info"]["type"], "source", "{answer}");
    // Its task creates the topic.
    assert!(wait_for(LONG, || b.partitions(&topic)).is_some());
    let records = b.read_topic(&topic, 200, LONG);
    assert_eq!(records.len(), 200);
    for r in &records {
        let value = r.value_json();
        assert_eq!(value["symbol"], r.key_str().as_str(), "{value}");
        assert!(value["price"].as_u64().is_some() && value["userid"].is_string());
    }
    let (code, wrong) = server.http.ksql(
        "CREATE SINK CONNECTOR gen2 WITH ('connector.class' = 'DatagenSource', 'kafka.topic' = 't', 'quickstart' = 'users');",
    );
    assert_eq!(code, 400);
    assert!(
        wrong["message"]
            .as_str()
            .is_some_and(|m| m.contains("is a source connector")),
        "{wrong}"
    );
    server.run.terminate();
}

#[test]
fn two_servers_of_a_service_share_a_connectors_partitions() {
    let b = broker();
    let topic = unique("shared_in");
    b.create_topic(&topic, 4);
    let endpoint = Endpoint::start();
    endpoint.set_delay(Duration::from_millis(10));
    let service = unique("svc");
    let first = serve_as("sink-shared-1", &service, &unique("brook-state"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = std::env::temp_dir().join(unique("brook-state"));
    let second_run = BrookRun::serve_with(
        "sink-shared-2",
        &b.bootstrap,
        &listen,
        &service,
        &state.display().to_string(),
        &["--instance-id", &format!("{service}-second")],
    );
    let second = Http::new(port);
    let name = unique("shared_sink");
    create_fn_sink(
        &first.http,
        &name,
        &endpoint,
        &topic,
        "'max.batch.size' = '20', 'offset.flush.interval.ms' = '100'",
    );
    // The second server runs it too, from the command topic.
    assert!(
        wait_for(LONG, || {
            let (_, listed) = second.ksql("SHOW CONNECTORS;");
            (listed[0]["connectors"][0]["name"] == name.as_str()).then_some(())
        })
        .is_some(),
        "the other server runs the connector"
    );
    b.produce(&topic, &records(0, 4000, &|_| false));
    let delivered = wait_delivered(&endpoint, 4000);
    assert_eq!(delivered, all_offsets(&topic));
    let workers: BTreeSet<String> = endpoint
        .received()
        .iter()
        .filter_map(|r| r.user_agent.split("worker ").nth(1).map(str::to_string))
        .collect();
    assert_eq!(workers.len(), 2, "both servers delivered: {workers:?}");
    second_run.terminate();
    first.run.terminate();
}

#[test]
fn records_in_other_formats_reach_the_endpoint_as_json() {
    let topic = unique("delimited_in");
    let endpoint = Endpoint::start();
    let server = serve("sink-formats");
    ok(
        &server.http,
        &format!(
            "CREATE STREAM orders (id INT KEY, item STRING, units DOUBLE)
               WITH (kafka_topic = '{topic}', key_format = 'KAFKA', value_format = 'DELIMITED', partitions = 1);
             INSERT INTO orders (id, item, units) VALUES (7, 'apple', 2.5);
             INSERT INTO orders (id, item, units) VALUES (8, 'pear', 1.0);
             CREATE SINK CONNECTOR orders_fn WITH ('connector.class' = 'AzureFunctionsSink',
               'function.url' = '{}', 'function.key' = 'k', 'topics' = '{topic}',
               'max.batch.size' = '10');",
            endpoint.url()
        ),
    );
    wait_delivered(&endpoint, 2);
    let records: Vec<Value> = endpoint
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| r.body.as_array().cloned().unwrap_or_default())
        .collect();
    let pairs: Vec<(Value, Value)> = records
        .iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (json!(7), json!({"ITEM": "apple", "UNITS": 2.5})),
            (json!(8), json!({"ITEM": "pear", "UNITS": 1.0})),
        ]
    );
    server.run.terminate();
}

#[test]
fn a_sink_created_before_its_topic_waits_for_it() {
    let b = broker();
    let topic = unique("later_in");
    let endpoint = Endpoint::start();
    let server = serve("sink-later");
    let name = unique("later_sink");
    create_fn_sink(&server.http, &name, &endpoint, &topic, "");
    b.create_topic(&topic, 1);
    b.produce(&topic, &records(0, 50, &|_| false));
    let delivered = wait_delivered(&endpoint, 50);
    assert_eq!(delivered, all_offsets(&topic));
    assert_eq!(status(&server.http, &name)["tasks"][0]["state"], "RUNNING");
    server.run.terminate();
}

/// The `n` of every record the endpoint answered 200 for (HTTP sink JSON array bodies).
fn delivered_ns(endpoint: &Endpoint) -> BTreeSet<i64> {
    endpoint
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| r.body.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["n"].as_i64())
        .collect()
}

#[test]
fn the_http_sink_authenticates_with_oauth2_client_credentials() {
    let b = broker();
    let topic = unique("oauth_in");
    b.create_topic(&topic, 1);
    b.produce(&topic, &records(0, 30, &|_| false));
    let endpoint = Endpoint::start();
    endpoint.require_oauth2("brook", "s3cret");
    let server = serve("sink-oauth2");
    let http_sink = |name: &str, secret: &str, extra: &str| {
        format!(
            "CREATE SINK CONNECTOR `{name}` WITH ('connector.class' = 'HttpSink',
               'http.api.url' = '{}', 'topics' = '{topic}', 'request.body.format' = 'json',
               'batch.max.size' = '10', 'retry.backoff.ms' = '50', 'auth.type' = 'OAUTH2',
               'oauth2.token.url' = '{}', 'oauth2.client.id' = 'brook',
               'oauth2.client.secret' = '{secret}'{extra});",
            endpoint.url(),
            endpoint.token_url()
        )
    };
    let name = unique("oauth_sink");
    ok(
        &server.http,
        &http_sink(
            &name,
            "s3cret",
            ", 'oauth2.client.headers' = 'X-Tenant: t1|X-Trace: on'",
        ),
    );
    let all = |n: i64| {
        wait_for(LONG, || {
            (delivered_ns(&endpoint) == (0..n).collect()).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "not every record arrived: {:?}; {}",
                delivered_ns(&endpoint),
                status(&server.http, &name)
            )
        })
    };
    all(30);
    // One token serves every request until it is refused; its request carried the
    // configured headers.
    assert_eq!(endpoint.tokens_issued(), 1);
    assert_eq!(
        endpoint.token_request_header("X-Tenant").as_deref(),
        Some("t1")
    );
    assert_eq!(
        endpoint.token_request_header("X-Trace").as_deref(),
        Some("on")
    );
    assert!(endpoint
        .received()
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer token-1")));

    // A refused token is replaced, and the refused request sent again with the new one.
    endpoint.revoke_token();
    b.produce(&topic, &records(30, 60, &|_| false));
    all(60);
    assert_eq!(endpoint.tokens_issued(), 2);
    let received = endpoint.received();
    assert!(
        received.iter().any(|r| r.status == 401),
        "the old token was refused once"
    );
    assert!(received
        .iter()
        .filter(|r| r.status == 200)
        .all(|r| r.authorization.as_deref() != Some("Bearer token-1")
            || r.body
                .as_array()
                .is_some_and(|b| b.iter().all(|v| v["n"].as_i64() < Some(30)))));

    // Credentials the token endpoint refuses fail the task, saying so.
    let refused = unique("oauth_refused");
    ok(
        &server.http,
        &http_sink(&refused, "wrong", ", 'behavior.on.error' = 'fail'"),
    );
    let failed = wait_for(LONG, || {
        let s = status(&server.http, &refused);
        (s["tasks"][0]["state"] == "FAILED").then_some(s)
    })
    .expect("the task with refused credentials fails");
    let trace = failed["tasks"][0]["trace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("no OAuth2 token from") && trace.contains("401"),
        "{trace}"
    );
    assert_eq!(endpoint.tokens_issued(), 2, "no token for the wrong secret");
    server.run.terminate();
}

#[test]
fn a_sink_connectors_usage_is_metered_beside_the_queries() {
    let b = broker();
    let topic = unique("usage_sink_in");
    b.create_topic(&topic, 2);
    let input = records(0, 50, &|_| false);
    let bytes_read: usize = input
        .iter()
        .map(|(k, v, _)| k.as_ref().map_or(0, Vec::len) + v.as_ref().map_or(0, Vec::len))
        .sum();
    b.produce(&topic, &input);
    let endpoint = Endpoint::start();
    let config = std::env::temp_dir().join(unique("usage.properties"));
    std::fs::write(&config, "ksql.usage.interval.ms=500\n").expect("config");
    let port = free_port();
    let state = std::env::temp_dir().join(unique("brook-state"));
    let run = BrookRun::serve_with(
        "sink-usage",
        &b.bootstrap,
        &format!("127.0.0.1:{port}"),
        &unique("svc"),
        &state.display().to_string(),
        &["--config", &config.display().to_string()],
    );
    let http = Http::new(port);
    let name = unique("usage_sink");
    create_fn_sink(&http, &name, &endpoint, &topic, "'max.batch.size' = '10'");
    wait_delivered(&endpoint, 50);
    let usage = wait_for(LONG, || {
        let (_, answer) = http.ksql("SHOW USAGE;");
        let u = answer[0]["usage"]
            .as_array()?
            .iter()
            .find(|u| u["queryId"] == name.as_str())?
            .clone();
        (u["recordsRead"] == 50 && u["recordsWritten"] == 50).then_some(u)
    })
    .unwrap_or_else(|| panic!("no usage of {name}: {}", http.ksql("SHOW USAGE;").1));
    assert_eq!(usage["kind"], "connector", "{usage}");
    assert_eq!(usage["bytesRead"], bytes_read, "{usage}");
    // The request bodies: the records with their topic, partition and offset.
    assert!(
        usage["bytesWritten"].as_u64() > Some(bytes_read as u64),
        "{usage}"
    );
    run.terminate();
}
