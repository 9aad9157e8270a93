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
    pub kind: ParseErrorKind,
}

/// How ksqlDB words an error of its grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// `Syntax Error at line L:C: ...`
    Syntax,
    /// The text parses but says something the grammar's rules refuse (a `KEY` column in
    /// a table): `Line: L, Col: C: ...`.
    Semantic,
    /// A literal its type cannot hold: `Failed to prepare statement: line L:C: ...`, the
    /// column one past the literal's first character, as ksqlDB counts it.
    Literal,
}

impl ParseError {
    pub fn new(position: Position, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
            kind: ParseErrorKind::Syntax,
        }
    }

    pub fn semantic(position: Position, message: impl Into<String>) -> Self {
        Self {
            kind: ParseErrorKind::Semantic,
            ..Self::new(position, message)
        }
    }

    pub fn literal(position: Position, message: impl Into<String>) -> Self {
        Self {
            kind: ParseErrorKind::Literal,
            ..Self::new(position, message)
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseErrorKind::Semantic => write!(f, "{}: {}", located(self.position), self.message),
            ParseErrorKind::Syntax => {
                write!(f, "Syntax Error at {}: {}", self.position, self.message)
            }
            ParseErrorKind::Literal => write!(
                f,
                "Failed to prepare statement: line {}:{}: {}",
                self.position.line,
                self.position.column + 1,
                self.message
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// ksqlDB's prefix for a message about a place in a statement: `Line: 3, Col: 70`.
pub fn located(position: Position) -> String {
    format!("Line: {}, Col: {}", position.line, position.column)
}
