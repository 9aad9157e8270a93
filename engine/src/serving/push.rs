//! A push query: a consumer that nobody else shares, whose rows go to one client until it
//! has `LIMIT` rows, stops the query, or goes away.

use crate::dataflow::Operators;
use crate::kafka::KafkaSettings;
use crate::processing_log::ProcessingLog;
use crate::runtime::next_batch;
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
    /// Which of `columns` are key columns of the result.
    pub keys: Vec<bool>,
    /// Rows in order; the channel closes when the query ends (an `Err` says why it failed).
    pub rows: mpsc::Receiver<Result<Vec<Value>, String>>,
    pub limit: Option<u64>,
    /// A pull query over a table: its rows are the table's keyed rows when it ran.
    pub pull: bool,
    stop: Arc<watch::Sender<bool>>,
}

/// Ends a push query from elsewhere than its reader (a `/close-query` request).
#[derive(Clone)]
pub struct PushCloser(Arc<watch::Sender<bool>>);

impl PushCloser {
    pub fn close(&self) {
        self.0.send_replace(true);
    }
}

impl PushQuery {
    /// The client's end of a query whose rows arrive on `rows`.
    pub(crate) fn new(
        id: String,
        operators: &Operators,
        rows: mpsc::Receiver<Result<Vec<Value>, String>>,
    ) -> Self {
        let columns = operators
            .projection()
            .iter()
            .map(|p| (p.name.clone(), p.expr.data_type.clone()))
            .collect();
        let mut query = Self::with_columns(id, columns, rows, operators.limit());
        query.keys = operators.projection().iter().map(|p| p.key).collect();
        query
    }

    /// A query of `columns` (none of them keys) whose rows arrive on `rows`.
    pub(crate) fn with_columns(
        id: String,
        columns: Vec<(String, DataType)>,
        rows: mpsc::Receiver<Result<Vec<Value>, String>>,
        limit: Option<u64>,
    ) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            id,
            keys: vec![false; columns.len()],
            columns,
            rows,
            limit,
            pull: false,
            stop: Arc::new(stop),
        }
    }

    /// A pull query's answer: all its rows, already there. A table's answer is keyed; a
    /// stream's reads as a completed push query, as ksqlDB's does.
    pub(crate) fn pulled(
        id: String,
        operators: &Operators,
        rows: Vec<Vec<Value>>,
        table: bool,
    ) -> Self {
        let (tx, rx) = mpsc::channel(rows.len().max(1));
        for row in rows {
            // The channel has room for every row.
            let _ = tx.try_send(Ok(row));
        }
        let mut query = Self::new(id, operators, rx);
        query.pull = table;
        if table {
            query.limit = None;
        }
        query
    }

    /// Changes to true when the query is asked to end.
    pub(crate) fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Ends the query; the channel closes once it has stopped.
    pub fn close(&self) {
        self.stop.send_replace(true);
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
    let limit = operators.limit();
    // One consumer reads every partition, so one store holds all the query's state.
    let mut store = brook_state::Store::memory();
    // A small buffer: a slow client slows the query down rather than filling memory.
    let (tx, rows) = mpsc::channel(256);
    let push = PushQuery::new(id.clone(), &operators, rows);
    let mut stop_rx = push.stopped();
    let task_id = id;
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
                if !operators.shows(&output, row) {
                    continue;
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
    Ok(push)
}

impl Drop for PushQuery {
    /// A client that goes away ends its query, so no consumer is left behind.
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
