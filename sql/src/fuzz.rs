//! Fuzz targets for the statement parser and `${var}` substitution: arbitrary text, and
//! token sequences that look like ksqlDB statements (so that inputs get past the
//! tokenizer into the grammar). Run as tests for 20 s each (as CI does;
//! `BOLERO_RANDOM_TEST_TIME_MS` sets longer), from the seeds in `src/__fuzz__/`. No input may panic; a refused one has a
//! message and a position inside the text.

use crate::{parse_statements, substitute_variables, Position, KEYWORDS};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long each target runs in CI; `BOLERO_RANDOM_TEST_TIME_MS` runs it longer.
const BUDGET: Duration = Duration::from_secs(20);

/// What statements are made of besides keywords: punctuation, literals, names, variable
/// references, comments and quotes left open. Each input byte picks a keyword or one of
/// these.
const OTHER_TOKENS: &[&str] = &[
    "=>",
    "(",
    ")",
    "<",
    ">",
    ",",
    ";",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "!=",
    "<>",
    "<=",
    ">=",
    ".",
    "->",
    "[",
    "]",
    ":",
    "'text'",
    "'it''s'",
    "`Quoted`",
    "\"dq\"",
    "0",
    "1",
    "42",
    "-7",
    "1.5",
    "1e10",
    "9223372036854775808",
    "a",
    "b",
    "s",
    "t",
    "kafka_topic",
    "value_format",
    "'JSON'",
    "'AVRO'",
    "'DELIMITED'",
    "partitions",
    "COUNT",
    "SUM",
    "LATEST_BY_OFFSET",
    "TRANSFORM",
    "SECONDS",
    "MINUTES",
    "HOURS",
    "DAYS",
    "${x}",
    "${y}",
    "${",
    "}",
    "$",
    "--",
    "/*",
    "*/",
    "\n",
    "\t",
    "'",
    "`",
    "\"",
    "\\",
    "é",
    "𝄞",
];

#[test]
fn fuzz_statement_text() {
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(|bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            check(&text);
        });
}

#[test]
fn fuzz_statement_tokens() {
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(|bytes: &[u8]| {
            let tokens = KEYWORDS.len() + OTHER_TOKENS.len();
            let text: Vec<&str> = bytes
                .iter()
                .map(|b| {
                    let n = *b as usize % tokens;
                    KEYWORDS
                        .get(n)
                        .unwrap_or_else(|| &OTHER_TOKENS[n - KEYWORDS.len()])
                })
                .copied()
                .collect();
            check(&text.join(" "));
        });
}

/// Parses the text with two variables defined, and substitutes them on their own.
fn check(text: &str) {
    let defined = || {
        BTreeMap::from([
            ("X".to_string(), "'topic'".to_string()),
            ("Y".to_string(), "${X}".to_string()),
        ])
    };
    match parse_statements(text, &mut defined()) {
        Ok(statements) => {
            for s in statements {
                assert!(
                    !s.text.trim().is_empty(),
                    "an empty statement from {text:?}"
                );
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error without a message");
            let lines = text.lines().count().max(1) + 1;
            assert!(
                (e.position.line as usize) <= lines,
                "{e} at a line past the text's end ({text:?})"
            );
        }
    }
    let _ = substitute_variables(text, &defined(), Position { line: 1, column: 1 });
}
