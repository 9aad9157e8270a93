//! Two `brook server`s of one service on a real broker: statements sent to either run on
//! both, in the command topic's order, with the same query ids; the persistent query's
//! partitions are shared through its consumer group, and its output holds every result
//! once.

use brook_tests::{broker, free_port, unique, wait_for, BrookRun};
use serde_json::{json, Value};
use std::time::Duration;

fn post(base: &str, sql: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(90)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(format!("{base}/ksql"))
        .header("Content-Type", "application/json")
        .send(
            json!({"ksql": sql, "streamsProperties": {"auto.offset.reset": "earliest"}})
                .to_string(),
        )
        .expect("request");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The names a SHOW answer lists under `field`, sorted.
fn names(answer: &Value, field: &str, key: &str) -> Vec<String> {
    let mut names: Vec<String> = answer[0][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s[key].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn two_servers_share_statements_and_queries() {
    let b = broker();
    let service = unique("cluster");
    let dirs: Vec<std::path::PathBuf> = (0..2)
        .map(|_| std::env::temp_dir().join(unique("brook-state")))
        .collect();
    let listens: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let servers: Vec<BrookRun> = (0..2)
        .map(|i| {
            BrookRun::serve(
                &format!("cluster-{i}"),
                &b.bootstrap,
                &listens[i],
                &service,
                &dirs[i].display().to_string(),
            )
        })
        .collect();
    let bases: Vec<String> = listens.iter().map(|l| format!("http://{l}")).collect();

    // Statements sent to the first server.
    let topic = unique("orders");
    let (status, answer) = post(
        &bases[0],
        &format!(
            "CREATE STREAM orders (id STRING KEY, amount INT)
               WITH (kafka_topic='{topic}', value_format='JSON', partitions=4);
             CREATE STREAM big_orders AS SELECT id, amount FROM orders WHERE amount > 50;"
        ),
    );
    assert_eq!(status, 200, "{answer}");
    let query_id = answer[1]["commandStatus"]["queryId"]
        .as_str()
        .expect("a query id")
        .to_string();

    // The second server has them too, with the same query id.
    let seen = wait_for(Duration::from_secs(30), || {
        let (_, streams) = post(&bases[1], "SHOW STREAMS;");
        let (_, queries) = post(&bases[1], "SHOW QUERIES;");
        (names(&streams, "streams", "name") == ["BIG_ORDERS", "ORDERS"]
            && names(&queries, "queries", "id") == [query_id.clone()])
        .then_some(())
    });
    assert!(
        seen.is_some(),
        "the second server did not take the statements; stderr:\n{}",
        servers[1].stderr()
    );

    // Both run the query: every big order comes out once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let inputs: Vec<_> = (0..400)
        .map(|i| {
            (
                Some(format!("o{i}").into_bytes()),
                Some(json!({"AMOUNT": i % 100}).to_string().into_bytes()),
                now + i as i64,
            )
        })
        .collect();
    b.produce(&topic, &inputs);
    let expected: Vec<String> = (0..400)
        .filter(|i| i % 100 > 50)
        .map(|i| format!("o{i}"))
        .collect();
    let out = wait_for(Duration::from_secs(120), || {
        let records = b.read_topic("BIG_ORDERS", expected.len(), Duration::from_secs(5));
        (records.len() >= expected.len()).then_some(())
    });
    assert!(
        out.is_some(),
        "BIG_ORDERS did not fill; stderr:\n{}\n{}",
        servers[0].stderr(),
        servers[1].stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    let mut ids: Vec<String> = b
        .read_topic("BIG_ORDERS", expected.len() + 1, Duration::from_secs(5))
        .iter()
        .map(|r| r.key_str())
        .collect();
    ids.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(ids, wanted, "every result once");

    // /clusterStatus on either server: both servers, the query's four partitions shared
    // between them.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let shared = wait_for(Duration::from_secs(30), || {
        let body = agent
            .get(format!("{}/clusterStatus", bases[1]))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        let status: Value = serde_json::from_str(&body).ok()?;
        let hosts = status["clusterStatus"].as_object()?;
        let partitions: Vec<i64> = listens
            .iter()
            .map(|l| {
                hosts.get(l)?["activeStandbyPerQuery"][&query_id]["activePartitions"]
                    .as_array()
                    .map(|p| p.len() as i64)
            })
            .collect::<Option<Vec<i64>>>()?;
        (partitions.iter().sum::<i64>() == 4 && partitions.iter().all(|n| *n > 0)).then_some(status)
    });
    assert!(
        shared.is_some(),
        "/clusterStatus does not show the query shared by both servers"
    );

    // Statements sent to the second server reach the first.
    let (status, answer) = post(
        &bases[1],
        &format!("TERMINATE {query_id}; DROP STREAM big_orders;"),
    );
    assert_eq!(status, 200, "{answer}");
    let gone = wait_for(Duration::from_secs(30), || {
        let (_, streams) = post(&bases[0], "SHOW STREAMS;");
        let (_, queries) = post(&bases[0], "SHOW QUERIES;");
        (names(&streams, "streams", "name") == ["ORDERS"]
            && names(&queries, "queries", "id").is_empty())
        .then_some(())
    });
    assert!(gone.is_some(), "{}", servers[0].stderr());

    // ALTER SYSTEM sent to one server sets the property on both, for what runs next: a
    // query started through the other names its topic with the new prefix.
    let (status, answer) = post(
        &bases[0],
        "ALTER SYSTEM 'ksql.output.topic.name.prefix'='sys_';",
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer[0]["commandStatus"]["message"],
        "System property ksql.output.topic.name.prefix was set to sys_.",
        "{answer}"
    );
    let altered = wait_for(Duration::from_secs(30), || {
        let (_, properties) = post(&bases[1], "SHOW PROPERTIES;");
        properties[0]["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "ksql.output.topic.name.prefix" && p["value"] == "sys_")
            .then_some(())
    });
    assert!(altered.is_some(), "{}", servers[1].stderr());
    let (status, answer) = post(
        &bases[1],
        "CREATE STREAM prefixed AS SELECT id, amount FROM orders;",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        b.topic_names().contains(&"sys_PREFIXED".to_string()),
        "{:?}",
        b.topic_names()
    );

    for server in servers {
        let stderr = server.stderr();
        assert!(server.terminate().success(), "{stderr}");
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `POST /ksql/terminate`: the service's queries stop, their internal topics and the
/// topics they wrote that the request names are deleted (others stay), the command topic
/// goes, and the server takes no more statements.
#[test]
fn terminate_cluster_cleans_up_the_service() {
    let b = broker();
    let service = unique("ended");
    let dir = std::env::temp_dir().join(unique("brook-state"));
    let listen = format!("127.0.0.1:{}", free_port());
    let server = BrookRun::serve(
        "terminate",
        &b.bootstrap,
        &listen,
        &service,
        &dir.display().to_string(),
    );
    let base = format!("http://{listen}");
    let input = unique("orders");
    let [kept, dropped] = [unique("KEPT"), unique("DROPPED")];
    let (status, answer) = post(
        &base,
        &format!(
            "CREATE STREAM orders (id STRING KEY, amount INT) WITH (kafka_topic='{input}', value_format='JSON', partitions=2);
             CREATE STREAM kept WITH (kafka_topic='{kept}') AS SELECT * FROM orders;
             CREATE TABLE totals WITH (kafka_topic='{dropped}') AS SELECT id, SUM(amount) AS total FROM orders GROUP BY id;"
        ),
    );
    assert_eq!(status, 200, "{answer}");
    let internal = format!("_confluent-ksql-{service}query_");
    let command_topic = format!("_confluent-ksql-{service}_command_topic");
    let has_internal = || b.topic_names().iter().any(|t| t.starts_with(&internal));
    assert!(
        wait_for(Duration::from_secs(30), || has_internal().then_some(())).is_some(),
        "the aggregation has no internal topics: {:?}",
        b.topic_names()
    );

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(90)))
        .http_status_as_error(false)
        .build()
        .into();
    let terminate = |body: Value| {
        let mut response = agent
            .post(format!("{base}/ksql/terminate"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("request");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
        )
    };
    // A pattern that is no regular expression is refused, and nothing happens.
    let (status, answer) = terminate(json!({"deleteTopicList": ["("]}));
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = post(&base, "SHOW QUERIES;");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(names(&answer, "queries", "id").len(), 2, "{answer}");

    let (status, answer) =
        terminate(json!({"deleteTopicList": [format!("{}.*", &dropped[..7]), input]}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer[0]["commandId"], "cluster/TerminateCluster/terminate",
        "{answer}"
    );
    assert_eq!(answer[0]["commandStatus"]["status"], "SUCCESS", "{answer}");
    let gone = wait_for(Duration::from_secs(30), || {
        let topics = b.topic_names();
        (!topics.contains(&dropped) && !topics.contains(&command_topic) && !has_internal())
            .then_some(topics)
    });
    let topics = gone.unwrap_or_else(|| {
        panic!(
            "topics left after TERMINATE CLUSTER: {:?}; stderr:\n{}",
            b.topic_names(),
            server.stderr()
        )
    });
    // The topic a query wrote but the list does not name stays, and so does the input,
    // which no query wrote.
    assert!(topics.contains(&kept), "{topics:?}");
    assert!(topics.contains(&input), "{topics:?}");
    let (status, answer) = post(&base, "SHOW STREAMS;");
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("terminated")),
        "{answer}"
    );
    let stderr = server.stderr();
    assert!(server.terminate().success(), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
