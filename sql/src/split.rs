//! Splitting a script into statements at top-level semicolons.

use crate::error::{ParseError, Position};

/// One statement's text, without its `;`, and where it starts in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementText {
    pub text: String,
    pub position: Position,
}

/// Splits `script` at semicolons outside string literals, quoted identifiers and comments.
/// Statements holding only white space and comments are dropped.
pub fn split_statements(script: &str) -> Result<Vec<StatementText>, ParseError> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Quoted(char),
        LineComment,
        BlockComment,
    }
    let mut out = Vec::new();
    let mut state = State::Code;
    let mut current = String::new();
    let mut start: Option<Position> = None;
    let mut quote_start = Position::default();
    let (mut line, mut column) = (1u64, 1u64);
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        let here = Position { line, column };
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
        match state {
            State::Code => match c {
                ';' => {
                    if let Some(position) = start.take() {
                        out.push(StatementText {
                            text: std::mem::take(&mut current).trim_end().to_string(),
                            position,
                        });
                    }
                    current.clear();
                    continue;
                }
                '\'' | '`' | '"' => {
                    state = State::Quoted(c);
                    quote_start = here;
                }
                '-' if chars.peek() == Some(&'-') => state = State::LineComment,
                '/' if chars.peek() == Some(&'*') => {
                    state = State::BlockComment;
                    quote_start = here;
                }
                _ => {}
            },
            State::Quoted(q) => {
                if c == q {
                    if chars.peek() == Some(&q) {
                        // A doubled quote stands for itself inside the literal.
                        current.push(c);
                        chars.next();
                        column += 1;
                    } else {
                        state = State::Code;
                    }
                }
            }
            State::LineComment => {
                if c == '\n' {
                    state = State::Code;
                }
            }
            State::BlockComment => {
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    column += 1;
                    if start.is_some() {
                        current.push_str("*/");
                    }
                    state = State::Code;
                    continue;
                }
            }
        }
        let in_comment = matches!(state, State::LineComment | State::BlockComment);
        if start.is_none() && !c.is_whitespace() && !in_comment {
            start = Some(here);
        }
        if start.is_some() {
            current.push(c);
        }
    }
    match state {
        State::Quoted(q) => {
            return Err(ParseError::new(
                quote_start,
                format!("unterminated quoted text starting with {q}"),
            ))
        }
        State::BlockComment => return Err(ParseError::new(quote_start, "unterminated /* comment")),
        _ => {}
    }
    if let Some(position) = start {
        let text = current.trim_end().to_string();
        if !text.is_empty() {
            out.push(StatementText { text, position });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let script = "SET 'a'='x;y';\n-- a comment; here\nCREATE STREAM `s;` (A INT) WITH (x='1');\n/* ; */ SELECT 1;";
        let parts = split_statements(script).unwrap();
        let texts: Vec<_> = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "SET 'a'='x;y'",
                "CREATE STREAM `s;` (A INT) WITH (x='1')",
                "SELECT 1"
            ]
        );
        assert_eq!(parts[1].position, Position { line: 3, column: 1 });
        assert_eq!(parts[2].position, Position { line: 4, column: 9 });
    }

    #[test]
    fn doubled_quotes_stay_inside_literals() {
        let parts = split_statements("SELECT 'it''s;' FROM x; DROP STREAM y").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text, "SELECT 'it''s;' FROM x");
        assert_eq!(parts[1].text, "DROP STREAM y");
    }

    #[test]
    fn unterminated_literal_is_an_error_with_its_position() {
        let err = split_statements("SELECT 1;\nSELECT 'abc").unwrap_err();
        assert_eq!(err.position, Position { line: 2, column: 8 });
    }

    #[test]
    fn comment_only_script_has_no_statements() {
        assert!(split_statements("-- nothing\n/* at all */\n")
            .unwrap()
            .is_empty());
    }
}
