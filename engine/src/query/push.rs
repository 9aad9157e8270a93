//! A push query: a consumer that nobody else shares, whose rows go to one client until it
//! has `LIMIT` rows, stops the query, or goes away.

use super::records::next_batch;
use crate::dataflow::Operators;
use crate::kafka::KafkaSettings;
use crate::processing_log::ProcessingLog;
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// The client's end of a push query.
pub struct PushQuery {
    pub id: String,
    pub columns: Vec<(String, DataType)>,
    /// Rows in order; the channel closes when the query ends (an `Err` says why it failed).
    pub rows: mpsc::Receiver<Result<Vec<Value>, String>>,
    pub limit: Option<u64>,
    stop: Arc<watch::Sender<bool>>,
}

/// Ends a push query from elsewhere than its reader (a `/close-query` request).
#[derive(Clone)]
pub struct PushCloser(Arc<watch::Sender<bool>>);

impl PushCloser {
    pub fn close(&self) {
        let _ = self.0.send(true);
    }
}

impl PushQuery {
    /// Ends the query; the channel closes once it has stopped.
    pub fn close(&self) {
        let _ = self.stop.send(true);
    }

    pub fn closer(&self) -> PushCloser {
        PushCloser(self.stop.clone())
    }
}

pub fn start_push_query(
    id: String,
    operators: Operators,
    settings: &KafkaSettings,
    group_id: &str,
    properties: &BTreeMap<String, String>,
    log: Arc<ProcessingLog>,
) -> Result<PushQuery, String> {
    let consumer: StreamConsumer = settings
        .consumer_config(group_id, properties, None)
        .create()
        .map_err(|e| format!("cannot create a consumer: {e}"))?;
    let topics = operators.topics();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| format!("cannot subscribe to {}: {e}", names.join(", ")))?;
    let columns = operators
        .projection()
        .iter()
        .map(|p| (p.name.clone(), p.expr.data_type.clone()))
        .collect();
    let limit = operators.limit();
    // One consumer reads every partition, so one store holds all the query's state.
    let mut store = brook_state::Store::memory();
    // A small buffer: a slow client slows the query down rather than filling memory.
    let (tx, rows) = mpsc::channel(256);
    let (stop, mut stop_rx) = watch::channel(false);
    let task_id = id.clone();
    tokio::spawn(async move {
        let mut sent: u64 = 0;
        while let Some(batch) = next_batch(&consumer, &mut stop_rx, 500).await {
            let mut errors = Vec::new();
            let output = match operators.process(&batch, &mut store, &mut errors) {
                Ok(output) => output,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let _ = store.flush(None);
            if !errors.is_empty() {
                if let Err(e) = log.log(&task_id, &errors).await {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            for row in 0..output.len {
                if limit.is_some_and(|l| sent >= l) {
                    return;
                }
                if tx
                    .send(Ok(output.row(operators.projection(), row)))
                    .await
                    .is_err()
                {
                    return;
                }
                sent += 1;
            }
            if limit.is_some_and(|l| sent >= l) {
                return;
            }
        }
    });
    Ok(PushQuery {
        id,
        columns,
        rows,
        limit,
        stop: Arc::new(stop),
    })
}

impl Drop for PushQuery {
    /// A client that goes away ends its query, so no consumer is left behind.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
