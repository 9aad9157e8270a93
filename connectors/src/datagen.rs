//! `DatagenSource` (Confluent's `io.confluent.kafka.connect.datagen.DatagenConnector`):
//! writes made-up records of a quickstart schema (`users`, `pageviews`, `orders`,
//! `stock_trades`, as Confluent's datagen has them) to `kafka.topic`, one every up to
//! `max.interval` ms, `iterations` per task (unlimited when below 1), keys as strings and
//! values as JSON without a schema, so a demo needs no producer script.

use crate::status::TaskCounters;
use brook_engine::runtime::TaskError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

pub const QUICKSTARTS: &[&str] = &["users", "pageviews", "orders", "stock_trades"];

#[derive(Debug, Clone, PartialEq)]
pub struct DatagenConfig {
    pub topic: String,
    pub quickstart: String,
    pub max_interval: Duration,
    /// Records per task; `None` is unlimited.
    pub iterations: Option<u64>,
    pub tasks: u32,
    /// Partitions of the topic if it has to be created.
    pub partitions: i32,
}

pub fn datagen_config(config: &BTreeMap<String, String>) -> Result<DatagenConfig, String> {
    let get = |key: &str| config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let number = |key: &str, default: i64| -> Result<i64, String> {
        get(key).map_or(Ok(default), |v| {
            v.parse::<i64>()
                .map_err(|_| format!("Invalid value {v} for configuration {key}: not a number"))
        })
    };
    let topic = get("kafka.topic")
        .ok_or("Missing required configuration \"kafka.topic\" which has no default value.")?;
    let quickstart = get("quickstart")
        .ok_or_else(|| {
            format!(
                "Missing required configuration \"quickstart\" (one of {})",
                QUICKSTARTS.join(", ")
            )
        })?
        .to_lowercase();
    if !QUICKSTARTS.contains(&quickstart.as_str()) {
        return Err(format!(
            "quickstart {quickstart} is not one of {}",
            QUICKSTARTS.join(", ")
        ));
    }
    if let Some(converter) = get("value.converter") {
        if !converter.to_lowercase().contains("json") {
            return Err(format!(
                "value.converter {converter} is not supported by DatagenSource yet; use org.apache.kafka.connect.json.JsonConverter"
            ));
        }
    }
    let iterations = number("iterations", -1)?;
    Ok(DatagenConfig {
        topic: topic.to_string(),
        quickstart,
        max_interval: Duration::from_millis(number("max.interval", 500)?.max(0) as u64),
        iterations: (iterations > 0).then_some(iterations as u64),
        tasks: number("tasks.max", 1)?.max(1) as u32,
        partitions: number("topic.creation.default.partitions", 1)?.max(1) as i32,
    })
}

/// One made-up record of the quickstart: its key and value.
pub fn record(quickstart: &str, n: u64) -> (String, Value) {
    let pick = |choices: &[&str]| choices[fastrand::usize(..choices.len())].to_string();
    let user = format!("User_{}", fastrand::u32(1..10));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match quickstart {
        "users" => (
            user.clone(),
            json!({
                "registertime": now - fastrand::i64(0..10_000_000_000),
                "userid": user,
                "regionid": format!("Region_{}", fastrand::u32(1..10)),
                "gender": pick(&["MALE", "FEMALE", "OTHER"]),
            }),
        ),
        "pageviews" => (
            now.to_string(),
            json!({
                "viewtime": now,
                "userid": user,
                "pageid": format!("Page_{}", fastrand::u32(1..100)),
            }),
        ),
        "orders" => (
            n.to_string(),
            json!({
                "ordertime": now,
                "orderid": n,
                "itemid": format!("Item_{}", fastrand::u32(1..1000)),
                "orderunits": (fastrand::f64() * 10.0 * 100.0).round() / 100.0,
                "address": {
                    "city": format!("City_{}", fastrand::u32(1..100)),
                    "state": format!("State_{}", fastrand::u32(1..100)),
                    "zipcode": fastrand::u32(10_000..100_000),
                },
            }),
        ),
        _ => {
            let symbol = pick(&["ZBZX", "ZJZZT", "ZTEST", "ZVV", "ZVZZT", "ZWZZT", "ZXZZT"]);
            (
                symbol.clone(),
                json!({
                    "side": pick(&["BUY", "SELL"]),
                    "quantity": fastrand::u32(1..5001),
                    "symbol": symbol,
                    "price": fastrand::u32(5..1001),
                    "account": pick(&["ABC123", "LMN456", "XYZ789"]),
                    "userid": user,
                }),
            )
        }
    }
}

/// One attempt of a datagen task: writes records until its iterations are done (then
/// idles, as Kafka Connect's task does) or `stop` is set.
pub async fn run(
    config: Arc<DatagenConfig>,
    producer: FutureProducer,
    counters: Arc<TaskCounters>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), TaskError> {
    loop {
        let n = counters.records_sent.load(Ordering::Relaxed);
        if config.iterations.is_some_and(|max| n >= max) {
            let _ = stop.wait_for(|s| *s).await;
            return Ok(());
        }
        let (key, value) = record(&config.quickstart, n);
        let payload = value.to_string();
        let sent = producer
            .send(
                FutureRecord::to(&config.topic)
                    .key(key.as_str())
                    .payload(payload.as_str()),
                Duration::from_secs(30),
            )
            .await;
        if let Err((e, _)) = sent {
            return Err(TaskError::kafka(
                format!("cannot write to {}", config.topic),
                &e,
            ));
        }
        counters.records_sent.fetch_add(1, Ordering::Relaxed);
        let wait = config.max_interval.mul_f64(fastrand::f64());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {
                if *stop.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quickstart_records_have_their_schema() {
        let (key, trade) = record("stock_trades", 0);
        assert_eq!(trade["symbol"], key.as_str());
        assert!(trade["quantity"]
            .as_u64()
            .is_some_and(|q| (1..=5000).contains(&q)));
        let (key, user) = record("users", 0);
        assert_eq!(user["userid"], key.as_str());
        assert!(user["regionid"]
            .as_str()
            .is_some_and(|r| r.starts_with("Region_")));
        let (key, order) = record("orders", 42);
        assert_eq!((key.as_str(), &order["orderid"]), ("42", &json!(42)));
        let config = BTreeMap::from([
            ("kafka.topic".to_string(), "t".to_string()),
            ("quickstart".to_string(), "nope".to_string()),
        ]);
        assert!(datagen_config(&config)
            .unwrap_err()
            .contains("stock_trades"));
    }
}
