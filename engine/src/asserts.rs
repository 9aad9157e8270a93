//! `ASSERT TOPIC` and `ASSERT SCHEMA`: a deployment script stops unless a topic or a
//! schema is there (or not), waiting up to a timeout for it to become so.

use crate::runtime::backend::Backend;
use crate::schema_registry::SchemaRegistry;
use brook_sql::ast::{Literal, Properties};
use std::time::{Duration, Instant};

/// ksqlDB's `ksql.assert.topic.default.timeout.ms` and `ksql.assert.schema.default.timeout.ms`.
const DEFAULT_TIMEOUT_MS: i64 = 1000;

/// Retries `check` until it holds or the timeout passes; returns its last answer.
async fn within<F, Fut>(timeout_ms: Option<i64>, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now()
        + Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).max(0) as u64);
    loop {
        let outcome = check().await;
        if outcome.is_ok() || Instant::now() >= deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn assert_topic(
    backend: &Backend,
    topic: &str,
    exists: bool,
    properties: &Properties,
    timeout_ms: Option<i64>,
) -> Result<String, String> {
    let mut wanted = Vec::new();
    for (name, value) in properties {
        let number = match value {
            Literal::Integer(n) => *n,
            Literal::String(s) => s.parse().unwrap_or(-1),
            _ => -1,
        };
        match name.as_str() {
            "PARTITIONS" | "REPLICAS" => wanted.push((name.to_lowercase(), number)),
            other => {
                return Err(format!(
                    "Cannot assert unknown topic property: {}",
                    other.to_lowercase()
                ))
            }
        }
    }
    within(timeout_ms, || async {
        let layout = backend.layout(topic).await?;
        match (layout, exists) {
            (None, true) => Err(format!("Topic {topic} does not exist")),
            (Some(_), false) => Err(format!("Topic {topic} exists")),
            (None, false) => Ok(()),
            (Some((partitions, replicas)), true) => {
                let wrong: Vec<String> = wanted
                    .iter()
                    .filter_map(|(name, want)| {
                        let got = if name == "partitions" {
                            partitions
                        } else {
                            replicas
                        };
                        (i64::from(got) != *want)
                            .then(|| format!("For config {name}, expected {want} got {got}"))
                    })
                    .collect();
                if wrong.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "Mismatched configuration for topic {topic}: {}",
                        wrong.join(", ")
                    ))
                }
            }
        }
    })
    .await?;
    Ok(if exists {
        format!("Topic {topic} exists")
    } else {
        format!("Topic {topic} does not exist")
    })
}

pub async fn assert_schema(
    registry: Option<&std::sync::Arc<dyn SchemaRegistry>>,
    subject: Option<&str>,
    id: Option<i64>,
    exists: bool,
    timeout_ms: Option<i64>,
) -> Result<String, String> {
    let Some(registry) = registry else {
        return Err("Cannot check for schemas: no schema registry is configured (ksql.schema.registry.url).".into());
    };
    let shown = match (subject, id) {
        (Some(s), Some(i)) => format!("Schema with subject name {s} id {i}"),
        (Some(s), None) => format!("Schema with subject name {s}"),
        (None, Some(i)) => format!("Schema with id {i}"),
        (None, None) => "Schema".to_string(),
    };
    within(timeout_ms, || async {
        let by_subject = match subject {
            Some(s) => registry.latest(s)?.map(|(i, _)| i),
            None => None,
        };
        let found = match (subject, id) {
            (Some(_), Some(i)) => {
                by_subject == Some(i as u32) || {
                    // The subject may hold the id in an older version.
                    by_subject.is_some() && registry.schema(i as u32).is_ok()
                }
            }
            (Some(_), None) => by_subject.is_some(),
            (None, Some(i)) => registry.schema(i as u32).is_ok(),
            (None, None) => false,
        };
        match (found, exists) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => Err(format!("{shown} does not exist")),
            (true, false) => Err(format!("{shown} exists")),
        }
    })
    .await?;
    Ok(if exists {
        format!("{shown} exists")
    } else {
        format!("{shown} does not exist")
    })
}
