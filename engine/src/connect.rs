//! What sessions ask of the connector runtime: `CREATE/DROP/DESCRIBE/SHOW ... CONNECTOR`
//! statements are executed by whatever implements [`Connectors`] (the `brook-connectors`
//! crate, which depends on this one), so the engine stays free of HTTP clients and the
//! connector crate reuses the engine's Kafka settings and runtime pieces.

use brook_sql::ast::ConnectorKind;
use std::collections::BTreeMap;

/// A connector to start, as its statement gave it (config provider references such as
/// `${env:NAME}` unresolved).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRequest {
    pub name: String,
    pub kind: ConnectorKind,
    pub config: BTreeMap<String, String>,
}

/// A connector as CREATE answers it (ksqlDB's `connector_info`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorInfo {
    pub name: String,
    pub kind: ConnectorKind,
    /// Its config as given, secrets by reference only.
    pub config: BTreeMap<String, String>,
    /// Its task numbers.
    pub tasks: Vec<u32>,
}

/// Kafka Connect's states of a connector or task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    Unassigned,
    Running,
    Paused,
    Failed,
    Restarting,
    Stopped,
}

impl ConnectorState {
    pub fn name(self) -> &'static str {
        match self {
            ConnectorState::Unassigned => "UNASSIGNED",
            ConnectorState::Running => "RUNNING",
            ConnectorState::Paused => "PAUSED",
            ConnectorState::Failed => "FAILED",
            ConnectorState::Restarting => "RESTARTING",
            ConnectorState::Stopped => "STOPPED",
        }
    }
}

/// One task of a connector, with the figures its status shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    pub id: u32,
    pub state: ConnectorState,
    pub worker_id: String,
    /// The last error that stopped it, when it is FAILED.
    pub trace: Option<String>,
    /// Records the endpoint acknowledged.
    pub records_sent: u64,
    /// Requests sent and not yet answered.
    pub batches_in_flight: u64,
    /// Requests sent again after a retriable failure.
    pub retries: u64,
    /// Records written to the dead-letter topic.
    pub dead_letters: u64,
}

/// The consumer group of a sink connector's tasks, as Kafka Connect names it.
pub fn sink_group(connector: &str) -> String {
    format!("connect-{connector}")
}

/// A connector and its tasks (Kafka Connect's status, ksqlDB's DESCRIBE CONNECTOR).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorStatus {
    pub name: String,
    pub kind: ConnectorKind,
    pub class: String,
    pub state: ConnectorState,
    pub worker_id: String,
    pub trace: Option<String>,
    pub tasks: Vec<TaskStatus>,
    /// The topics it reads (a sink) or writes (a source).
    pub topics: Vec<String>,
    /// Its config as given, secrets by reference only.
    pub config: BTreeMap<String, String>,
}

impl ConnectorStatus {
    /// How `SHOW CONNECTORS` puts it: `RUNNING (x/y tasks RUNNING)`, `WARNING (0/y tasks
    /// RUNNING)` when none of its tasks runs, else the connector's state.
    pub fn summary(&self) -> String {
        let running = self
            .tasks
            .iter()
            .filter(|t| t.state == ConnectorState::Running)
            .count();
        match self.state {
            ConnectorState::Running if running == 0 && !self.tasks.is_empty() => {
                format!("WARNING (0/{} tasks RUNNING)", self.tasks.len())
            }
            ConnectorState::Running => {
                format!("RUNNING ({running}/{} tasks RUNNING)", self.tasks.len())
            }
            other => other.name().to_string(),
        }
    }
}

/// A connector class this process runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorPlugin {
    pub class: String,
    pub kind: ConnectorKind,
    pub version: String,
}

/// Why a connector request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorError {
    /// No connector has that name.
    NotFound(String),
    /// One with that name exists already.
    Exists(String),
    /// The config is not one that can run.
    Invalid(String),
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectorError::NotFound(name) => write!(f, "Connector {name} not found"),
            ConnectorError::Exists(name) => write!(f, "Connector {name} already exists"),
            ConnectorError::Invalid(message) => f.write_str(message),
        }
    }
}

/// The connector runtime a server or `brook run` plugs into its engine.
pub trait Connectors: Send + Sync {
    /// Starts a connector; its tasks run until it is dropped.
    fn create(&self, request: ConnectorRequest) -> Result<ConnectorInfo, ConnectorError>;
    /// Stops a connector and forgets it; `false` if there was none of that name.
    fn drop_connector(&self, name: &str) -> bool;
    /// Every connector, in name order.
    fn statuses(&self) -> Vec<ConnectorStatus>;
    /// One connector (names compare case-insensitively).
    fn status(&self, name: &str) -> Option<ConnectorStatus>;
    /// The classes it runs.
    fn plugins(&self) -> Vec<ConnectorPlugin>;
    /// Restarts a connector's tasks: all of them, or only the failed ones.
    fn restart(&self, name: &str, only_failed: bool) -> Result<(), ConnectorError>;
    /// Restarts one task.
    fn restart_task(&self, name: &str, task: u32) -> Result<(), ConnectorError>;
    /// Stops every connector's tasks (each commits what was delivered and leaves its
    /// group); resolves once they have stopped, or after a bounded wait.
    fn shutdown(&self) -> futures::future::BoxFuture<'static, ()>;
    /// Pauses (true) or resumes (false) a connector's tasks.
    fn pause(&self, name: &str, paused: bool) -> Result<(), ConnectorError>;
}
