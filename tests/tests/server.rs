//! `brook server` over real HTTP on a real broker: statements through `/ksql` (and their
//! errors), rows through `/query-stream`, `/info`, `/healthcheck`, and bad requests.

use brook_tests::{broker, free_port, unique, wait_for, BrookRun, Http};
use serde_json::{json, Value};
use std::time::Duration;

/// A newline-delimited answer (delimited rows, inserts-stream acks), a JSON value a line.
fn json_lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// A server on `listen` for `service`, once it answers `/info`.
fn start_server(
    name: &str,
    broker: &brook_tests::Broker,
    listen: &str,
    service: &str,
    state_dir: &str,
) -> (BrookRun, Http) {
    let server = BrookRun::serve(name, &broker.bootstrap, listen, service, state_dir);
    let port = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    (server, Http::new(port))
}

/// Where a test's server lives: its address, service id and state folder.
struct Place {
    listen: String,
    service: String,
    state: std::path::PathBuf,
    state_arg: String,
}

impl Place {
    /// A free port, a new service id and state folder.
    fn new(service: &str) -> Self {
        let state = std::env::temp_dir().join(unique("brook-state"));
        Self {
            listen: format!("127.0.0.1:{}", free_port()),
            service: unique(service),
            state_arg: state.display().to_string(),
            state,
        }
    }

    fn start(&self, name: &str) -> (BrookRun, Http) {
        start_server(name, broker(), &self.listen, &self.service, &self.state_arg)
    }
}

#[test]
fn statements_queries_and_errors_over_http() {
    let b = broker();
    let place = Place::new("svc");
    let (service, state) = (&place.service, &place.state);
    let (server, http) = place.start("server");
    let info = http.get("/info");
    let (status, info) = info.expect("/info");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["KsqlServerInfo"]["ksqlServiceId"], json!(service));
    assert_eq!(info["KsqlServerInfo"]["serverStatus"], json!("RUNNING"));
    assert_eq!(
        info["KsqlServerInfo"]["kafkaClusterId"],
        json!(b.cluster_id())
    );
    let (status, health) = http.get("/healthcheck").expect("healthcheck");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&health).expect("json")["isHealthy"],
        json!(true)
    );

    // Several statements in one request, with a variable.
    let topic = unique("pageviews");
    let request = json!({
        "ksql": format!(
            "CREATE STREAM pageviews (user_id STRING KEY, page STRING, ms BIGINT)
               WITH (kafka_topic='{topic}', value_format='JSON', partitions=2);
             INSERT INTO pageviews (user_id, page, ms) VALUES ('alice', '${{home}}', 10);
             INSERT INTO pageviews (user_id, page, ms) VALUES ('bob', '/docs', 20);
             INSERT INTO pageviews (user_id, page, ms) VALUES ('carol', '${{home}}', 30);"
        ),
        "streamsProperties": {},
        "sessionVariables": {"home": "/home"},
    });
    let (status, body) = http.post("/ksql", &request.to_string());
    assert_eq!(status, 200, "{body}");
    let entities: Value = serde_json::from_str(&body).expect("json");
    let entities = entities.as_array().expect("an array of entities");
    assert_eq!(
        entities.len(),
        1,
        "INSERT VALUES answers with no entity: {body}"
    );
    assert_eq!(entities[0]["@type"], json!("currentStatus"));
    assert_eq!(entities[0]["commandStatus"]["status"], json!("SUCCESS"));
    assert_eq!(
        entities[0]["commandStatus"]["message"],
        json!("Stream created")
    );

    // A push query with LIMIT: header, then rows, then the response ends.
    let (status, body) = http.post(
        "/query-stream",
        &json!({
            "sql": "SELECT user_id, page FROM ${source} WHERE page = '${page}' EMIT CHANGES LIMIT 2;",
            "properties": {"auto.offset.reset": "earliest"},
            "sessionVariables": {"source": "pageviews", "page": "/home"},
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let lines: Vec<Value> = json_lines(&body);
    assert_eq!(lines.len(), 3, "{body}");
    assert_eq!(lines[0]["columnNames"], json!(["USER_ID", "PAGE"]));
    assert_eq!(lines[0]["columnTypes"], json!(["STRING", "STRING"]));
    let mut rows: Vec<Value> = lines[1..].to_vec();
    rows.sort_by_key(|r| r.to_string());
    assert_eq!(
        rows,
        vec![json!(["alice", "/home"]), json!(["carol", "/home"])]
    );

    // /query: ksqlDB's older format, one JSON array of a header, rows and a final message.
    let (status, body) = http.post(
        "/query",
        &json!({
            "ksql": "SELECT user_id FROM ${source} EMIT CHANGES LIMIT 1;",
            "streamsProperties": {"auto.offset.reset": "earliest"},
            "sessionVariables": {"source": "pageviews"},
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let parsed: Value = serde_json::from_str(&body).expect("a JSON array");
    assert_eq!(
        parsed[0]["header"]["schema"],
        json!("`USER_ID` STRING"),
        "{body}"
    );
    assert_eq!(
        parsed[1]["row"]["columns"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    assert_eq!(parsed[2]["finalMessage"], json!("Limit Reached"), "{body}");

    // /close-query ends a push query that has no LIMIT.
    let mut open = http
        .agent
        .post(format!("{}/query-stream", http.base))
        .header("Content-Type", "application/json")
        .send(
            json!({"sql": "SELECT * FROM pageviews EMIT CHANGES;",
                   "properties": {"auto.offset.reset": "earliest"}})
            .to_string(),
        )
        .expect("a push query");
    let mut reader = std::io::BufReader::new(open.body_mut().as_reader());
    let mut header_line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut header_line).expect("the header");
    let header: Value = serde_json::from_str(&header_line).expect("json header");
    let id = header["queryId"].as_str().expect("a query id").to_string();
    for _ in 0..3 {
        let mut row = String::new();
        std::io::BufRead::read_line(&mut reader, &mut row).expect("a row");
        assert!(
            serde_json::from_str::<Value>(&row).is_ok_and(|r| r.is_array()),
            "{row}"
        );
    }
    let (status, body) = http.post("/close-query", &json!({"queryId": id}).to_string());
    assert_eq!(status, 200, "{body}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).expect("the response ends");
    assert_eq!(rest, "", "nothing after the close");
    let (status, _) = http.post("/close-query", &json!({"queryId": id}).to_string());
    assert_eq!(status, 400, "the query is gone");

    // A persistent query through /ksql.
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "CREATE STREAM home_views AS SELECT user_id, ms FROM pageviews WHERE page = '/home';",
                "streamsProperties": {"auto.offset.reset": "earliest"}})
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let created: Value = serde_json::from_str(&body).expect("json");
    let query_id = created[0]["commandStatus"]["queryId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(query_id.starts_with("CSAS_HOME_VIEWS_"), "{body}");
    let rows = wait_for(Duration::from_secs(60), || {
        let records = b.read_topic("HOME_VIEWS", 2, Duration::from_secs(5));
        (records.len() >= 2).then_some(records)
    });
    assert!(
        rows.is_some(),
        "the persistent query wrote its rows; stderr:\n{}",
        server.stderr()
    );

    // Errors: a statement that fails (with the entities before it), a push query sent to
    // /ksql, bad JSON, a request without its field, an unknown endpoint.
    let (status, body) = http.post("/ksql", &json!({"ksql": "SHOW_ME; "}).to_string());
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["@type"],
        json!("statement_error")
    );
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "CREATE STREAM s2 (id INT KEY, v INT) WITH (kafka_topic='s2', value_format='JSON', partitions=1); CREATE STREAM bad AS SELECT nope FROM pageviews;"}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(error["error_code"], json!(40001));
    // As ksqlDB's, the message starts with the place in the request it is about.
    let first = "CREATE STREAM s2 (id INT KEY, v INT) WITH (kafka_topic='s2', value_format='JSON', partitions=1); CREATE STREAM bad AS SELECT ";
    assert_eq!(
        error["message"],
        json!(format!(
            "Line: 1, Col: {}: SELECT column 'NOPE' cannot be resolved.",
            first.len() + 1
        ))
    );
    assert_eq!(
        error["entities"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "SELECT * FROM pageviews EMIT CHANGES;"}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("/query-stream"), "{body}");
    let (status, body) = http.post("/ksql", "{not json");
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["error_code"],
        json!(40000)
    );
    let (status, _) = http.post("/query-stream", "{}");
    assert_eq!(status, 400);
    let (status, body) = http.get("/no/such/endpoint").expect("404");
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["error_code"],
        json!(40400)
    );

    // A statement that fails is not replayed, even when it would succeed by then: here
    // its topic is missing, and is created before the restart.
    let later_topic = unique("later");
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": format!("CREATE STREAM later (id INT KEY, v STRING) WITH (kafka_topic='{later_topic}', value_format='JSON');")})
            .to_string(),
    );
    assert_eq!(status, 400, "{body}");
    b.create_topic(&later_topic, 1);

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");

    // A new server with the same service id replays the command topic: the stream and
    // the persistent query are back, with the same query id (so it resumes from its
    // committed offsets rather than writing its rows again).
    let (server, http) = place.start("server-again");
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "INSERT INTO pageviews (user_id, page, ms) VALUES ('dave', '/home', 40);"})
            .to_string(),
    );
    assert_eq!(status, 200, "the stream is known again: {body}");
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "CREATE STREAM home_views AS SELECT user_id, ms FROM pageviews WHERE page = '/home';"})
            .to_string(),
    );
    assert_eq!(status, 400, "the sink is known again: {body}");
    assert!(body.contains("already exists"), "{body}");
    let three = wait_for(Duration::from_secs(60), || {
        let records = b.read_topic("HOME_VIEWS", 3, Duration::from_secs(5));
        (records.len() >= 3).then_some(())
    });
    assert!(
        three.is_some(),
        "the query runs again; stderr:\n{}",
        server.stderr()
    );
    std::thread::sleep(Duration::from_secs(2));
    let users: Vec<String> = b
        .read_topic("HOME_VIEWS", 4, Duration::from_secs(5))
        .iter()
        .map(|r| r.key_str())
        .collect();
    let mut sorted = users.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["alice", "carol", "dave"],
        "no row written twice: {users:?}"
    );
    // The two statements that failed (`bad`, `later`) are not replayed.
    assert!(
        server.stderr().contains(&format!(
            "Replayed 3 statement(s) from _confluent-ksql-{service}_command_topic"
        )),
        "{}",
        server.stderr()
    );

    // Listings, then TERMINATE, which lets the sink be dropped.
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "SHOW STREAMS; LIST QUERIES;"}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(listed[0]["@type"], json!("streams"));
    let mut names: Vec<&str> = listed[0]["streams"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    names.sort();
    assert_eq!(
        names,
        ["HOME_VIEWS", "PAGEVIEWS", "S2"],
        "what failed is not replayed: {body}"
    );
    assert_eq!(listed[1]["@type"], json!("queries"));
    assert_eq!(listed[1]["queries"][0]["id"], json!(query_id), "{body}");
    assert_eq!(listed[1]["queries"][0]["state"], json!("RUNNING"), "{body}");
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "SET 'ssl.key.password' = 'hunter2'; SHOW PROPERTIES;"}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let shown: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        shown[0]["commandStatus"]["message"],
        json!("Successfully set property 'ssl.key.password' to '[hidden]'")
    );
    assert_eq!(
        shown[1]["properties"],
        json!([{"name": "ssl.key.password", "scope": "KSQL", "value": "[hidden]"}]),
        "secrets are not shown back"
    );
    assert_eq!(
        shown[1]["overwrittenProperties"],
        json!(["ssl.key.password"]),
        "{body}"
    );
    let (status, body) = http.post("/ksql", &json!({"ksql": "DESCRIBE pageviews;"}).to_string());
    assert_eq!(status, 200, "{body}");
    let described: Value = serde_json::from_str(&body).expect("json");
    let d = &described[0]["sourceDescription"];
    assert_eq!(described[0]["@type"], json!("sourceDescription"), "{body}");
    assert_eq!(d["type"], json!("STREAM"));
    assert_eq!(d["valueFormat"], json!("JSON"));
    assert_eq!(
        d["fields"],
        json!([
            {"name": "USER_ID", "schema": {"type": "STRING", "fields": null, "memberSchema": null}, "type": "KEY"},
            {"name": "PAGE", "schema": {"type": "STRING", "fields": null, "memberSchema": null}},
            {"name": "MS", "schema": {"type": "BIGINT", "fields": null, "memberSchema": null}},
        ]),
        "{body}"
    );
    assert_eq!(d["readQueries"][0]["id"], json!(query_id), "{body}");
    let (status, body) = http.post("/ksql", &json!({"ksql": "DESCRIBE nope;"}).to_string());
    assert_eq!(status, 400);
    assert!(
        body.contains("Could not find STREAM/TABLE 'NOPE' in the Metastore"),
        "{body}"
    );
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "DROP STREAM home_views;"}).to_string(),
    );
    assert_eq!(
        status, 400,
        "a stream written by a query cannot be dropped: {body}"
    );
    let refused: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(refused["@type"], json!("statement_error"), "{body}");
    assert_eq!(
        refused["message"],
        json!(format!(
            "Cannot drop HOME_VIEWS.\nThe following queries read from this source: [].\nThe following queries write into this source: [{query_id}].\nYou need to terminate them before dropping HOME_VIEWS."
        )),
        "{body}"
    );
    // The stream a query reads names that query as its reader.
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "DROP STREAM pageviews;"}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!(
            "The following queries read from this source: [{query_id}]."
        )),
        "{body}"
    );
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": format!("TERMINATE {query_id}; DROP STREAM home_views; SHOW QUERIES;")})
            .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let done: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        done[0]["commandStatus"]["message"],
        json!("Query terminated.")
    );
    assert_eq!(done[2]["queries"], json!([]), "{body}");
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "TERMINATE NO_SUCH_QUERY;"}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(body.contains("Unknown queryId: NO_SUCH_QUERY"), "{body}");

    let stderr = server.stderr();
    assert!(
        !stderr.contains("hunter2"),
        "a secret reached the logs:\n{stderr}"
    );
    assert!(server.terminate().success(), "{stderr}");
    let _ = std::fs::remove_dir_all(state);
}

#[test]
fn headless_mode_runs_its_queries_file_and_takes_no_statements() {
    let b = broker();
    let port = free_port();
    let input = unique("headless_in");
    let output = unique("HEADLESS_OUT");
    b.create_topic(&input, 1);
    b.produce(
        &input,
        &[(
            Some(b"k1".to_vec()),
            Some(br#"{"v": 7}"#.to_vec()),
            brook_tests::recent_timestamp(),
        )],
    );
    let dir = std::env::temp_dir().join(unique("headless"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("queries.sql");
    std::fs::write(
        &file,
        format!(
            "SET 'auto.offset.reset' = 'earliest';
             CREATE STREAM src (k STRING KEY, v INT) WITH (kafka_topic='{input}', value_format='JSON');
             CREATE STREAM doubled WITH (kafka_topic='{output}') AS SELECT k, v * 2 AS v2 FROM src;"
        ),
    )
    .expect("queries file");
    let listen = format!("127.0.0.1:{port}");
    let file_arg = file.display().to_string();
    let service = unique("svc");
    let server = BrookRun::start_server(
        "headless",
        &[
            "--listen",
            &listen,
            "--bootstrap-servers",
            &b.bootstrap,
            "--service-id",
            &service,
            "--queries-file",
            &file_arg,
        ],
    );
    let http = Http::new(port);
    let up = wait_for(Duration::from_secs(60), || http.get("/info"));
    assert!(up.is_some(), "no /info; stderr:\n{}", server.stderr());
    let rows = wait_for(Duration::from_secs(60), || {
        let records = b.read_topic(&output, 1, Duration::from_secs(5));
        (!records.is_empty()).then_some(records)
    });
    let rows = rows.unwrap_or_else(|| panic!("the file's query ran; stderr:\n{}", server.stderr()));
    assert_eq!(rows[0].value_json()["V2"], json!(14));
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "CREATE STREAM other (k STRING KEY) WITH (kafka_topic='x', value_format='JSON');"})
            .to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("headless"), "{body}");
    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
}

/// The rows of a `/query` answer, and its final message if it has one.
fn query_rows(http: &Http, sql: &str) -> (u16, Value, Vec<Value>, Option<String>) {
    let (status, body) = http.post(
        "/query",
        &json!({"ksql": sql, "streamsProperties": {}}).to_string(),
    );
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let elements = parsed.as_array().cloned().unwrap_or_default();
    let header = elements
        .first()
        .map(|h| h["header"].clone())
        .unwrap_or(parsed.clone());
    let mut rows: Vec<Value> = elements
        .iter()
        .filter_map(|e| e.get("row").map(|r| r["columns"].clone()))
        .collect();
    rows.sort_by_key(|r| r.to_string());
    let last = elements
        .iter()
        .find_map(|e| e["finalMessage"].as_str().map(str::to_string));
    (status, header, rows, last)
}

#[test]
fn pull_queries_over_http() {
    let place = Place::new("pull");
    let (service, state) = (&place.service, &place.state);
    let (server, http) = place.start("pull-server");
    let orders = unique("orders");
    let plain = unique("plain");
    let (status, body) = http.post(
        "/ksql",
        &json!({
            "ksql": format!(
                "CREATE STREAM orders (id STRING KEY, region STRING, amount INT)
                   WITH (kafka_topic='{orders}', value_format='JSON', partitions=2);
                 INSERT INTO orders (id, region, amount) VALUES ('o1', 'eu', 10);
                 INSERT INTO orders (id, region, amount) VALUES ('o2', 'eu', 20);
                 INSERT INTO orders (id, region, amount) VALUES ('o3', 'us', 5);
                 INSERT INTO orders (id, region, amount) VALUES ('o4', 'eu', 30);
                 INSERT INTO orders (id, region, amount) VALUES ('o5', 'us', 7);
                 CREATE TABLE by_region AS
                   SELECT region, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY region;
                 CREATE TABLE plain (id STRING PRIMARY KEY, v INT)
                   WITH (kafka_topic='{plain}', value_format='JSON', partitions=1);"
            ),
            "streamsProperties": {"auto.offset.reset": "earliest"},
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");

    // A key lookup, once the aggregate has caught up.
    let lookup = "SELECT * FROM by_region WHERE region = 'eu';";
    let eu = wait_for(Duration::from_secs(60), || {
        let (status, header, rows, last) = query_rows(&http, lookup);
        (status == 200 && rows == vec![json!(["eu", 3, 60])]).then_some((header, last))
    });
    let (header, last) = eu.unwrap_or_else(|| {
        panic!(
            "the lookup never answered eu's total: {:?}; stderr:\n{}",
            query_rows(&http, lookup),
            server.stderr()
        )
    });
    assert_eq!(
        header["schema"],
        json!("`REGION` STRING KEY, `N` BIGINT, `TOTAL` INTEGER")
    );
    assert_eq!(last, None, "a pull query's answer has no final message");

    // A table scan, and a scan filtered on a value column.
    let (status, _, rows, _) = query_rows(&http, "SELECT region, total FROM by_region;");
    assert_eq!(status, 200);
    assert_eq!(rows, vec![json!(["eu", 60]), json!(["us", 12])]);
    let (_, _, rows, _) = query_rows(&http, "SELECT region FROM by_region WHERE n < 3;");
    assert_eq!(rows, vec![json!(["us"])]);

    // Key lookups read their keys from the store; with table scans turned off, a WHERE
    // clause that pins no key is refused as ksqlDB refuses it.
    let (_, _, rows, _) = query_rows(
        &http,
        "SELECT * FROM by_region WHERE region IN ('us', 'xx');",
    );
    assert_eq!(rows, vec![json!(["us", 2, 12])]);
    let (status, body) = http.post(
        "/query",
        &json!({"ksql": "SELECT * FROM by_region WHERE n > 1;",
                "streamsProperties": {"ksql.query.pull.table.scan.enabled": "false"}})
        .to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("WHERE clause missing key column for disjunct"),
        "{body}"
    );

    // An update shows in the next lookup: the latest row per key is served.
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "INSERT INTO orders (id, region, amount) VALUES ('o6', 'eu', 40);"})
            .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let updated = wait_for(Duration::from_secs(60), || {
        let (_, _, rows, _) = query_rows(&http, lookup);
        (rows == vec![json!(["eu", 4, 100])]).then_some(())
    });
    assert!(updated.is_some(), "{:?}", query_rows(&http, lookup));

    // A pull query over a stream reads it to its current end.
    let (status, header, rows, last) =
        query_rows(&http, "SELECT id, amount FROM orders WHERE region = 'us';");
    assert_eq!(status, 200);
    assert_eq!(header["schema"], json!("`ID` STRING, `AMOUNT` INTEGER"));
    assert_eq!(rows, vec![json!(["o3", 5]), json!(["o5", 7])]);
    assert_eq!(last.as_deref(), Some("Query Completed"));

    // Rows as protobuf messages, with their schema in the header.
    let mut response = http
        .agent
        .post(format!("{}/query", http.base))
        .header("Accept", "application/vnd.ksql.v1+protobuf")
        .send(json!({"ksql": lookup}).to_string())
        .expect("a protobuf query");
    let answer: Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(
        answer[0]["header"]["protoSchema"],
        json!("syntax = \"proto3\";\n\nmessage ConnectDefault1 {\n  string REGION = 1;\n  int64 N = 2;\n  int32 TOTAL = 3;\n}\n"),
        "{answer}"
    );
    // REGION "eu" (field 1), N 4 (field 2), TOTAL 100 (field 3), base64.
    assert_eq!(
        answer[1]["row"]["protobufBytes"],
        json!("CgJldRAEGGQ="),
        "{answer}"
    );

    // /query-stream serves pull queries too.
    let (status, body) = http.post(
        "/query-stream",
        &json!({"sql": lookup, "properties": {}}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let lines: Vec<Value> = json_lines(&body);
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[1], json!(["eu", 4, 100]));

    // What pull queries refuse, with ksqlDB's messages.
    let (status, header, _, _) = query_rows(&http, "SELECT * FROM plain;");
    assert_eq!(status, 400);
    assert!(
        header["message"]
            .as_str()
            .is_some_and(|m| m.contains("The `PLAIN` table isn't queryable")),
        "{header}"
    );
    let (status, header, _, _) = query_rows(
        &http,
        "SELECT region, COUNT(*) FROM orders GROUP BY region;",
    );
    assert_eq!(status, 400);
    assert!(
        header["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Pull queries don't support GROUP BY clauses.")),
        "{header}"
    );
    let (status, header, _, _) = query_rows(&http, "SELECT id, ROWPARTITION FROM orders;");
    assert_eq!(status, 400);
    assert!(
        header["message"]
            .as_str()
            .is_some_and(|m| m.contains("`ROWPARTITION`")),
        "{header}"
    );

    // Tables are served from a local store that follows their topic; a restarted server
    // goes on from it.
    let store = state.join(service).join("pull").join("BY_REGION");
    assert!(store.is_dir(), "no store at {}", store.display());
    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
    let (server, http) = place.start("pull-server-again");
    let again = wait_for(Duration::from_secs(60), || {
        let (_, _, rows, _) = query_rows(&http, "SELECT * FROM by_region;");
        (rows == vec![json!(["eu", 4, 100]), json!(["us", 2, 12])]).then_some(())
    });
    assert!(
        again.is_some(),
        "{:?}\n{}",
        query_rows(&http, "SELECT * FROM by_region;"),
        server.stderr()
    );

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
    let _ = std::fs::remove_dir_all(state);
}

/// Runs curl (HTTP/2 without TLS, "prior knowledge"): (HTTP version, status, body).
/// A pull query's rows in the order the server sent them, or its error.
fn pull_rows(http: &Http, sql: &str, properties: Value) -> Result<Vec<Value>, String> {
    let (status, body) = http.post(
        "/query",
        &json!({"ksql": sql, "streamsProperties": properties}).to_string(),
    );
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    let parsed: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    Ok(parsed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("row").map(|r| r["columns"].clone()))
        .collect())
}

#[test]
fn pull_query_range_scans_serve_ten_thousand_keys_in_key_order() {
    let place = Place::new("range");
    let (server, http) = place.start("range-server");
    let topic = unique("accounts");
    broker().create_topic(&topic, 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // Written out of key order, so that key order comes from the store, not the topic.
    let mut ids: Vec<u32> = (0..10_000).collect();
    ids.sort_by_key(|i| (i * 7919) % 10_000);
    let records: Vec<brook_tests::Input> = ids
        .iter()
        .map(|i| {
            (
                Some(format!("k{i:05}").into_bytes()),
                Some(json!({"BALANCE": i}).to_string().into_bytes()),
                now,
            )
        })
        .collect();
    broker().produce(&topic, &records);
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": format!(
            "CREATE SOURCE TABLE accounts (id STRING PRIMARY KEY, balance INT)
               WITH (kafka_topic='{topic}', value_format='JSON');"
        )})
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let no_scans = json!({"ksql.query.pull.table.scan.enabled": "false"});
    let expected = |range: std::ops::Range<u32>| -> Vec<Value> {
        range.map(|i| json!([format!("k{i:05}"), i])).collect()
    };

    // Every key below a bound, in key order, without a table scan.
    let below = wait_for(Duration::from_secs(60), || {
        pull_rows(
            &http,
            "SELECT id, balance FROM accounts WHERE id < 'k00250';",
            no_scans.clone(),
        )
        .ok()
        .filter(|rows| rows.len() == 250)
    });
    assert_eq!(
        below.unwrap_or_else(|| panic!("the range never filled; stderr:\n{}", server.stderr())),
        expected(0..250)
    );
    // Bounds either way round, inclusive or not, with a filter on a value column.
    let rows = pull_rows(
        &http,
        "SELECT id, balance FROM accounts WHERE 'k09990' <= id;",
        no_scans.clone(),
    );
    assert_eq!(rows, Ok(expected(9990..10_000)));
    let rows = pull_rows(
        &http,
        "SELECT id, balance FROM accounts WHERE id > 'k04999' AND balance % 2 = 0;",
        no_scans.clone(),
    )
    .expect("a range with a filter");
    assert_eq!(rows.len(), 2500);
    assert_eq!(rows.first(), Some(&json!(["k05000", 5000])));
    assert_eq!(rows.last(), Some(&json!(["k09998", 9998])));
    assert!(rows.windows(2).all(|w| w[0][0].as_str() < w[1][0].as_str()));

    // What ksqlDB refuses without table scans: two bounds on the key, ranges turned off.
    let both = pull_rows(
        &http,
        "SELECT id FROM accounts WHERE id >= 'k00010' AND id <= 'k00020';",
        no_scans.clone(),
    );
    assert!(
        both.as_ref().is_err_and(|e| {
            e.starts_with("400") && e.contains(
            "A comparison condition on the key column cannot be combined with other comparisons"
        )
        }),
        "{both:?}"
    );
    let off = pull_rows(
        &http,
        "SELECT id FROM accounts WHERE id < 'k00010';",
        json!({"ksql.query.pull.table.scan.enabled": "false",
               "ksql.query.pull.range.scan.enabled": "false"}),
    );
    assert!(
        off.as_ref()
            .is_err_and(|e| e.contains("Query requires table scan to be enabled")),
        "{off:?}"
    );
    // With table scans on, both bounds are a scan and the same rows come.
    let rows = pull_rows(
        &http,
        "SELECT id, balance FROM accounts WHERE id >= 'k00010' AND id <= 'k00020';",
        json!({}),
    );
    assert_eq!(rows, Ok(expected(10..21)));
}

fn curl_http2(url: &str, body: &str) -> (String, String, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            "-w",
            "\n%{http_version} %{http_code}",
            url,
        ])
        .output()
        .expect("curl is needed for the HTTP/2 test (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (version, status) = last.split_once(' ').unwrap_or(("", ""));
    (version.to_string(), status.to_string(), body.to_string())
}

#[test]
fn metadata_statements_status_inserts_print_and_http2() {
    let place = Place::new("endpoints");
    let state = &place.state;
    let (server, http) = place.start("endpoints-server");
    let topic = unique("clicks");
    let (status, body) = http.post(
        "/ksql",
        &json!({
            "ksql": format!(
                "CREATE TYPE ADDRESS AS STRUCT<street STRING, zip INT>;
                 CREATE STREAM clicks (user_id STRING KEY, url STRING, n INT)
                   WITH (kafka_topic='{topic}', value_format='JSON', partitions=1);
                 CREATE TABLE per_user AS SELECT user_id, COUNT(*) AS c FROM clicks GROUP BY user_id;
                 SHOW TOPICS; SHOW FUNCTIONS; DESCRIBE FUNCTION ucase; SHOW TYPES;"
            ),
            "streamsProperties": {"auto.offset.reset": "earliest"},
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let entities: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(entities[1]["commandId"], json!("stream/CLICKS/create"));
    let query_id = entities[2]["commandStatus"]["queryId"]
        .as_str()
        .expect("a query id")
        .to_string();
    assert_eq!(entities[3]["@type"], json!("kafka_topics"));
    let topics: Vec<&str> = entities[3]["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(topics.contains(&topic.as_str()), "{topics:?}");
    assert!(topics.contains(&"PER_USER"), "{topics:?}");
    assert!(
        !topics.iter().any(|t| t.starts_with('_')),
        "internal topics hidden: {topics:?}"
    );
    assert_eq!(entities[4]["@type"], json!("function_names"));
    let functions = entities[4]["functions"].as_array().expect("functions");
    for (name, kind, category) in [
        ("UCASE", "SCALAR", "STRING"),
        ("ABS", "SCALAR", "MATHEMATICAL"),
        ("REGEXP_EXTRACT", "SCALAR", "REGULAR EXPRESSION"),
        ("PARSE_DATE", "SCALAR", "DATE / TIME"),
        ("COUNT", "AGGREGATE", "AGGREGATE"),
        ("EXPLODE", "TABLE", "TABLE"),
        ("CUBE_EXPLODE", "TABLE", "TABLE"),
        ("TRANSFORM", "SCALAR", "LAMBDA"),
        ("CAST", "SCALAR", "CONVERSIONS"),
        ("TRUNC", "SCALAR", "MATHEMATICAL"),
        ("TO_JSON_STRING", "SCALAR", "JSON"),
    ] {
        assert!(
            functions.contains(&json!({"name": name, "type": kind, "category": category})),
            "{name}: {functions:?}"
        );
    }
    assert_eq!(entities[5]["@type"], json!("describe_function"));
    assert_eq!(entities[5]["name"], json!("UCASE"));
    assert_eq!(
        entities[5]["functions"][0]["argumentTypes"],
        json!(["STRING"]),
        "{}",
        entities[5]
    );
    assert_eq!(entities[5]["functions"][0]["returnType"], json!("STRING"));
    // What the function reference says of it, and its argument's documented name.
    assert_eq!(
        entities[5]["description"],
        json!("Converts a string to uppercase."),
        "{}",
        entities[5]
    );
    assert_eq!(
        entities[5]["functions"][0]["arguments"][0]["name"],
        json!("col1")
    );
    assert_eq!(entities[5]["author"], json!("Brook"));
    assert!(entities[5]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(entities[6]["@type"], json!("type_list"));
    assert_eq!(
        entities[6]["types"]["ADDRESS"]["type"],
        json!("STRUCT<`STREET` STRING, `ZIP` INTEGER>")
    );

    // /status knows each command by its id.
    let (status, body) = http.get("/status").expect("/status");
    assert_eq!(status, 200);
    let statuses: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        statuses["commandStatuses"]["table/PER_USER/create"],
        json!("SUCCESS")
    );
    let (status, body) = http.get("/status/table/PER_USER/create").expect("status");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json"),
        json!({"status": "SUCCESS", "message": format!("Created query with ID {query_id}")})
    );
    let (status, _) = http.get("/status/table/NOPE/create").expect("status");
    assert_eq!(status, 404);
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": "CREATE TYPE IF NOT EXISTS ADDRESS AS STRUCT<x INT>;"}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let warned: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(warned[0]["@type"], json!("warning_entity"), "{body}");
    assert_eq!(warned[0]["message"], json!("Type ADDRESS already exists"));
    let (status, body) = http
        .get("/is_valid_property/auto.offset.reset")
        .expect("valid");
    assert_eq!((status, body.as_str()), (200, "true"));
    let (status, _) = http
        .get("/is_valid_property/ksql.service.id")
        .expect("valid");
    assert_eq!(status, 400);
    let (status, _) = http.get("/chc/live").expect("live");
    assert_eq!(status, 200);
    let (status, body) = http.get("/chc/ready").expect("ready");
    assert_eq!((status, body.as_str()), (200, r#"{"isHealthy":true}"#));

    // EXPLAIN of a running query and of a statement.
    let (status, body) = http.post(
        "/ksql",
        &json!({"ksql": format!("EXPLAIN {query_id}; EXPLAIN SELECT url FROM clicks WHERE n > 1 EMIT CHANGES;")})
            .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let explained: Value = serde_json::from_str(&body).expect("json");
    let running = &explained[0]["queryDescription"];
    assert_eq!(explained[0]["@type"], json!("queryDescription"));
    assert_eq!(running["id"], json!(query_id));
    assert_eq!(running["sources"], json!(["CLICKS"]));
    assert_eq!(running["sinks"], json!(["PER_USER"]));
    assert_eq!(running["state"], json!("RUNNING"));
    // The host is the address this server answers on.
    assert_eq!(
        running["ksqlHostQueryStatus"],
        json!({place.listen.clone(): "RUNNING"}),
        "{running}"
    );
    let plan = running["executionPlan"].as_str().expect("a plan");
    assert!(plan.contains("[ SINK ] | TABLE PER_USER"), "{plan}");
    assert!(
        plan.contains("[ AGGREGATE ] | Group by: USER_ID | Aggregates: COUNT"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("[ SOURCE ] | STREAM CLICKS | Topic: {topic}")),
        "{plan}"
    );
    // The topology, as Kafka Streams describes one: grouped by the key it has, the
    // aggregation needs no repartition topic.
    let topology = running["topology"].as_str().expect("a topology");
    assert_eq!(
        topology,
        format!(
            "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [{topic}])\n      --> Aggregate-Aggregate\n    Processor: Aggregate-Aggregate (stores: [Aggregate-Aggregate-Materialize])\n      --> Project\n      <-- KSTREAM-SOURCE-0000000000\n    Processor: Project (stores: [])\n      --> KSTREAM-SINK-0000000001\n      <-- Aggregate-Aggregate\n    Sink: KSTREAM-SINK-0000000001 (topic: PER_USER)\n      <-- Project\n"
        ),
        "{topology}"
    );
    let plan = explained[1]["queryDescription"]["executionPlan"]
        .as_str()
        .expect("a plan");
    assert!(plan.contains("[ FILTER ]"), "{plan}");
    let topology = explained[1]["queryDescription"]["topology"]
        .as_str()
        .expect("a topology");
    assert!(
        topology.contains("Processor: WhereFilter (stores: [])\n      --> Project"),
        "{topology}"
    );
    assert_eq!(
        explained[1]["queryDescription"]["fields"][0]["name"],
        json!("URL")
    );

    // /inserts-stream: each row acknowledged in order; a bad row is refused alone.
    let rows = "{\"target\": \"clicks\"}\n\
                {\"USER_ID\": \"ann\", \"URL\": \"/a\", \"N\": 1}\n\
                {\"user_id\": \"bob\", \"url\": \"/b\", \"n\": 2}\n\
                not json\n\
                {\"NO_SUCH\": 1}\n\
                {\"USER_ID\": \"ann\", \"URL\": \"/c\", \"N\": 3}\n";
    let (status, body) = http.post("/inserts-stream", rows);
    assert_eq!(status, 200, "{body}");
    let acks: Vec<Value> = json_lines(&body);
    let summary: Vec<(u64, String)> = acks
        .iter()
        .map(|a| {
            (
                a["seq"].as_u64().unwrap_or(99),
                a["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "ok".to_string()),
            (1, "ok".to_string()),
            (2, "error".to_string()),
            (3, "error".to_string()),
            (4, "ok".to_string())
        ],
        "{body}"
    );
    assert!(acks[3]["message"]
        .as_str()
        .is_some_and(|m| m.contains("NO_SUCH")));
    let (status, _) = http.post("/inserts-stream", "{\"target\": \"nothing\"}\n");
    assert_eq!(status, 400);
    // A client that asks for JSON reads one array of the same acks.
    let mut response = http
        .agent
        .post(format!("{}/inserts-stream", http.base))
        .header("Accept", "application/json")
        .send(
            "{\"target\": \"clicks\"}\n\
             {\"USER_ID\": \"cy\", \"URL\": \"/d\", \"N\": 4}\n\
             {\"NOPE\": 5}\n",
        )
        .expect("an inserts-stream answer");
    let text = response.body_mut().read_to_string().expect("body");
    let acks: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(acks[0], json!({"status": "ok", "seq": 0}), "{text}");
    assert_eq!(acks[1]["status"], json!("error"), "{text}");
    assert_eq!(acks[1]["seq"], json!(1), "{text}");
    assert_eq!(acks.as_array().map(Vec::len), Some(2), "{text}");

    // The inserted rows reach the table; /query-stream with Accept: application/json
    // answers with one JSON array.
    let counted = wait_for(Duration::from_secs(60), || {
        let mut response = http
            .agent
            .post(format!("{}/query-stream", http.base))
            .header("Accept", "application/json")
            .send(json!({"sql": "SELECT user_id, c FROM per_user;"}).to_string())
            .ok()?;
        let body: Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
        let mut rows: Vec<Value> = body.as_array()?[1..].to_vec();
        rows.sort_by_key(|r| r.to_string());
        (rows == vec![json!(["ann", 2]), json!(["bob", 1]), json!(["cy", 1])]).then_some(body)
    });
    let array = counted.expect("the table counts the inserted rows");
    assert_eq!(array[0]["columnNames"], json!(["USER_ID", "C"]));

    // PRINT shows the topic's records.
    let (status, body) = http.post(
        "/query-stream",
        &json!({"sql": format!("PRINT '{topic}' FROM BEGINNING LIMIT 2;")}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let lines: Vec<Value> = json_lines(&body);
    assert_eq!(lines.len(), 3, "{body}");
    let first = lines[1][0].as_str().expect("a record line");
    assert!(
        first.contains("key: ann, value: {\"URL\":\"/a\",\"N\":1}, partition: 0"),
        "{first}"
    );

    // HTTP/2 without TLS.
    let (version, status, body) = curl_http2(
        &format!("{}/ksql", http.base),
        &json!({"ksql": "SHOW STREAMS;"}).to_string(),
    );
    assert_eq!((version.as_str(), status.as_str()), ("2", "200"), "{body}");
    assert!(body.contains("CLICKS"), "{body}");
    let (version, status, body) = curl_http2(
        &format!("{}/query-stream", http.base),
        &json!({"sql": "SELECT user_id, url FROM clicks EMIT CHANGES LIMIT 2;",
                "properties": {"auto.offset.reset": "earliest"}})
        .to_string(),
    );
    assert_eq!((version.as_str(), status.as_str()), ("2", "200"), "{body}");
    let streamed: Vec<Value> = json_lines(&body);
    assert_eq!(
        streamed.len(),
        3,
        "a header and two rows over HTTP/2: {body}"
    );
    assert_eq!(streamed[1], json!(["ann", "/a"]));

    // A body over the limit gets ksqlDB's error shape.
    let big = format!("{{\"ksql\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (status, body) = http.post("/ksql", &big);
    assert_eq!(status, 413);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["error_code"],
        json!(41300)
    );

    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
    let _ = std::fs::remove_dir_all(state);
}

/// Topics that statements create get ksqlDB's settings: a stream's deletes old records, a
/// table's compacts, a windowed table's does both; `RETENTION_MS` sets the retention, and
/// without it a query's topic keeps its source's (a source that keeps everything gives
/// outputs that keep everything, whatever the broker's default).
#[test]
fn created_topics_take_their_cleanup_policy_and_retention() {
    let b = broker();
    let place = Place::new("topics");
    let (_server, http) = place.start("topic-settings");
    let input = unique("kept_forever");
    b.create_topic_with(&input, 1, &[("retention.ms", "-1")]);
    let [copy, hourly, per_user, windowed, declared] =
        ["COPY", "HOURLY", "PER_USER", "WINDOWED", "DECLARED"].map(unique);
    let statements = format!(
        "CREATE STREAM clicks (u STRING KEY, page STRING) WITH (kafka_topic = '{input}', value_format = 'JSON');
         CREATE STREAM copy WITH (kafka_topic = '{copy}') AS SELECT * FROM clicks;
         CREATE STREAM hourly WITH (kafka_topic = '{hourly}', retention_ms = 3600000) AS SELECT * FROM clicks;
         CREATE TABLE per_user WITH (kafka_topic = '{per_user}') AS SELECT u, COUNT(*) AS n FROM clicks GROUP BY u;
         CREATE TABLE windowed WITH (kafka_topic = '{windowed}') AS SELECT u, COUNT(*) AS n FROM clicks
           WINDOW TUMBLING (SIZE 1 MINUTE, RETENTION 2 HOURS) GROUP BY u;
         CREATE STREAM declared (u STRING KEY, page STRING) WITH (kafka_topic = '{declared}', partitions = 1, retention_ms = 86400000, value_format = 'JSON');"
    );
    let (status, body) = http.ksql(&statements);
    assert_eq!(status, 200, "{body}");
    let setting = |topic: &str, name: &str| b.topic_config(topic, name);
    for (topic, policy, retention) in [
        (&copy, "delete", Some("-1")),
        (&hourly, "delete", Some("3600000")),
        (&windowed, "compact,delete", Some("-1")),
        (&declared, "delete", Some("86400000")),
    ] {
        assert_eq!(
            setting(topic, "cleanup.policy").as_deref(),
            Some(policy),
            "{topic}"
        );
        assert_eq!(
            setting(topic, "retention.ms").as_deref(),
            retention,
            "{topic}"
        );
    }
    assert_eq!(
        setting(&per_user, "cleanup.policy").as_deref(),
        Some("compact")
    );
    // A non-windowed table compacts: a retention is refused, and no topic is made.
    let refused = unique("REFUSED");
    let (status, body) = http.ksql(&format!(
        "CREATE TABLE refused WITH (kafka_topic = '{refused}', retention_ms = 5) AS SELECT u, COUNT(*) AS n FROM clicks GROUP BY u;"
    ));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "Invalid config variable in the WITH clause: RETENTION_MS. Non-windowed tables do not support retention.",
        "{body}"
    );
    assert!(!b.topic_names().contains(&refused));
    let (status, body) = http.ksql(
        "CREATE STREAM bad (u STRING KEY) WITH (kafka_topic = 'bad_retention', partitions = 1, retention_ms = 'soon', value_format = 'JSON');",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "Invalid value soon for configuration RETENTION_MS: Not a number of type LONG",
        "{body}"
    );
}

/// `/query` over a table flags its deletes (`row.tombstone`) and gives them their key
/// columns only; rows the WHERE clause does not match are left out.
#[test]
fn table_push_queries_flag_tombstones_over_http() {
    let b = broker();
    let place = Place::new("tombstones");
    let (_server, http) = place.start("tombstones");
    let topic = unique("users");
    b.create_topic(&topic, 1);
    let now = brook_tests::recent_timestamp();
    let value =
        |name: &str, age: i64| Some(json!({"NAME": name, "AGE": age}).to_string().into_bytes());
    b.produce(
        &topic,
        &[
            (Some(b"u1".to_vec()), value("alice", 30), now),
            (Some(b"u2".to_vec()), value("bob", 40), now + 1),
            (Some(b"u2".to_vec()), None, now + 2),
            (Some(b"u3".to_vec()), value("carol", 50), now + 3),
        ],
    );
    let (status, body) = http.ksql(&format!(
        "CREATE TABLE users (id STRING PRIMARY KEY, name STRING, age INT) WITH (kafka_topic = '{topic}', value_format = 'JSON');"
    ));
    assert_eq!(status, 200, "{body}");
    let (status, body) = http.post(
        "/query",
        &json!({
            "ksql": "SELECT name, id FROM users WHERE age > 35 EMIT CHANGES LIMIT 3;",
            "streamsProperties": {"auto.offset.reset": "earliest"},
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let parsed: Value = serde_json::from_str(&body).expect("a JSON array");
    let rows: Vec<&Value> = parsed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|e| e.get("row"))
        .collect();
    assert_eq!(
        rows,
        [
            &json!({"columns": ["bob", "u2"]}),
            &json!({"columns": [null, "u2"], "tombstone": true}),
            &json!({"columns": ["carol", "u3"]}),
        ],
        "{body}"
    );
}

/// The listings' EXTENDED forms: `SHOW STREAMS EXTENDED` and `DESCRIBE TABLES` describe
/// every source, `SHOW QUERIES EXTENDED` every query (as EXPLAIN), and `SHOW TOPICS
/// EXTENDED` counts each topic's consumers and consumer groups.
#[test]
fn extended_listings_describe_every_source_query_and_topic() {
    let b = broker();
    let place = Place::new("extended");
    let (_server, http) = place.start("extended");
    let topic = unique("clicks");
    b.create_topic(&topic, 2);
    let (status, body) = http.ksql(&format!(
        "CREATE STREAM clicks (u STRING KEY, page STRING) WITH (kafka_topic = '{topic}', value_format = 'JSON');
         CREATE TABLE per_user AS SELECT u, COUNT(*) AS n FROM clicks GROUP BY u;
         SET 'auto.offset.reset' = 'earliest';
         CREATE TABLE per_minute AS SELECT u, COUNT(*) AS n FROM clicks WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY u;"
    ));
    assert_eq!(status, 200, "{body}");
    let query_id = body[1]["commandStatus"]["queryId"]
        .as_str()
        .expect("a query id")
        .to_string();
    let windowed_id = body[3]["commandStatus"]["queryId"]
        .as_str()
        .expect("a query id")
        .to_string();

    let (status, body) = http.ksql("SHOW STREAMS EXTENDED;");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["@type"], "source_descriptions", "{body}");
    let described = &body[0]["sourceDescriptions"];
    let clicks = described
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == "CLICKS")
        .unwrap_or_else(|| panic!("CLICKS is not described: {body}"));
    assert_eq!(clicks["extended"], true);
    assert_eq!(clicks["topic"], topic.as_str());
    assert_eq!(clicks["partitions"], 2);
    // What queries write from it holds it: DROP refuses until they are gone.
    assert_eq!(
        clicks["sourceConstraints"],
        json!(["PER_MINUTE", "PER_USER"]),
        "{body}"
    );
    let readers: Vec<&str> = clicks["readQueries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["id"].as_str())
        .collect();
    assert!(
        readers.contains(&query_id.as_str()) && readers.contains(&windowed_id.as_str()),
        "{body}"
    );

    let (status, body) = http.ksql("DESCRIBE TABLES;");
    assert_eq!(status, 200, "{body}");
    let tables = body[0]["sourceDescriptions"]
        .as_array()
        .expect("descriptions");
    assert!(
        tables
            .iter()
            .all(|d| d["type"] == "TABLE" && d["extended"] == false),
        "{body}"
    );
    let window_of = |name: &str| {
        tables
            .iter()
            .find(|d| d["name"] == name)
            .map(|d| d["windowType"].clone())
    };
    assert_eq!(window_of("PER_USER"), Some(Value::Null), "{body}");
    assert_eq!(window_of("PER_MINUTE"), Some(json!("TUMBLING")), "{body}");

    let (status, body) = http.ksql("SHOW QUERIES EXTENDED;");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["@type"], "queryDescriptionList", "{body}");
    let query = body[0]["queryDescriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["id"] == query_id.as_str())
        .unwrap_or_else(|| panic!("{query_id} is not described: {body}"));
    assert_eq!(query["sinks"], json!(["PER_USER"]), "{body}");
    assert_eq!(query["sources"], json!(["CLICKS"]), "{body}");
    assert_eq!(query["windowType"], Value::Null, "{body}");
    let windowed = body[0]["queryDescriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["id"] == windowed_id.as_str())
        .unwrap_or_else(|| panic!("{windowed_id} is not described: {body}"));
    assert_eq!(windowed["windowType"], "TUMBLING", "{body}");
    // The properties each query's session set.
    assert_eq!(
        windowed["overriddenProperties"],
        json!({"auto.offset.reset": "earliest"}),
        "{body}"
    );
    assert_eq!(query["overriddenProperties"], json!({}), "{body}");

    // Once the queries' consumers have their partitions, the topic counts them: two
    // groups, each with the topic's two partitions.
    let counted = wait_for(Duration::from_secs(60), || {
        let (_, body) = http.ksql("SHOW TOPICS EXTENDED;");
        let entry = body[0]["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == topic.as_str())
            .cloned()?;
        (body[0]["@type"] == "kafka_topics_extended" && entry["consumerCount"] == 4)
            .then_some(entry)
    });
    let entry = counted.unwrap_or_else(|| {
        panic!(
            "the topic's consumers were not counted: {}",
            http.ksql("SHOW TOPICS EXTENDED;").1
        )
    });
    assert_eq!(entry["consumerGroupCount"], 2, "{entry}");
}

/// `/healthcheck` checks the brokers: with them gone it answers 503 and says why, and it
/// is healthy again once they are back.
#[test]
fn healthcheck_follows_the_brokers() {
    let own = brook_tests::OwnBroker::start();
    let place = Place::new("health");
    let (_server, http) = start_server(
        "health",
        &own.broker,
        &place.listen,
        &place.service,
        &place.state_arg,
    );
    let health = || {
        let (status, body) = http.get("/healthcheck")?;
        Some((status, serde_json::from_str::<Value>(&body).ok()?))
    };
    let (status, body) = health().expect("/healthcheck");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["kafka"]["isHealthy"], true, "{body}");
    own.stop();
    let down = wait_for(Duration::from_secs(120), || {
        health().filter(|(status, _)| *status == 503)
    });
    let (_, body) = down.expect("/healthcheck did not notice the brokers were gone");
    assert_eq!(body["isHealthy"], false, "{body}");
    assert_eq!(body["details"]["kafka"]["isHealthy"], false, "{body}");
    assert!(body["details"]["kafka"]["message"].is_string(), "{body}");
    own.resume();
    let up = wait_for(Duration::from_secs(120), || {
        health().filter(|(status, _)| *status == 200)
    });
    assert!(
        up.is_some(),
        "/healthcheck did not recover with the brokers"
    );
}
