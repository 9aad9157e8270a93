//! Joins under `brook run` on a real broker: a stream of trades enriched with a table of
//! users that changes mid-stream, across a clean restart; and a stream-stream join with
//! records out of order, within and beyond the grace period.

use brook_tests::{broker, recent_timestamp, unique, wait_for, BrookRun, Input};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const TRADES: i64 = 100_000;
const USERS: i64 = 10_000;
/// Users whose tier changes halfway through the trades.
const UPDATED: i64 = 1_000;

fn user_of(trade: i64) -> i64 {
    (trade * 7919) % USERS
}

fn args<'a>(b: &'a str, service: &'a str, state: &'a Path) -> Vec<String> {
    vec![
        "--bootstrap-servers".into(),
        b.into(),
        "--service-id".into(),
        service.into(),
        "--instance-id".into(),
        "join-test".into(),
        "--state-dir".into(),
        state.display().to_string(),
    ]
}

fn user(id: i64, tier: &str, ts: i64) -> Input {
    (
        Some(format!("u{id}").into_bytes()),
        Some(
            json!({"name": format!("user {id}"), "tier": tier})
                .to_string()
                .into_bytes(),
        ),
        ts,
    )
}

fn trade(i: i64, ts: i64) -> Input {
    (
        Some(format!("u{}", user_of(i)).into_bytes()),
        Some(
            json!({"trade_id": i, "amount": i % 1000})
                .to_string()
                .into_bytes(),
        ),
        ts,
    )
}

/// trade id -> (user key, amount, name, tier)
type Enriched = BTreeMap<i64, (String, i64, String, String)>;

fn enriched(records: &[brook_tests::Record]) -> (Enriched, usize) {
    let mut out = Enriched::new();
    for r in records {
        let v = r.value_json();
        out.insert(
            v["TRADE_ID"].as_i64().unwrap_or(-1),
            (
                r.key_str(),
                v["AMOUNT"].as_i64().unwrap_or(-1),
                v["NAME"].as_str().unwrap_or("<null>").to_string(),
                v["TIER"].as_str().unwrap_or("<null>").to_string(),
            ),
        );
    }
    (out, records.len())
}

#[test]
fn trades_enriched_with_users_are_exact_across_a_restart_and_a_table_update() {
    enrich_across_a_restart(false);
}

#[test]
fn join_state_is_rebuilt_from_its_changelog_when_the_local_store_is_gone() {
    // The users table is only in the join's store: after the restart, trades find their
    // users only if the store came back from the changelog.
    enrich_across_a_restart(true);
}

fn enrich_across_a_restart(delete_state: bool) {
    let b = broker();
    let trades_topic = unique("trades");
    let users_topic = unique("users");
    let output = unique("ENRICHED");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    b.create_topic(&trades_topic, 4);
    b.create_topic(&users_topic, 4);

    // Users first, then trades two milliseconds apart; halfway, a tenth of the users move
    // to another tier, at a time between two trades. The join waits for a partition that
    // is behind up to max.task.idle.ms: 10 s here, as a loaded machine (the other join
    // tests run beside this one) can take longer than the default 2 s to fetch the users.
    let base = recent_timestamp();
    let trade_ts = |i: i64| base + 10 + 2 * i;
    let half = TRADES / 2;
    let update_ts = trade_ts(half) - 1;
    let users: Vec<Input> = (0..USERS).map(|u| user(u, "silver", base)).collect();
    let updates: Vec<Input> = (0..UPDATED).map(|u| user(u, "gold", update_ts)).collect();
    let trades: Vec<Input> = (0..TRADES).map(|i| trade(i, trade_ts(i))).collect();
    let mut expected = Enriched::new();
    for i in 0..TRADES {
        let u = user_of(i);
        let tier = if u < UPDATED && i >= half {
            "gold"
        } else {
            "silver"
        };
        expected.insert(
            i,
            (
                format!("u{u}"),
                i % 1000,
                format!("user {u}"),
                tier.to_string(),
            ),
        );
    }

    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'max.poll.interval.ms' = '6000';
         SET 'session.timeout.ms' = '6000';
         SET 'heartbeat.interval.ms' = '1000';
         SET 'max.task.idle.ms' = '10000';
         CREATE STREAM trades (user_id STRING KEY, trade_id BIGINT, amount BIGINT)
           WITH (kafka_topic = '{trades_topic}', value_format = 'JSON');
         CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, tier STRING)
           WITH (kafka_topic = '{users_topic}', value_format = 'JSON');
         CREATE STREAM enriched WITH (kafka_topic = '{output}') AS
           SELECT t.user_id AS user_id, t.trade_id, t.amount, u.name, u.tier
           FROM trades t LEFT JOIN users u ON t.user_id = u.user_id;"
    );
    let args = args(&b.bootstrap, &service, &state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    b.produce(&users_topic, &users);
    b.produce(&trades_topic, &trades[..half as usize]);
    let mut run = BrookRun::start("joins", &sql, &args);
    run.wait_for_stdout(
        "Created query with ID CSAS_ENRICHED_",
        Duration::from_secs(60),
    );
    let mut seen = 0;
    let first = wait_for(Duration::from_secs(300), || {
        let got = b.read_topic(&output, half as usize, Duration::from_secs(30));
        seen = got.len();
        (got.len() >= half as usize).then_some(())
    });
    assert!(
        first.is_some(),
        "the first half was not joined ({seen} results); stderr:\n{}",
        run.stderr()
    );
    assert!(run.terminate().success());
    if delete_state {
        assert!(state.exists(), "the join kept no local state");
        std::fs::remove_dir_all(&state).expect("delete the state directory");
    }

    // While the query is stopped: the table changes, then the rest of the trades come.
    b.produce(&users_topic, &updates);
    b.produce(&trades_topic, &trades[half as usize..]);
    let run = BrookRun::start("joins", &sql, &args);
    let done = wait_for(Duration::from_secs(300), || {
        let got = b.read_topic(&output, TRADES as usize, Duration::from_secs(30));
        (got.len() >= TRADES as usize).then_some(got)
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    let got = done.unwrap_or_else(|| panic!("not every trade was joined; stderr:\n{stderr}"));
    let (table, written) = enriched(&got);
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| table.get(k) != Some(v))
        .take(5)
        .map(|(k, v)| (k, v, table.get(k)))
        .collect();
    assert!(wrong.is_empty(), "trades joined wrongly: {wrong:?}");
    assert_eq!(table.len(), expected.len());
    assert_eq!(
        written, TRADES as usize,
        "one result per trade, none repeated"
    );
}

#[test]
fn stream_stream_join_handles_records_out_of_order_within_and_beyond_the_grace_period() {
    let b = broker();
    let orders = unique("orders");
    let shipments = unique("shipments");
    let output = unique("SHIPPED");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    b.create_topic(&orders, 1);
    b.create_topic(&shipments, 1);
    let base = recent_timestamp() / 1000 * 1000;
    let s = |seconds: i64| base + seconds * 1000;
    let record = |id: &str, field: &str, ts: i64| -> Input {
        (
            Some(id.as_bytes().to_vec()),
            Some(
                json!({ field: format!("{id}-{field}") })
                    .to_string()
                    .into_bytes(),
            ),
            ts,
        )
    };
    // Orders: E comes after D although it is far older (beyond the grace period). Each
    // task reads its topics in time order, so shipments interleave with orders by time.
    b.produce(
        &orders,
        &[
            record("A", "item", s(0)),
            record("B", "item", s(100)),
            record("C", "item", s(170)),
            record("D", "item", s(400)),
            record("E", "item", s(10)),
            record("F", "item", s(1000)),
        ],
    );
    // Shipments: C's arrives 30 seconds after its order (within the window), E's too late
    // to find its order still buffered.
    b.produce(
        &shipments,
        &[
            record("A", "carrier", s(30)),
            record("C", "carrier", s(200)),
            record("E", "carrier", s(20)),
        ],
    );
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM orders (id STRING KEY, item STRING)
           WITH (kafka_topic = '{orders}', value_format = 'JSON');
         CREATE STREAM shipments (id STRING KEY, carrier STRING)
           WITH (kafka_topic = '{shipments}', value_format = 'JSON');
         CREATE STREAM shipped WITH (kafka_topic = '{output}') AS
           SELECT o.id AS id, o.item, s.carrier
           FROM orders o LEFT JOIN shipments s
             WITHIN 1 MINUTE GRACE PERIOD 30 SECONDS ON o.id = s.id;"
    );
    let args = args(&b.bootstrap, &service, &state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = BrookRun::start("stream-stream", &sql, &args);
    let expected: Vec<(String, String, String, i64)> = [
        ("A", "A-item", "A-carrier", s(30)),
        // B's window closed when C's shipment came (stream time 200 s is past its end,
        // 100 + 60 + 30 s): it is emitted once, without a shipment, before that shipment
        // joins C.
        ("B", "B-item", "<null>", s(100)),
        ("C", "C-item", "C-carrier", s(200)),
        // E's window had closed before it came: emitted at once, never joined.
        ("E", "E-item", "<null>", s(10)),
        // D's window closed when F came.
        ("D", "D-item", "<null>", s(400)),
    ]
    .iter()
    .map(|(k, i, c, t)| (k.to_string(), i.to_string(), c.to_string(), *t))
    .collect();
    let got = wait_for(Duration::from_secs(120), || {
        let got = b.read_topic(&output, expected.len(), Duration::from_secs(2));
        (got.len() >= expected.len()).then_some(got)
    });
    // Nothing more comes: F's window is still open.
    std::thread::sleep(Duration::from_secs(3));
    let all = b.read_topic(&output, expected.len() + 1, Duration::from_secs(2));
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    assert!(
        got.is_some(),
        "the join wrote too little; stderr:\n{stderr}"
    );
    let rows: Vec<(String, String, String, i64)> = all
        .iter()
        .map(|r| {
            let v = r.value_json();
            (
                r.key_str(),
                v["ITEM"].as_str().unwrap_or("<null>").to_string(),
                v["CARRIER"].as_str().unwrap_or("<null>").to_string(),
                r.timestamp,
            )
        })
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn a_stream_joined_on_a_value_column_moves_to_the_partitions_of_the_table() {
    let b = broker();
    let trades_topic = unique("trades-by-id");
    let users_topic = unique("users");
    let output = unique("ENRICHED_BY_ID");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    b.create_topic(&trades_topic, 4);
    b.create_topic(&users_topic, 4);
    let base = recent_timestamp();
    let users: Vec<Input> = (0..2_000).map(|u| user(u, "silver", base)).collect();
    // Trades keyed by their own id: the user they name is usually in another partition.
    let n = 20_000i64;
    let trades: Vec<Input> = (0..n)
        .map(|i| {
            (
                Some(format!("t{i}").into_bytes()),
                Some(
                    json!({"user_id": format!("u{}", i % 2_000), "amount": i % 1000})
                        .to_string()
                        .into_bytes(),
                ),
                base + 10 + i,
            )
        })
        .collect();
    b.produce(&users_topic, &users);
    b.produce(&trades_topic, &trades);
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM trades (trade_id STRING KEY, user_id STRING, amount BIGINT)
           WITH (kafka_topic = '{trades_topic}', value_format = 'JSON');
         CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, tier STRING)
           WITH (kafka_topic = '{users_topic}', value_format = 'JSON');
         CREATE STREAM enriched WITH (kafka_topic = '{output}') AS
           SELECT t.user_id AS user_id, t.trade_id, t.amount, u.name
           FROM trades t JOIN users u ON t.user_id = u.user_id;"
    );
    let args = args(&b.bootstrap, &service, &state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = BrookRun::start("repartitioned-join", &sql, &args);
    let got = wait_for(Duration::from_secs(300), || {
        let got = b.read_topic(&output, n as usize, Duration::from_secs(30));
        (got.len() >= n as usize).then_some(got)
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    let got = got.unwrap_or_else(|| panic!("not every trade was joined; stderr:\n{stderr}"));
    assert_eq!(got.len(), n as usize, "one result per trade");
    let mut seen = std::collections::BTreeSet::new();
    for r in &got {
        let v = r.value_json();
        let trade: i64 = v["TRADE_ID"]
            .as_str()
            .and_then(|t| t.strip_prefix('t'))
            .and_then(|t| t.parse().ok())
            .unwrap_or(-1);
        let user = format!("u{}", trade % 2_000);
        assert_eq!(r.key_str(), user, "results are keyed by the join key");
        assert_eq!(
            v["NAME"].as_str(),
            Some(format!("user {}", trade % 2_000).as_str())
        );
        assert_eq!(v["AMOUNT"].as_i64(), Some(trade % 1000));
        // Keyed by user, the result is where the user's table row is.
        assert_eq!(
            r.partition,
            brook_tests::murmur2_partition(user.as_bytes(), 4),
            "{user} is in the partition of its key"
        );
        seen.insert(trade);
    }
    assert_eq!(seen.len(), n as usize, "every trade joined once");
}

#[test]
fn a_foreign_key_join_over_partitioned_tables_ends_with_the_right_table() {
    let b = broker();
    let orders_topic = unique("orders");
    let customers_topic = unique("customers");
    let output = unique("ORDER_CUSTOMERS");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    b.create_topic(&orders_topic, 4);
    b.create_topic(&customers_topic, 4);
    let base = recent_timestamp();
    let customer = |c: i64, name: Option<&str>, ts: i64| -> Input {
        (
            Some(format!("c{c}").into_bytes()),
            name.map(|n| json!({ "name": n }).to_string().into_bytes()),
            ts,
        )
    };
    let order = |o: i64, c: Option<i64>, ts: i64| -> Input {
        (
            Some(format!("o{o}").into_bytes()),
            c.map(|c| {
                json!({"customer_id": format!("c{c}"), "amount": o})
                    .to_string()
                    .into_bytes()
            }),
            ts,
        )
    };
    let mut names: BTreeMap<i64, String> = (0..100).map(|c| (c, format!("customer {c}"))).collect();
    let mut orders: BTreeMap<i64, i64> = (0..1000).map(|o| (o, o % 100)).collect();
    let customers: Vec<Input> = (0..100)
        .map(|c| customer(c, Some(&format!("customer {c}")), base))
        .collect();
    let first_orders: Vec<Input> = (0..1000)
        .map(|o| order(o, Some(o % 100), base + 10 + o))
        .collect();
    // Later: a hundred orders move to another customer, fifty are deleted, one customer
    // is renamed and one deleted.
    let t = base + 5_000;
    let mut order_changes = Vec::new();
    for o in 0..100 {
        order_changes.push(order(o, Some((o + 1) % 100), t + o));
        orders.insert(o, (o + 1) % 100);
    }
    for o in 900..950 {
        order_changes.push(order(o, None, t + o));
        orders.remove(&o);
    }
    let customer_changes = vec![
        customer(7, Some("renamed"), t + 2_000),
        customer(5, None, t + 2_001),
    ];
    names.insert(7, "renamed".into());
    names.remove(&5);
    b.produce(&customers_topic, &customers);
    b.produce(&orders_topic, &first_orders);
    b.produce(&orders_topic, &order_changes);
    b.produce(&customers_topic, &customer_changes);

    let expected: BTreeMap<String, (String, i64)> = orders
        .iter()
        .filter_map(|(o, c)| {
            names
                .get(c)
                .map(|name| (format!("o{o}"), (name.clone(), *o)))
        })
        .collect();
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE TABLE orders (order_id STRING PRIMARY KEY, customer_id STRING, amount BIGINT)
           WITH (kafka_topic = '{orders_topic}', value_format = 'JSON');
         CREATE TABLE customers (customer_id STRING PRIMARY KEY, name STRING)
           WITH (kafka_topic = '{customers_topic}', value_format = 'JSON');
         CREATE TABLE order_customers WITH (kafka_topic = '{output}') AS
           SELECT o.order_id, c.name, o.amount
           FROM orders o JOIN customers c ON o.customer_id = c.customer_id;"
    );
    let args = args(&b.bootstrap, &service, &state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = BrookRun::start("fk-join", &sql, &args);
    let fold = |records: &[brook_tests::Record]| {
        let mut table: BTreeMap<String, (String, i64)> = BTreeMap::new();
        for r in records {
            match &r.value {
                None => {
                    table.remove(&r.key_str());
                }
                Some(_) => {
                    let v = r.value_json();
                    table.insert(
                        r.key_str(),
                        (
                            v["NAME"].as_str().unwrap_or("<null>").to_string(),
                            v["AMOUNT"].as_i64().unwrap_or(-1),
                        ),
                    );
                }
            }
        }
        table
    };
    let got = wait_for(Duration::from_secs(180), || {
        let records = b.read_topic(&output, 1, Duration::from_secs(10));
        let table = fold(&records);
        (table == expected).then_some(table)
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    let last = fold(&b.read_topic(&output, 1, Duration::from_secs(10)));
    assert!(
        got.is_some(),
        "the joined table differs: {} rows, expected {}; first differences: {:?}; stderr:\n{stderr}",
        last.len(),
        expected.len(),
        expected
            .iter()
            .filter(|(k, v)| last.get(*k) != Some(v))
            .take(3)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_three_way_join_on_message_keys_runs_per_partition() {
    let b = broker();
    let clicks = unique("clicks");
    let users = unique("users");
    let plans = unique("plans");
    let output = unique("CLICKS_ENRICHED");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    for t in [&clicks, &users, &plans] {
        b.create_topic(t, 3);
    }
    let base = recent_timestamp();
    let keyed = |k: i64, value: serde_json::Value, ts: i64| -> Input {
        (
            Some(format!("u{k}").into_bytes()),
            Some(value.to_string().into_bytes()),
            ts,
        )
    };
    b.produce(
        &users,
        &(0..300)
            .map(|u| keyed(u, json!({"name": format!("user {u}")}), base))
            .collect::<Vec<_>>(),
    );
    // Only even users have a plan.
    b.produce(
        &plans,
        &(0..300)
            .filter(|u| u % 2 == 0)
            .map(|u| keyed(u, json!({"plan": format!("plan {}", u % 3)}), base))
            .collect::<Vec<_>>(),
    );
    let n = 3_000i64;
    b.produce(
        &clicks,
        &(0..n)
            .map(|i| keyed(i % 300, json!({"page": format!("/p{i}")}), base + 10 + i))
            .collect::<Vec<_>>(),
    );
    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         CREATE STREAM clicks (user_id STRING KEY, page STRING)
           WITH (kafka_topic = '{clicks}', value_format = 'JSON');
         CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING)
           WITH (kafka_topic = '{users}', value_format = 'JSON');
         CREATE TABLE plans (user_id STRING PRIMARY KEY, plan STRING)
           WITH (kafka_topic = '{plans}', value_format = 'JSON');
         CREATE STREAM clicks_enriched WITH (kafka_topic = '{output}') AS
           SELECT c.user_id AS user_id, c.page, u.name, p.plan
           FROM clicks c
             JOIN users u ON c.user_id = u.user_id
             LEFT JOIN plans p ON c.user_id = p.user_id;"
    );
    let args = args(&b.bootstrap, &service, &state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = BrookRun::start("n-way", &sql, &args);
    let got = wait_for(Duration::from_secs(180), || {
        let got = b.read_topic(&output, n as usize, Duration::from_secs(20));
        (got.len() >= n as usize).then_some(got)
    });
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    let got = got.unwrap_or_else(|| panic!("not every click was joined; stderr:\n{stderr}"));
    assert_eq!(got.len(), n as usize, "one result per click");
    for r in &got {
        let v = r.value_json();
        let user: i64 = r.key_str().trim_start_matches('u').parse().unwrap_or(-1);
        assert_eq!(v["NAME"].as_str(), Some(format!("user {user}").as_str()));
        let plan = (user % 2 == 0).then(|| format!("plan {}", user % 3));
        assert_eq!(v["PLAN"].as_str().map(str::to_string), plan, "{user}");
    }
}

/// An aggregation of a join's rows (ksqlDB's `GROUP BY` over a join): trades joined with
/// their users and summed per tier, across a clean restart with the users' table changing
/// while the query is stopped. The join's state and the totals both come back.
#[test]
fn trades_joined_with_users_are_summed_per_tier_across_a_restart() {
    const TRADES: i64 = 20_000;
    const USERS: i64 = 1_000;
    let b = broker();
    let trades_topic = unique("agg-trades");
    let users_topic = unique("agg-users");
    let output = unique("PER_TIER");
    let service = unique("svc");
    let state = std::env::temp_dir().join(unique("brook-state"));
    b.create_topic(&trades_topic, 4);
    b.create_topic(&users_topic, 4);
    let tier = |u: i64, moved: bool| match (u % 3, moved && u < 100) {
        (_, true) => "platinum",
        (0, _) => "gold",
        (1, _) => "silver",
        _ => "bronze",
    };
    let base = recent_timestamp();
    let trade_ts = |i: i64| base + 10 + 2 * i;
    let half = TRADES / 2;
    let users: Vec<Input> = (0..USERS).map(|u| user(u, tier(u, false), base)).collect();
    let moves: Vec<Input> = (0..100)
        .map(|u| user(u, tier(u, true), trade_ts(half) - 1))
        .collect();
    let trades: Vec<Input> = (0..TRADES)
        .map(|i| {
            let u = i % USERS;
            (
                Some(format!("u{u}").into_bytes()),
                Some(
                    json!({"trade_id": i, "amount": i % 100})
                        .to_string()
                        .into_bytes(),
                ),
                trade_ts(i),
            )
        })
        .collect();
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..TRADES {
        let u = i % USERS;
        let e = expected.entry(tier(u, i >= half).to_string()).or_default();
        e.0 += 1;
        e.1 += i % 100;
    }

    let sql = format!(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'max.poll.interval.ms' = '6000';
         SET 'session.timeout.ms' = '6000';
         SET 'heartbeat.interval.ms' = '1000';
         SET 'max.task.idle.ms' = '10000';
         CREATE STREAM trades (user_id STRING KEY, trade_id BIGINT, amount BIGINT)
           WITH (kafka_topic = '{trades_topic}', value_format = 'JSON');
         CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, tier STRING)
           WITH (kafka_topic = '{users_topic}', value_format = 'JSON');
         CREATE TABLE per_tier WITH (kafka_topic = '{output}') AS
           SELECT u.tier AS tier, COUNT(*) AS trades, SUM(t.amount) AS total
           FROM trades t JOIN users u ON t.user_id = u.user_id
           WHERE t.amount >= 0
           GROUP BY u.tier;"
    );
    let args = args(&b.bootstrap, &service, &state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The latest totals per tier in the output, and whether they reach `want`.
    let totals = |want: &BTreeMap<String, (i64, i64)>| {
        let mut latest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let found = wait_for(Duration::from_secs(300), || {
            for r in b.read_topic(&output, usize::MAX, Duration::from_secs(5)) {
                let v = r.value_json();
                latest.insert(
                    r.key_str(),
                    (
                        v["TRADES"].as_i64().unwrap_or(-1),
                        v["TOTAL"].as_i64().unwrap_or(-1),
                    ),
                );
            }
            (latest == *want).then_some(())
        });
        (found.is_some(), latest)
    };

    b.produce(&users_topic, &users);
    b.produce(&trades_topic, &trades[..half as usize]);
    let mut run = BrookRun::start("joins", &sql, &args);
    run.wait_for_stdout(
        "Created query with ID CTAS_PER_TIER_",
        Duration::from_secs(60),
    );
    let mut first: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..half {
        let e = first.entry(tier(i % USERS, false).to_string()).or_default();
        e.0 += 1;
        e.1 += i % 100;
    }
    let (reached, latest) = totals(&first);
    assert!(
        reached,
        "the first half's totals: {latest:?}, expected {first:?}; stderr:\n{}",
        run.stderr()
    );
    assert!(run.terminate().success());

    b.produce(&users_topic, &moves);
    b.produce(&trades_topic, &trades[half as usize..]);
    let run = BrookRun::start("joins", &sql, &args);
    let (reached, latest) = totals(&expected);
    let stderr = run.stderr();
    assert!(run.terminate().success());
    let _ = std::fs::remove_dir_all(&state);
    assert!(
        reached,
        "the totals: {latest:?}, expected {expected:?}; stderr:\n{stderr}"
    );
}
