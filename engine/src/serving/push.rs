//! A push query: a consumer that nobody else shares, whose rows go to one client until it
//! has `LIMIT` rows, stops the query, or goes away.

use crate::dataflow::Operators;
use crate::kafka::{KafkaSettings, Prefetch};
use crate::processing_log::ProcessingLog;
use crate::runtime::next_batch;
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a push query waits for a client that takes none of its buffered rows before
/// it ends the query (milliseconds). Until then the query waits (backpressure): it reads
/// no faster than its client.
pub const CLIENT_TIMEOUT: &str = "brook.query.push.client.timeout.ms";
const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Rows a push query holds for its client before it waits.
const BUFFERED_ROWS: usize = 256;

/// The setting's value from a query's properties.
pub(crate) fn client_timeout(properties: &BTreeMap<String, String>) -> Result<Duration, String> {
    let default = DEFAULT_CLIENT_TIMEOUT.as_millis() as u64;
    crate::settings::positive(properties, CLIENT_TIMEOUT, default).map(Duration::from_millis)
}

/// A row, or why the query failed.
pub type Row = Result<PushRow, String>;

/// One row of a query's answer. A table's change that deletes its key is a tombstone:
/// only its key columns (and window bounds) have values, as ksqlDB's `row.tombstone`.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRow {
    pub columns: Vec<Value>,
    pub tombstone: bool,
}

impl From<Vec<Value>> for PushRow {
    fn from(columns: Vec<Value>) -> Self {
        Self {
            columns,
            tombstone: false,
        }
    }
}

/// The query's end of its rows: a bounded buffer, so a slow client slows the query down,
/// until the client has taken nothing for the timeout and the query ends.
pub(crate) struct RowSender {
    tx: mpsc::Sender<Row>,
    timeout: Duration,
    ended: Arc<OnceLock<String>>,
}

impl RowSender {
    /// Sends a row; false when the query should stop: the client went away, or took no
    /// row for the timeout (the client is told why after the rows it has).
    pub(crate) async fn send(&self, row: Row) -> bool {
        match self.tx.send_timeout(row, self.timeout).await {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                let reason = format!(
                    "The push query was closed: its client took none of the {BUFFERED_ROWS} rows waiting for it in {} ms ({CLIENT_TIMEOUT})",
                    self.timeout.as_millis()
                );
                tracing::warn!("{reason}");
                let _ = self.ended.set(reason);
                false
            }
        }
    }
}

/// The client's end of a query's rows.
pub struct RowReceiver {
    rx: mpsc::Receiver<Row>,
    ended: Arc<OnceLock<String>>,
    told: bool,
}

impl RowReceiver {
    fn new(rx: mpsc::Receiver<Row>, ended: Arc<OnceLock<String>>) -> Self {
        Self {
            rx,
            ended,
            told: false,
        }
    }

    /// The next row; after the last one, why the query ended if it was not asked to.
    pub async fn recv(&mut self) -> Option<Row> {
        match self.rx.recv().await {
            Some(row) => Some(row),
            None if self.told => None,
            None => {
                self.told = true;
                self.ended.get().cloned().map(Err)
            }
        }
    }
}

/// A channel for a query's rows, holding `capacity` of them.
pub(crate) fn rows_channel(capacity: usize, timeout: Duration) -> (RowSender, RowReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let ended = Arc::new(OnceLock::new());
    let sender = RowSender {
        tx,
        timeout,
        ended: ended.clone(),
    };
    (sender, RowReceiver::new(rx, ended))
}

impl From<mpsc::Receiver<Row>> for RowReceiver {
    /// Rows from a channel whose sender never gives up on the client (the in-process
    /// driver's, which holds what a test produces).
    fn from(rx: mpsc::Receiver<Row>) -> Self {
        Self::new(rx, Arc::new(OnceLock::new()))
    }
}

/// A channel already holding every row of an answer.
pub(crate) fn filled_channel(rows: Vec<Row>) -> RowReceiver {
    let (tx, receiver) = rows_channel(rows.len(), DEFAULT_CLIENT_TIMEOUT);
    for row in rows {
        // The channel has room for every row.
        let _ = tx.tx.try_send(row);
    }
    receiver
}

/// The client's end of a push query.
pub struct PushQuery {
    pub id: String,
    pub columns: Vec<(String, DataType)>,
    /// Which of `columns` are key columns of the result.
    pub keys: Vec<bool>,
    /// Rows in order; they end when the query ends (an `Err` says why it failed).
    pub rows: RowReceiver,
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
    pub(crate) fn new(id: String, operators: &Operators, rows: RowReceiver) -> Self {
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
        rows: RowReceiver,
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
        let rx = filled_channel(rows.into_iter().map(|r| Ok(r.into())).collect());
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
        .consumer_config(group_id, properties, None, Prefetch::Small)
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
    let (tx, rows) = rows_channel(BUFFERED_ROWS, client_timeout(properties)?);
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
                    tx.send(Err(e)).await;
                    return;
                }
            };
            let _ = store.flush(None);
            if !errors.is_empty() {
                if let Err(e) = log.log(&task_id, &errors).await {
                    tx.send(Err(e)).await;
                    return;
                }
            }
            for row in 0..output.len {
                if limit.is_some_and(|l| sent >= l) {
                    return;
                }
                let Some(shown) = operators.push_row(&output, row) else {
                    continue;
                };
                if !tx.send(Ok(shown)).await {
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
