use std::fmt;

/// A line and column in the text given to the parser, both starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}:{}", self.line, self.column)
    }
}

/// A statement that could not be parsed: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub position: Position,
    pub message: String,
    /// The text parses but says something the grammar's rules refuse (a `KEY` column in
    /// a table): ksqlDB gives these as `Line: L, Col: C: ...`, not as syntax errors.
    pub semantic: bool,
}

impl ParseError {
    pub fn new(position: Position, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
            semantic: false,
        }
    }

    pub fn semantic(position: Position, message: impl Into<String>) -> Self {
        Self {
            semantic: true,
            ..Self::new(position, message)
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.semantic {
            write!(f, "{}: {}", located(self.position), self.message)
        } else {
            write!(f, "Syntax Error at {}: {}", self.position, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// ksqlDB's prefix for a message about a place in a statement: `Line: 3, Col: 70`.
pub fn located(position: Position) -> String {
    format!("Line: {}, Col: {}", position.line, position.column)
}
