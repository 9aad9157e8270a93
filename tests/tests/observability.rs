//! What an operator and an autoscaler read, on a real broker: `/metrics` after a known
//! workload (records in and out exact, processing errors counted, lag falling to 0, HTTP
//! requests counted), DESCRIBE EXTENDED's statistics from the same counts, `/scaling`'s
//! desired replicas for a known backlog (a paused query), and `brook run
//! --metrics-listen`.

use brook_tests::{
    broker, free_port, metric_sample, recent_timestamp, unique, wait_for, BrookRun, Http,
};
use serde_json::{json, Value};
use std::time::Duration;

/// A server of a service of its own on the test broker, and a client of it.
fn serve(name: &str) -> (BrookRun, Http) {
    serve_service(name, &unique("svc"), &[])
}

/// A server of `service`, with more arguments.
fn serve_service(name: &str, service: &str, extra: &[&str]) -> (BrookRun, Http) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = std::env::temp_dir().join(unique("brook-state"));
    let server = BrookRun::serve_with(
        name,
        &broker().bootstrap,
        &listen,
        service,
        &state.display().to_string(),
        extra,
    );
    (server, Http::new(port))
}

/// `count` JSON records `{"n": i}` keyed `k<i>` (spread over partitions by key), every
/// `bad_every`-th one not JSON at all.
fn records(count: i64, bad_every: i64) -> Vec<brook_tests::Input> {
    let base = recent_timestamp();
    (0..count)
        .map(|i| {
            let value = if bad_every > 0 && i % bad_every == 0 {
                b"not json".to_vec()
            } else {
                json!({"n": i}).to_string().into_bytes()
            };
            (Some(format!("k{i}").into_bytes()), Some(value), base + i)
        })
        .collect()
}

fn metrics(http: &Http) -> String {
    let (status, text) = http.get("/metrics").expect("the server answers /metrics");
    assert_eq!(status, 200, "{text}");
    text
}

fn query_id(http: &Http, sink: &str) -> String {
    let (_, answer) = http.ksql("SHOW QUERIES;");
    answer[0]["queries"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["sinks"][0].as_str() == Some(sink)))
        .and_then(|q| q["id"].as_str())
        .unwrap_or_else(|| panic!("no query writes {sink}: {answer}"))
        .to_string()
}

fn describe_extended(http: &Http, source: &str) -> Value {
    let (status, answer) = http.ksql(&format!("DESCRIBE {source} EXTENDED;"));
    assert_eq!(status, 200, "{answer}");
    answer[0]["sourceDescription"].clone()
}

#[test]
fn metrics_and_describe_extended_count_a_known_workload() {
    let b = broker();
    let (input, output) = (unique("obs_in"), unique("obs_out"));
    b.create_topic(&input, 4);
    let (_server, http) = serve("observability");
    let (status, answer) = http.ksql(&format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM obs_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM obs_out WITH (kafka_topic = '{output}', partitions = 4) AS SELECT k, n * 2 AS twice FROM obs_in WHERE n % 2 = 1;"
    ));
    assert_eq!(status, 200, "{answer}");
    // 1000 records: 100 are not JSON (processing errors); of the 900 others, the odd n
    // pass the filter (every bad one has n % 10 = 0, so all 500 odd ones are good).
    b.produce(&input, &records(1000, 10));
    let out = b.read_topic(&output, 500, Duration::from_secs(60));
    assert_eq!(out.len(), 500);
    let query = query_id(&http, "OBS_OUT");

    // Lag is what the group committed against the partitions' ends: 0 once the last
    // commit is in.
    let text = wait_for(Duration::from_secs(60), || {
        let text = metrics(&http);
        let lag = metric_sample(&text, "brook_consumer_lag_records", &[("name", &query)]);
        let consumed = metric_sample(
            &text,
            "brook_query_consumed_records_total",
            &[("query", &query), ("topic", &input)],
        );
        (lag == Some(0.0) && consumed == Some(1000.0)).then_some(text)
    })
    .unwrap_or_else(|| panic!("the lag never fell to 0:\n{}", metrics(&http)));
    let bytes: usize = records(1000, 10)
        .iter()
        .map(|(k, v, _)| k.as_ref().map_or(0, Vec::len) + v.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        metric_sample(
            &text,
            "brook_query_consumed_bytes_total",
            &[("query", &query), ("topic", &input)]
        ),
        Some(bytes as f64)
    );
    assert_eq!(
        metric_sample(
            &text,
            "brook_query_produced_records_total",
            &[("query", &query), ("topic", &output)]
        ),
        Some(500.0)
    );
    assert_eq!(
        metric_sample(
            &text,
            "brook_query_processing_errors_total",
            &[("query", &query)]
        ),
        Some(100.0)
    );
    // One sample of the latency per output record.
    assert_eq!(
        metric_sample(
            &text,
            "brook_query_end_to_end_latency_seconds_count",
            &[("query", &query)]
        ),
        Some(500.0)
    );
    assert!(
        metric_sample(
            &text,
            "brook_query_commit_duration_seconds_count",
            &[("query", &query)]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // The partitions of the input are each a series of the lag.
    for partition in 0..4 {
        let p = partition.to_string();
        assert_eq!(
            metric_sample(
                &text,
                "brook_consumer_lag_records",
                &[("name", &query), ("topic", &input), ("partition", &p)]
            ),
            Some(0.0),
            "partition {p}"
        );
    }
    assert!(
        metric_sample(
            &text,
            "brook_http_requests_total",
            &[("method", "POST"), ("route", "/ksql"), ("status", "200")]
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        metric_sample(&text, "brook_process_resident_memory_bytes", &[]).is_some_and(|m| m > 1e6)
    );
    assert!(metric_sample(&text, "brook_process_cpu_seconds_total", &[]).is_some_and(|s| s > 0.0));
    assert_eq!(
        metric_sample(&text, "brook_scaling_desired_replicas", &[]),
        Some(0.0)
    );

    // DESCRIBE EXTENDED: the same counts, per topic, as ksqlDB words them.
    let source = describe_extended(&http, "obs_in");
    let statistics = source["statistics"].as_str().unwrap_or_default();
    assert!(
        statistics.contains("consumer-total-messages:      1000"),
        "{source}"
    );
    assert!(statistics.contains(&format!("consumer-total-bytes:{bytes:>10}")));
    assert!(statistics.contains("last-message:"), "{statistics}");
    let errors = source["errorStats"].as_str().unwrap_or_default();
    assert!(
        errors.contains("consumer-failed-messages:       100"),
        "{source}"
    );
    assert_eq!(source["partitions"], 4);
    assert_eq!(source["replication"], 1);
    let sink = describe_extended(&http, "obs_out");
    let statistics = sink["statistics"].as_str().unwrap_or_default();
    assert!(statistics.contains("total-messages:       500"), "{sink}");
    assert_eq!(sink["errorStats"], "");
    // Plain DESCRIBE has no runtime figures.
    let (_, plain) = http.ksql("DESCRIBE obs_in;");
    assert_eq!(plain[0]["sourceDescription"]["statistics"], "");

    // Terminated, the query's series go; the topic's figures stay.
    let (status, answer) = http.ksql(&format!("TERMINATE {query};"));
    assert_eq!(status, 200, "{answer}");
    let text = metrics(&http);
    assert!(!text.contains(&format!("query=\"{query}\"")), "{text}");
    assert!(!text.contains(&format!("name=\"{query}\"")), "{text}");
}

#[test]
fn scaling_asks_for_one_replica_per_threshold_of_lag_up_to_the_partitions() {
    let b = broker();
    let (input, output) = (unique("scale_in"), unique("scale_out"));
    b.create_topic(&input, 8);
    let service = unique("scale_svc");
    let (_server, http) = serve_service("scaling", &service, &[]);
    let (status, answer) = http.ksql(&format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM scale_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM scale_out WITH (kafka_topic = '{output}') AS SELECT * FROM scale_in;"
    ));
    assert_eq!(status, 200, "{answer}");
    let query = query_id(&http, "SCALE_OUT");
    let scaling = || {
        let (status, body) = http.get("/scaling").expect("the server answers /scaling");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    // Nothing behind: nothing asked for, so that a platform can scale to zero.
    let idle = scaling();
    assert_eq!(idle["desiredReplicas"], 0, "{idle}");
    assert_eq!(idle["lagThreshold"], 1000);

    let (status, answer) = http.ksql(&format!("PAUSE {query};"));
    assert_eq!(status, 200, "{answer}");
    let (_, queries) = http.ksql("SHOW QUERIES;");
    assert_eq!(queries[0]["queries"][0]["state"], "PAUSED", "{queries}");
    b.produce(&input, &records(10_000, 0));
    let behind = wait_for(Duration::from_secs(30), || {
        let s = scaling();
        (s["totalLag"] == 10_000).then_some(s)
    })
    .unwrap_or_else(|| panic!("the lag never reached 10000: {}", scaling()));
    // ceil(10000 / 1000) = 10, capped at the 8 partitions.
    assert_eq!(behind["desiredReplicas"], 8, "{behind}");
    assert_eq!(behind["maxPartitions"], 8);
    assert_eq!(behind["queries"][0]["name"], query.as_str());
    assert_eq!(behind["queries"][0]["lag"], 10_000);
    assert_eq!(
        behind["queries"][0]["partitionLags"]
            .as_array()
            .map(Vec::len),
        Some(8)
    );
    assert_eq!(
        metric_sample(&metrics(&http), "brook_scaling_desired_replicas", &[]),
        Some(8.0)
    );
    // A second replica of the service, with a threshold of its own: it replays the
    // command topic, so its copy of the query is paused too, and it sees the same lag.
    let config = std::env::temp_dir().join(unique("scaling.properties"));
    std::fs::write(&config, "ksql.scaling.lag.threshold=2500\n").expect("config");
    let config = config.display().to_string();
    let (_replica, replica) = serve_service("scaling-replica", &service, &["--config", &config]);
    let seen = wait_for(Duration::from_secs(30), || {
        let (_, body) = replica.get("/scaling")?;
        let s: Value = serde_json::from_str(&body).ok()?;
        (s["totalLag"] == 10_000).then_some(s)
    })
    .expect("the replica sees the backlog");
    assert_eq!(seen["lagThreshold"], 2500);
    assert_eq!(seen["desiredReplicas"], 4, "{seen}");
    let (_, queries) = replica.ksql("SHOW QUERIES;");
    assert_eq!(queries[0]["queries"][0]["state"], "PAUSED", "{queries}");
    // Nothing was processed while paused.
    assert!(b.read_topic(&output, 1, Duration::from_secs(2)).is_empty());

    let (status, answer) = http.ksql(&format!("RESUME {query};"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        b.read_topic(&output, 10_000, Duration::from_secs(120))
            .len(),
        10_000
    );
    let caught_up = wait_for(Duration::from_secs(60), || {
        let s = scaling();
        (s["totalLag"] == 0).then_some(s)
    })
    .unwrap_or_else(|| panic!("the lag never fell to 0: {}", scaling()));
    assert_eq!(caught_up["desiredReplicas"], 0);
    // Both replicas resumed and shared the work: nothing is behind for either.
    let replica_idle = wait_for(Duration::from_secs(60), || {
        let (_, body) = replica.get("/scaling")?;
        let s: Value = serde_json::from_str(&body).ok()?;
        (s["totalLag"] == 0).then_some(s)
    });
    assert!(replica_idle.is_some());
    let (_, queries) = http.ksql("SHOW QUERIES;");
    assert_eq!(queries[0]["queries"][0]["state"], "RUNNING", "{queries}");
    let (status, answer) = http.ksql("PAUSE NO_SUCH_QUERY;");
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown queryId")),
        "{answer}"
    );
}

#[test]
fn a_bad_lag_threshold_is_refused_at_start() {
    let config = std::env::temp_dir().join(unique("bad.properties"));
    std::fs::write(&config, "ksql.scaling.lag.threshold=many\n").expect("config");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let server = BrookRun::start_server(
        "bad-threshold",
        &[
            "--listen",
            &listen,
            "--bootstrap-servers",
            &broker().bootstrap,
            "--config",
            &config.display().to_string(),
        ],
    );
    let (status, _, stderr) = server.wait(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        stderr.contains("ksql.scaling.lag.threshold must be a positive whole number, not 'many'"),
        "{stderr}"
    );
}

#[test]
fn brook_run_serves_metrics_while_it_runs() {
    let b = broker();
    let (input, output) = (unique("run_obs_in"), unique("run_obs_out"));
    b.create_topic(&input, 2);
    b.produce(&input, &records(200, 0));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM run_obs_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM run_obs_out WITH (kafka_topic = '{output}') AS SELECT * FROM run_obs_in;"
    );
    let state = std::env::temp_dir().join(unique("brook-state"));
    let state = state.display().to_string();
    let service = unique("run_obs_svc");
    let run = BrookRun::start(
        "run-metrics",
        &sql,
        &[
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &service,
            "--state-dir",
            &state,
            "--metrics-listen",
            &listen,
        ],
    );
    let http = Http::new(port);
    let counted = wait_for(Duration::from_secs(60), || {
        let (_, text) = http.get("/metrics")?;
        (metric_sample(
            &text,
            "brook_query_produced_records_total",
            &[("topic", &output)],
        ) == Some(200.0))
        .then_some(text)
    });
    assert!(counted.is_some(), "stderr:\n{}", run.stderr());
    let (status, body) = http.get("/scaling").expect("/scaling");
    assert_eq!(status, 200, "{body}");
    // Only the figures are served there, not the statement API.
    let (status, _) = http.post("/ksql", r#"{"ksql": "SHOW QUERIES;"}"#);
    assert_eq!(status, 404);
    assert!(run.terminate().success());
}

#[test]
fn json_logs_name_the_query_and_limit_per_record_warnings() {
    let b = broker();
    let (input, output) = (unique("log_in"), unique("log_out"));
    b.create_topic(&input, 1);
    // 40 records that are not JSON, then one that is.
    let mut bad = records(40, 1);
    bad.extend(
        records(1, 0)
            .into_iter()
            .map(|(k, _, t)| (k, Some(json!({"n": 40}).to_string().into_bytes()), t)),
    );
    b.produce(&input, &bad);
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM log_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM log_out WITH (kafka_topic = '{output}') AS SELECT * FROM log_in;"
    );
    let state = std::env::temp_dir().join(unique("brook-state"));
    let state = state.display().to_string();
    let service = unique("log_svc");
    let run = BrookRun::start(
        "json-logs",
        &sql,
        &[
            "--log-format",
            "json",
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &service,
            "--state-dir",
            &state,
        ],
    );
    assert_eq!(b.read_topic(&output, 1, Duration::from_secs(60)).len(), 1);
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let errors: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("processing error"))
        })
        .collect();
    // The topic has all 40; the log at most 10 per 10 s.
    assert_eq!(errors.len(), 10, "{stderr}");
    for e in &errors {
        assert_eq!(e["level"], "WARN");
        assert_eq!(e["span"]["name"], "query", "{e}");
        assert!(
            e["span"]["query_id"]
                .as_str()
                .is_some_and(|q| q.starts_with("CSAS_LOG_OUT")),
            "{e}"
        );
    }
    let log_topic = format!("{service}ksql_processing_log");
    assert_eq!(
        b.read_topic(&log_topic, 40, Duration::from_secs(30)).len(),
        40
    );
}

/// The query's line of SHOW USAGE.
fn usage_of(http: &Http, query: &str) -> Option<Value> {
    let (_, answer) = http.ksql("SHOW USAGE;");
    answer[0]["usage"]
        .as_array()?
        .iter()
        .find(|u| u["queryId"] == query)
        .cloned()
}

#[test]
fn usage_records_sum_to_what_a_query_read_wrote_and_holds() {
    let b = broker();
    let (input, output) = (unique("usage_in"), unique("usage_out"));
    b.create_topic(&input, 2);
    let config = std::env::temp_dir().join(unique("usage.properties"));
    std::fs::write(&config, "ksql.usage.interval.ms=500\n").expect("config");
    let config = config.display().to_string();
    let service = unique("usage_svc");
    let (_server, http) = serve_service("usage", &service, &["--config", &config]);
    let (status, answer) = http.ksql(&format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'cache.max.bytes.buffering' = '0';
         CREATE STREAM usage_in (k STRING KEY, n BIGINT) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE TABLE usage_out WITH (kafka_topic = '{output}') AS SELECT k, COUNT(*) AS c FROM usage_in GROUP BY k;"
    ));
    assert_eq!(status, 200, "{answer}");
    let input_records = records(300, 0);
    let bytes_read: usize = input_records
        .iter()
        .map(|(k, v, _)| k.as_ref().map_or(0, Vec::len) + v.as_ref().map_or(0, Vec::len))
        .sum();
    b.produce(&input, &input_records);
    let written = b.read_topic(&output, 300, Duration::from_secs(60));
    assert_eq!(written.len(), 300);
    let bytes_written: usize = written
        .iter()
        .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
        .sum();
    let query = query_id(&http, "USAGE_OUT");

    // The usage topic, summed by SHOW USAGE, reaches what the query did.
    let usage = wait_for(Duration::from_secs(60), || {
        let u = usage_of(&http, &query)?;
        (u["recordsRead"] == 300 && u["recordsWritten"] == 300).then_some(u)
    })
    .unwrap_or_else(|| {
        panic!(
            "usage never reached the records: {}",
            http.ksql("SHOW USAGE;").1
        )
    });
    assert_eq!(usage["bytesRead"], bytes_read, "{usage}");
    assert_eq!(usage["bytesWritten"], bytes_written, "{usage}");
    assert!(
        usage["cpuSeconds"].as_f64().is_some_and(|s| s > 0.0),
        "{usage}"
    );
    assert!(
        usage["stateBytes"].as_u64().is_some_and(|s| s > 0),
        "{usage}"
    );
    assert!(
        usage["intervals"].as_u64().is_some_and(|n| n >= 1),
        "{usage}"
    );
    // Its store's changelog writes are counted apart: as many records and bytes as the
    // changelog topic holds.
    let changelog = b
        .topic_names()
        .into_iter()
        .find(|t| t.contains(query.as_str()) && t.ends_with("-changelog"))
        .expect("the query's changelog topic");
    let held: i64 = (0..b.partitions(&changelog).unwrap_or(0))
        .map(|p| {
            let (low, high) = b.watermarks(&changelog, p);
            high - low
        })
        .sum();
    let changes = b.read_topic(&changelog, held as usize, Duration::from_secs(30));
    let change_bytes: usize = changes
        .iter()
        .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
        .sum();
    assert!(!changes.is_empty());
    let counted = wait_for(Duration::from_secs(30), || {
        let u = usage_of(&http, &query)?;
        (u["changelogRecordsWritten"] == changes.len()).then_some(u)
    });
    let counted = counted.unwrap_or_else(|| {
        panic!(
            "{} changelog records, usage: {}",
            changes.len(),
            http.ksql("SHOW USAGE;").1
        )
    });
    assert_eq!(counted["changelogBytesWritten"], change_bytes, "{counted}");

    // Each record is one query, process and interval, keyed so that compaction keeps it.
    let topic = format!("{service}ksql_usage");
    let records = b.read_topic(&topic, 1, Duration::from_secs(10));
    let mine: Vec<Value> = records
        .iter()
        .map(|r| r.value_json())
        .filter(|v| v["query_id"] == query.as_str())
        .collect();
    assert!(!mine.is_empty());
    let summed: u64 = mine
        .iter()
        .map(|v| v["records_read"].as_u64().unwrap_or(0))
        .sum();
    assert!(summed <= 300);
    for r in records
        .iter()
        .filter(|r| r.value_json()["query_id"] == query.as_str())
    {
        let v = r.value_json();
        assert_eq!(v["service_id"], service.as_str());
        assert!(v["window_end"].as_i64() > v["window_start"].as_i64(), "{v}");
        assert_eq!(
            r.key_str(),
            format!(
                "{query}/{}/{}",
                v["process_id"].as_str().unwrap_or(""),
                v["window_start"]
            )
        );
    }
    assert_eq!(
        b.topic_config(&topic, "cleanup.policy").as_deref(),
        Some("compact")
    );
    // /metrics has the same CPU and state figures.
    let text = metrics(&http);
    assert!(
        metric_sample(&text, "brook_query_cpu_seconds_total", &[("query", &query)])
            .is_some_and(|s| s > 0.0)
    );
    assert!(
        metric_sample(&text, "brook_query_state_bytes", &[("query", &query)])
            .is_some_and(|s| s > 0.0)
    );
}
