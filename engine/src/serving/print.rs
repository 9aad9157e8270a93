//! `PRINT topic`: a topic's records as lines of text while they come (from the start
//! with FROM BEGINNING), every INTERVAL-th one, up to LIMIT. Keys and values show as text
//! when they are UTF-8, in hex otherwise.

use super::push::PushQuery;
use crate::pipeline::InputRecord;
use crate::runtime::backend::Backend;
use brook_planner::value::Value;
use brook_sql::ast::{DataType, Print};
use rdkafka::consumer::{Consumer, StreamConsumer};

fn shown(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "<null>".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) if !text.chars().any(|c| c.is_control() && c != '\n') => text.to_string(),
            _ => format!(
                "0x{}",
                b.iter().map(|x| format!("{x:02X}")).collect::<String>()
            ),
        },
    }
}

/// A record as PRINT shows it.
pub fn print_line(r: &InputRecord) -> String {
    let time = chrono::DateTime::from_timestamp_millis(r.timestamp)
        .map(|t| t.format("%Y/%m/%d %H:%M:%S%.3f Z").to_string())
        .unwrap_or_else(|| r.timestamp.to_string());
    format!(
        "rowtime: {time}, key: {}, value: {}, partition: {}",
        shown(r.key.as_deref()),
        shown(r.value.as_deref()),
        r.partition
    )
}

pub async fn print_topic(
    backend: &Backend,
    print: &Print,
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<PushQuery, String> {
    // An unquoted name comes upper-cased: a topic that differs only in case is the one.
    let topic = backend
        .list_topics()
        .await?
        .into_iter()
        .map(|(name, _, _)| name)
        .filter(|name| name.eq_ignore_ascii_case(&print.topic))
        .min_by_key(|name| *name != print.topic)
        .unwrap_or_else(|| print.topic.clone());
    let print = &Print {
        topic,
        ..print.clone()
    };
    let Some(partitions) = backend.partitions(&print.topic).await? else {
        return Err(format!(
            "Could not find topic '{}', or the KSQL user does not have permissions to list the topic. Topic names are case-sensitive.",
            print.topic
        ));
    };
    let columns = vec![("RECORD".to_string(), DataType::String)];
    let id = format!("print_{}", print.topic);
    let limit = print.limit;
    let interval = print.interval.max(1);
    match backend {
        Backend::Driver(_) => {
            // The driver has no live readers for PRINT: what the topic holds is shown.
            let records = if print.from_beginning {
                backend.read_topic(&print.topic).await?
            } else {
                Vec::new()
            };
            let lines: Vec<_> = records
                .iter()
                .step_by(interval as usize)
                .take(limit.map_or(usize::MAX, |l| l as usize))
                .map(|r| Ok(vec![Value::String(print_line(r))].into()))
                .collect();
            let rx = super::push::filled_channel(lines);
            Ok(PushQuery::with_columns(id, columns, rx, limit))
        }
        Backend::Kafka(k) => {
            let consumer: StreamConsumer = k
                .settings
                .reader_config(
                    &format!("{id}-{}", std::process::id()),
                    crate::kafka::Prefetch::Small,
                )
                .create()
                .map_err(|e| format!("cannot read {}: {e}", print.topic))?;
            let start = if print.from_beginning {
                rdkafka::Offset::Beginning
            } else {
                rdkafka::Offset::End
            };
            let mut assignment = rdkafka::TopicPartitionList::new();
            for p in 0..partitions {
                assignment
                    .add_partition_offset(&print.topic, p, start)
                    .map_err(|e| e.to_string())?;
            }
            consumer.assign(&assignment).map_err(|e| e.to_string())?;
            let (tx, rx) = super::push::rows_channel(256, super::push::client_timeout(properties)?);
            let push = PushQuery::with_columns(id, columns, rx, limit);
            let mut stop = push.stopped();
            tokio::spawn(async move {
                let mut seen: u64 = 0;
                let mut sent: u64 = 0;
                while let Some(batch) = crate::runtime::next_batch(&consumer, &mut stop, 100).await
                {
                    for record in batch {
                        seen += 1;
                        if !(seen - 1).is_multiple_of(interval) {
                            continue;
                        }
                        if limit.is_some_and(|l| sent >= l) {
                            return;
                        }
                        let line = vec![Value::String(print_line(&record))];
                        if !tx.send(Ok(line.into())).await {
                            return;
                        }
                        sent += 1;
                    }
                    if limit.is_some_and(|l| sent >= l) {
                        return;
                    }
                }
            });
            Ok(push)
        }
    }
}
