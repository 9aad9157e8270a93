use brook_planner::PlanError;
use brook_sql::{ParseError, Position};

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    pub message: String,
    pub position: Option<Position>,
}

impl EngineError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            position: None,
        }
    }
}

impl From<PlanError> for EngineError {
    /// A message about a place in the statement starts with it, as ksqlDB's do.
    fn from(e: PlanError) -> Self {
        Self {
            message: match e.position {
                Some(p) => format!("{}: {}", brook_sql::located(p), e.message),
                None => e.message,
            },
            position: e.position,
        }
    }
}

impl From<ParseError> for EngineError {
    fn from(e: ParseError) -> Self {
        Self {
            message: e.to_string(),
            position: Some(e.position),
        }
    }
}

impl From<String> for EngineError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}
