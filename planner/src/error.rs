use brook_sql::Position;

/// A statement that is well-formed but cannot be planned, with ksqlDB's message where it has
/// one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub message: String,
    pub position: Option<Position>,
}

impl PlanError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            position: None,
        }
    }

    pub fn at(position: Position, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            position: Some(position),
        }
    }
}

pub type Result<T, E = PlanError> = std::result::Result<T, E>;
