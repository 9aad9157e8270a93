//! A soak run: `brook server` on a broker of its own, with a stateless query, a windowed
//! aggregate, a stream-table join and a table, fed continuously (1% of the records are
//! malformed) while 20 clients run push and pull queries and drop their connections
//! abruptly; the server is killed with SIGKILL and restarted a quarter of the way in, the
//! broker is stopped and restarted half way and three quarters of the way in. At the end it
//! checks that no output is missing, that every malformed record is in the processing log
//! of every query that read it, that no query is in ERROR, and that memory and file
//! descriptors stayed bounded (the second broker restart and the time after it add nothing
//! to what the first left); it prints those figures. `scripts/soak.sh` runs it.
//!
//!     soak [SECONDS (600)] [RECORDS PER SECOND (300)]

use brook_tests::{free_port, unique, wait_for, BrookRun, Http, OwnBroker};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USERS: usize = 100;
const CLIENTS: usize = 20;
const PARTITIONS: i32 = 4;

/// What the producer wrote: valid order ids by user, and the malformed ones.
#[derive(Default)]
struct Written {
    valid: BTreeMap<String, BTreeSet<u64>>,
    malformed: BTreeSet<u64>,
}

/// Resource figures of the server process over the run.
#[derive(Default)]
struct Samples {
    /// (seconds since start, resident kB, open descriptors)
    points: Vec<(f64, u64, u64)>,
}

fn argument(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n + 1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The server's resident memory (kB) and open file descriptors.
fn resources(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

struct Server {
    run: BrookRun,
    http: Http,
}

fn start_server(bootstrap: &str, service: &str, state: &str, port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let run = BrookRun::serve_with(
        "soak",
        bootstrap,
        &listen,
        service,
        state,
        // A static member: restarted after SIGKILL with the same id, it takes back its
        // partitions at once.
        &["--instance-id", "soak-1"],
    );
    Server {
        run,
        http: Http::new(port),
    }
}

/// One client: push queries read for a while and then dropped without closing, and pull
/// queries, until `stop`. Counts what it did; errors while the server restarts are
/// expected and counted.
fn client(
    port: u16,
    n: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) {
    let mut rng = fastrand::Rng::with_seed(n as u64);
    while !stop.load(Ordering::Relaxed) {
        let ok = if rng.bool() {
            let sql = if rng.bool() {
                "SELECT user_id, id FROM orders EMIT CHANGES;"
            } else {
                "SELECT * FROM user_totals EMIT CHANGES;"
            };
            push_and_drop(port, sql, rng.u64(1..200))
        } else {
            let user = rng.usize(0..USERS);
            let body =
                json!({"ksql": format!("SELECT * FROM user_totals WHERE user_id = 'u{user}';")});
            post(port, "/query", &body).is_some_and(|(status, _)| status == 200)
        };
        if ok {
            done.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A push query read until `bytes` of rows came, then the connection dropped mid-answer.
fn push_and_drop(port: u16, sql: &str, kilobytes: u64) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // From the latest records: the test broker answers a fetch with everything from its
    // offset on, whatever size the client asks for, so a push query from the earliest
    // record would hold the whole topic (which grows through the run) in its consumer.
    // With Kafka a push query's read-ahead is bounded (`Prefetch::Small`).
    let body = json!({"sql": sql, "properties": {"auto.offset.reset": "latest"}}).to_string();
    let request = format!(
        "POST /query-stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut seen = 0u64;
    let mut buffer = [0u8; 8192];
    let mut header = false;
    while seen < kilobytes * 1024 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                header |= String::from_utf8_lossy(&buffer[..n]).contains("queryId");
                seen += n as u64;
            }
        }
    }
    // Dropped here, without a close-query: the server must notice and let the query go.
    header
}

/// The order id of a record the producer wrote, valid or malformed.
fn order_id(value: &[u8]) -> Option<u64> {
    if let Ok(v) = serde_json::from_slice::<Value>(value) {
        return v["ID"].as_u64();
    }
    std::str::from_utf8(value)
        .ok()?
        .strip_prefix("{\"ID\": ")?
        .split(',')
        .next()?
        .parse()
        .ok()
}

fn post(port: u16, path: &str, body: &Value) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.body_mut().read_to_string().ok()?))
}

fn main() {
    let seconds = argument(0, 600);
    let rate = argument(1, 300);
    let started = Instant::now();
    println!("soak: {seconds} s at {rate} records/s, {CLIENTS} clients");

    let broker = OwnBroker::start();
    let bootstrap = broker.broker.bootstrap.clone();
    let orders = unique("orders");
    let users = unique("users");
    broker.broker.create_topic(&orders, PARTITIONS);
    broker.broker.create_topic(&users, PARTITIONS);
    let names: Vec<_> = (0..USERS)
        .map(|u| {
            (
                Some(format!("u{u}").into_bytes()),
                Some(
                    json!({"NAME": format!("user {u}")})
                        .to_string()
                        .into_bytes(),
                ),
                now_ms(),
            )
        })
        .collect();
    broker.broker.produce(&users, &names);

    let service = unique("soak");
    let state = std::env::temp_dir().join(unique("soak-state"));
    let state = state.display().to_string();
    let port = free_port();
    let mut server = start_server(&bootstrap, &service, &state, port);
    let statements = format!(
        "CREATE STREAM orders (user_id STRING KEY, id BIGINT, amount DOUBLE) WITH (kafka_topic='{orders}', value_format='JSON');
         CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='{users}', value_format='JSON');
         CREATE STREAM orders_out AS SELECT user_id, id, amount * 2 AS doubled FROM orders WHERE amount >= 0;
         CREATE TABLE order_windows AS SELECT user_id, COUNT(*) AS n FROM orders WINDOW TUMBLING (SIZE 30 SECONDS) GROUP BY user_id;
         CREATE STREAM enriched AS SELECT o.user_id AS user_id, o.id AS id, u.name AS name FROM orders o LEFT JOIN users u ON o.user_id = u.id;
         CREATE TABLE user_totals AS SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id;"
    );
    let body = json!({"ksql": statements, "streamsProperties": {"auto.offset.reset": "earliest"}});
    let (status, answer) = post(port, "/ksql", &body).expect("the server takes the statements");
    assert_eq!(status, 200, "{answer}");

    // The producer: `rate` records a second, one in a hundred malformed.
    let stop = Arc::new(AtomicBool::new(false));
    // The id the producer writes next: where the broker restart falls in the ids.
    let next_id = Arc::new(AtomicU64::new(0));
    let written = Arc::new(Mutex::new(Written::default()));
    let producer_thread = {
        let (stop, written, bootstrap, orders, next_id) = (
            stop.clone(),
            written.clone(),
            bootstrap.clone(),
            orders.clone(),
            next_id.clone(),
        );
        std::thread::spawn(move || {
            let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("partitioner", "murmur2_random")
                .set("linger.ms", "5")
                .set("message.timeout.ms", "300000")
                .create()
                .expect("producer");
            let mut id = 0u64;
            let tick = Duration::from_millis(100);
            let per_tick = (rate / 10).max(1);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..per_tick {
                    let user = format!("u{}", id % USERS as u64);
                    let malformed = id % 100 == 99;
                    let value = if malformed {
                        format!("{{\"ID\": {id}, \"AMOUNT\": oops{id}")
                    } else {
                        json!({"ID": id, "AMOUNT": (id % 1000) as f64 / 10.0}).to_string()
                    };
                    let mut record = BaseRecord::to(&orders)
                        .key(user.as_bytes())
                        .payload(value.as_bytes())
                        .timestamp(now_ms());
                    // A broker that is down fills the queue: wait for room, losing nothing.
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((_, back)) => {
                                record = back;
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    let mut w = written.lock().unwrap_or_else(|p| p.into_inner());
                    if malformed {
                        w.malformed.insert(id);
                    } else {
                        w.valid.entry(user).or_default().insert(id);
                    }
                    id += 1;
                    next_id.store(id, Ordering::Relaxed);
                }
                next += tick;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            producer
                .flush(Duration::from_secs(300))
                .expect("every record acknowledged");
        })
    };

    // The clients.
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || client(port, n, stop, done, failed))
        })
        .collect();

    // Faults, and a sample of the server's resources every 2 s.
    let mut samples = Samples::default();
    let mut restarts = 0;
    let mut broker_restarts = 0;
    // The ids written in the 15 s before each broker stop: what the test broker may lose
    // of its acknowledged records (input, outputs, processing log) in its restarts.
    let mut loss_windows: Vec<std::ops::Range<u64>> = Vec::new();
    let end = started + Duration::from_secs(seconds);
    let kill_at = started + Duration::from_secs(seconds / 4);
    let broker_at = [
        started + Duration::from_secs(seconds / 2),
        started + Duration::from_secs(3 * seconds / 4),
    ];
    while Instant::now() < end {
        if restarts == 0 && Instant::now() >= kill_at {
            println!(
                "soak: SIGKILL to the server at {:.0} s",
                started.elapsed().as_secs_f64()
            );
            server.run.kill9();
            server = start_server(&bootstrap, &service, &state, port);
            restarts += 1;
        }
        if broker_at
            .get(broker_restarts)
            .is_some_and(|at| Instant::now() >= *at)
        {
            println!(
                "soak: broker stopped at {:.0} s",
                started.elapsed().as_secs_f64()
            );
            let at = next_id.load(Ordering::Relaxed);
            loss_windows.push(at.saturating_sub(15 * rate)..at);
            broker.stop();
            std::thread::sleep(Duration::from_secs(10));
            broker.resume();
            println!(
                "soak: broker back at {:.0} s",
                started.elapsed().as_secs_f64()
            );
            broker_restarts += 1;
        }
        if let Some((rss, fds)) = resources(server.run.pid()) {
            samples
                .points
                .push((started.elapsed().as_secs_f64(), rss, fds));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let lost_with_broker = |id: &u64| loss_windows.iter().any(|w| w.contains(id));
    stop.store(true, Ordering::Relaxed);
    producer_thread.join().expect("producer");
    for c in clients {
        c.join().expect("client");
    }
    let written = Arc::try_unwrap(written)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_else(|_| panic!("the producer is done"));
    let valid: BTreeSet<u64> = written.valid.values().flatten().copied().collect();
    let records = valid.len() + written.malformed.len();
    println!(
        "soak: produced {records} records ({} malformed); clients ran {} queries ({} failed, mostly while the server or broker restarted)",
        written.malformed.len(),
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );

    let mut problems = Vec::new();
    // What the broker holds of what it acknowledged: the test broker can come back from
    // a restart without records it acknowledged just before it stopped, and those are no
    // query's to lose.
    let input = broker
        .broker
        .read_topic(&orders, records, Duration::from_secs(60));
    let held: BTreeSet<u64> = input
        .iter()
        .filter_map(|r| order_id(r.value.as_deref()?))
        .collect();
    let lost_by_broker = valid.difference(&held).count();
    println!(
        "soak: the broker holds {} of the {} valid records acknowledged ({lost_by_broker} lost in its restart)",
        valid.len() - lost_by_broker,
        valid.len()
    );
    let valid: BTreeSet<u64> = valid.intersection(&held).copied().collect();
    let malformed: BTreeSet<u64> = written.malformed.intersection(&held).copied().collect();
    // Every valid order reaches the stateless query's and the join's output.
    for topic in ["ORDERS_OUT", "ENRICHED"] {
        let missing = wait_for(Duration::from_secs(300), || {
            let out = broker
                .broker
                .read_topic(topic, valid.len(), Duration::from_secs(30));
            let seen: BTreeSet<u64> = out
                .iter()
                .filter_map(|r| serde_json::from_slice::<Value>(r.value.as_deref()?).ok())
                .filter_map(|v| v["ID"].as_u64())
                .collect();
            let (near_restart, missing): (Vec<u64>, Vec<u64>) =
                valid.difference(&seen).partition(|id| lost_with_broker(id));
            println!(
                "soak: {topic}: {} records, {} orders missing ({} more missing were written just before the broker restart)",
                out.len(),
                missing.len(),
                near_restart.len()
            );
            missing.is_empty().then_some(())
        });
        if missing.is_none() {
            problems.push(format!("{topic} is missing orders"));
        }
    }
    // Every user's total counts at least its valid orders (at-least-once may count more).
    let totals = wait_for(Duration::from_secs(300), || {
        let out = broker
            .broker
            .read_topic("USER_TOTALS", 1, Duration::from_secs(30));
        let mut latest: BTreeMap<String, u64> = BTreeMap::new();
        for r in &out {
            let (Some(k), Some(v)) = (&r.key, &r.value) else {
                continue;
            };
            let n = serde_json::from_slice::<Value>(v)
                .ok()
                .and_then(|v| v["N"].as_u64());
            latest.insert(String::from_utf8_lossy(k).into_owned(), n.unwrap_or(0));
        }
        let short: Vec<_> = written
            .valid
            .iter()
            .filter(|(user, ids)| {
                let expected = ids.iter().filter(|id| valid.contains(id)).count() as u64;
                latest.get(*user).copied().unwrap_or(0) < expected
            })
            .map(|(user, _)| user.clone())
            .collect();
        println!(
            "soak: USER_TOTALS: {} users short of their orders",
            short.len()
        );
        short.is_empty().then_some(())
    });
    if totals.is_none() {
        problems.push("USER_TOTALS counts fewer orders than were written".into());
    }
    // Every malformed record is in the processing log of each query that reads orders.
    let log_topic = format!("{service}ksql_processing_log");
    let logged = wait_for(Duration::from_secs(120), || {
        let out = broker
            .broker
            .read_topic(&log_topic, 1, Duration::from_secs(30));
        let mut by_query: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for r in &out {
            let Some(entry) = r
                .value
                .as_deref()
                .and_then(|v| serde_json::from_slice::<Value>(v).ok())
            else {
                continue;
            };
            let logger = entry["logger"].as_str().unwrap_or_default().to_string();
            // The persistent queries' loggers; the clients' push queries log too, of what
            // they read.
            if !(logger.contains("CSAS_") || logger.contains("CTAS_")) {
                continue;
            }
            let record = entry["message"]["deserializationError"]["recordB64"]
                .as_str()
                .and_then(|b| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                })
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if let Some(id) = order_id(record.as_bytes()) {
                by_query.entry(logger).or_default().insert(id);
            }
        }
        let complete = by_query
            .values()
            .filter(|ids| {
                malformed
                    .iter()
                    .all(|id| ids.contains(id) || lost_with_broker(id))
            })
            .count();
        println!(
            "soak: processing log: {} records; {complete} of {} loggers have every malformed record",
            out.len(),
            by_query.len()
        );
        (by_query.len() >= 4 && complete == by_query.len()).then_some(())
    });
    if logged.is_none() {
        problems.push("malformed records are missing from the processing log".into());
    }
    // No query is in ERROR.
    let (status, queries) = server.http.ksql("SHOW QUERIES;");
    let states: Vec<String> = queries[0]["queries"]
        .as_array()
        .map(|qs| {
            qs.iter()
                .map(|q| {
                    format!(
                        "{} {}",
                        q["id"].as_str().unwrap_or("?"),
                        q["state"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("soak: queries: {states:?}");
    if status != 200 || states.len() != 4 || states.iter().any(|s| !s.ends_with("RUNNING")) {
        problems.push(format!("queries not all RUNNING: {states:?}"));
    }
    // Resources: the server's memory steps up when the broker comes back (the backlog of
    // its outage arrives at once, and the allocator keeps what it took), so the quarter
    // after the second broker restart must hold no more than the quarter after the first
    // plus a margin: a second fault adds no step, and nothing grows steadily.
    let after = |from: f64, to: f64| {
        samples
            .points
            .iter()
            .filter(|(t, _, _)| *t >= from && *t < to)
            .fold((0u64, 0u64), |(r, f), (_, rss, fds)| {
                (r.max(*rss), f.max(*fds))
            })
    };
    let s = seconds as f64;
    let (third_rss, third_fds) = after(s / 2.0, 3.0 * s / 4.0);
    let (last_rss, last_fds) = after(3.0 * s / 4.0, s + 1.0);
    let (peak_rss, peak_fds) = after(0.0, s + 1.0);
    // The resident memory of each tenth of the run, to tell a steady growth from a step.
    let timeline: Vec<String> = (0..10)
        .map(|i| {
            let (rss, _) = after(s * i as f64 / 10.0, s * (i + 1) as f64 / 10.0);
            format!("{}", rss / 1024)
        })
        .collect();
    println!("soak: RSS by tenth of the run (MB): {}", timeline.join(" "));
    println!(
        "soak: peak RSS {} MB, peak open descriptors {peak_fds}; third quarter {} MB / {third_fds}, last quarter {} MB / {last_fds}",
        peak_rss / 1024,
        third_rss / 1024,
        last_rss / 1024
    );
    if third_rss == 0 {
        problems.push("no resource samples in the third quarter".into());
    } else if last_rss > third_rss + third_rss / 4 + 32 * 1024 || last_fds > third_fds + 64 {
        problems.push("memory or descriptors grew in the last quarter".into());
    }
    println!(
        "soak: {restarts} server restart(s) and {broker_restarts} broker restart(s) survived in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let stderr = server.run.stderr();
    let _ = server.run.terminate();
    drop(broker);
    if problems.is_empty() {
        println!("soak: passed");
    } else {
        eprintln!(
            "soak: FAILED: {problems:?}\nlast server output:\n{}",
            &stderr[stderr.len().saturating_sub(4000)..]
        );
        std::process::exit(1);
    }
}
