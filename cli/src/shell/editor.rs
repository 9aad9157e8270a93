//! Line editing for the shell: a statement goes on until its `;`, and Tab completes
//! keywords and the names of streams and tables.

use rustyline::completion::{Completer, Pair};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper, Highlighter, Hinter};
use std::sync::{Arc, Mutex};

/// The shell's own commands, completed beside the dialect's keywords.
const SHELL_WORDS: &[&str] = &["RUN", "SCRIPT", "OUTPUT", "JSON", "TABULAR", "EXIT", "QUIT"];

/// Shell commands that need no `;`.
pub fn is_shell_command(line: &str) -> bool {
    let word = line.trim().trim_end_matches(';').trim();
    ["exit", "quit", "help"]
        .iter()
        .any(|c| word.eq_ignore_ascii_case(c))
}

#[derive(Helper, Highlighter, Hinter)]
pub struct ShellHelper {
    /// The streams and tables the server has, as last listed.
    pub sources: Arc<Mutex<Vec<String>>>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((start, vec![]));
        }
        let upper = word.to_uppercase();
        let sources = self.sources.lock().map(|s| s.clone()).unwrap_or_default();
        let mut candidates: Vec<Pair> = brook_sql::KEYWORDS
            .iter()
            .chain(SHELL_WORDS)
            .map(|k| k.to_string())
            .chain(sources)
            .filter(|c| c.starts_with(&upper))
            .map(|c| Pair {
                display: c.clone(),
                replacement: format!("{c} "),
            })
            .collect();
        candidates.sort_by(|a, b| a.display.cmp(&b.display));
        candidates.dedup_by(|a, b| a.display == b.display);
        Ok((start, candidates))
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let complete = input.trim().is_empty()
            || is_shell_command(input)
            || brook_sql::split_statements(input).is_ok_and(|_| input.trim_end().ends_with(';'));
        Ok(if complete {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}
