//! `brook shell [URL]`: the interactive SQL shell, a client of a server's REST API.
//! Statements end with `;` and may span lines; queries stream their rows until their
//! LIMIT or Ctrl-C (which ends the query, not the shell). `SET`, `UNSET`, `DEFINE` and
//! `UNDEFINE` stay in the shell and go with every request. `-e` and `-f` run statements
//! without prompting.

mod editor;
mod render;

use crate::client::{Client, Failure};
use crate::local::Local;
use editor::{is_shell_command, ShellHelper};
use render::Format;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::Args)]
pub struct ShellArgs {
    /// The server's address.
    #[arg(default_value = "http://localhost:8088")]
    url: String,
    /// Run these statements, then exit.
    #[arg(short = 'e', long = "execute", conflicts_with = "file")]
    execute: Option<String>,
    /// Run the statements of this file, then exit.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// User name for the server's basic authentication.
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Password for the server's basic authentication.
    #[arg(short = 'p', long = "password")]
    password: Option<String>,
    /// A PEM certificate to trust for an HTTPS server (besides the system's roots).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Where the statements typed are remembered (default: ~/.brook_history).
    #[arg(long)]
    history_file: Option<PathBuf>,
    /// How answers are shown.
    #[arg(long, value_enum, default_value = "tabular")]
    output: Format,
}

struct Shell {
    client: Client,
    local: Local,
    format: Format,
    sources: Arc<Mutex<Vec<String>>>,
    /// Set by Ctrl-C while a query streams.
    interrupted: Arc<AtomicBool>,
    /// `SPOOL file`: where statements and what they print are copied, until `SPOOL OFF`.
    spool: Option<(PathBuf, std::fs::File)>,
}

/// What the shell prints: to stdout, and to the spool file while one is open.
struct Output {
    spool: Option<std::fs::File>,
}

impl Write for Output {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write_all(bytes)?;
        if let Some(file) = &mut self.spool {
            file.write_all(bytes)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()?;
        if let Some(file) = &mut self.spool {
            file.flush()?;
        }
        Ok(())
    }
}

pub async fn run(args: ShellArgs) -> ExitCode {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // While a query streams the terminal is not in raw mode, so Ctrl-C is a signal: it
    // ends the query. At the prompt the line editor reads it as a key.
    // The handler is installed here, before the first prompt, not when a spawned task first
    // runs: a Ctrl-C that came before that would end the shell.
    let mut signals = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: cannot handle Ctrl-C: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    tokio::task::block_in_place(|| {
        let client = match Client::new(
            &args.url,
            args.user.as_deref(),
            args.password.as_deref(),
            args.ca_file.as_deref(),
        ) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut shell = Shell {
            client,
            local: Local::default(),
            format: args.output,
            sources: Arc::default(),
            interrupted,
            spool: None,
        };
        let script = match (&args.execute, &args.file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            },
            (None, None) => None,
        };
        match script {
            Some(text) => {
                if let Err(e) = shell.client.info() {
                    eprintln!("error: {}", e.message());
                    return ExitCode::FAILURE;
                }
                match shell.run_text(&text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            None => shell.interactive(args.history_file),
        }
    })
}

impl Shell {
    fn interactive(&mut self, history: Option<PathBuf>) -> ExitCode {
        match self.client.info() {
            Ok(info) => {
                let version = render::cell(&info["KsqlServerInfo"]["version"]);
                println!(
                    "Brook shell, connected to {} (server version {version}).",
                    self.client.base()
                );
                self.refresh_sources();
            }
            Err(e) => eprintln!("warning: {}", e.message()),
        }
        println!("Statements end with ';'. Ctrl-C ends a running query; exit or Ctrl-D leaves.");
        let config = rustyline::Config::builder().auto_add_history(false).build();
        let mut editor: rustyline::Editor<ShellHelper, rustyline::history::DefaultHistory> =
            match rustyline::Editor::with_config(config) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: cannot read from the terminal: {e}");
                    return ExitCode::FAILURE;
                }
            };
        editor.set_helper(Some(ShellHelper {
            sources: self.sources.clone(),
        }));
        let history = history
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".brook_history")));
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        loop {
            match editor.readline("brook> ") {
                Ok(line) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        if let Err(e) = editor.save_history(path) {
                            eprintln!(
                                "warning: cannot save the history to {}: {e}",
                                path.display()
                            );
                        }
                    }
                    if is_shell_command(&line) {
                        let word = line.trim().trim_end_matches(';').trim().to_lowercase();
                        if word == "help" {
                            print_help();
                            continue;
                        }
                        return ExitCode::SUCCESS;
                    }
                    if let Err(e) = self.run_text(&line) {
                        let _ = writeln!(self.output(), "{e}");
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(rustyline::error::ReadlineError::Eof) => return ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }

    /// Runs each statement of `text` in turn; stops at the first that fails.
    fn run_text(&mut self, text: &str) -> Result<(), String> {
        let statements = brook_sql::split_statements(text).map_err(|e| e.to_string())?;
        for statement in statements {
            self.run_statement(&statement.text)?;
        }
        Ok(())
    }

    fn run_statement(&mut self, text: &str) -> Result<(), String> {
        let words: Vec<String> = text
            .split_whitespace()
            .take(2)
            .map(str::to_uppercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        if let Some((_, file)) = &mut self.spool {
            // The statement, prefixed as ksqlDB's CLI spools it, then what it printed.
            let _ = writeln!(file, "ksql> {};", text.trim());
        }
        let mut out = self.output();
        match words.as_slice() {
            ["SPOOL", target] => {
                let target = text.split_whitespace().nth(1).unwrap_or(target);
                if target.eq_ignore_ascii_case("OFF") {
                    return match self.spool.take() {
                        Some((path, _)) => {
                            println!("Spooling stopped: {}", path.display());
                            Ok(())
                        }
                        None => Err("Not spooling: SPOOL <file> starts".into()),
                    };
                }
                if let Some((path, _)) = &self.spool {
                    return Err(format!(
                        "Already spooling to {}: SPOOL OFF first",
                        path.display()
                    ));
                }
                let path = PathBuf::from(target.trim_matches('\''));
                let file = std::fs::File::create(&path)
                    .map_err(|e| format!("cannot spool to {}: {e}", path.display()))?;
                println!("Spooling to {}", path.display());
                self.spool = Some((path, file));
                return Ok(());
            }
            ["OUTPUT", format] => {
                self.format = match *format {
                    "JSON" => Format::Json,
                    "TABULAR" => Format::Tabular,
                    other => return Err(format!("unknown output format {other}: JSON or TABULAR")),
                };
                return Ok(());
            }
            ["RUN", "SCRIPT"] => {
                let path = text
                    .split_once('\'')
                    .and_then(|(_, rest)| rest.rsplit_once('\''))
                    .map(|(path, _)| path.to_string())
                    .ok_or("RUN SCRIPT needs a quoted file name: RUN SCRIPT '/path/file.sql'")?;
                let script = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {path}: {e}"))?;
                return self.run_text(&script);
            }
            _ => {}
        }
        let parsed = self.local.parse(text);
        if let Some(message) = parsed.as_ref().ok().and_then(|s| self.local.take(&s.kind)) {
            if !message.is_empty() {
                let _ = writeln!(out, "{message}");
            }
            return Ok(());
        }
        use brook_sql::ast::StatementKind as Kind;
        match parsed.as_ref().map(|s| &s.kind) {
            Ok(Kind::Show(brook_sql::ast::ShowKind::Variables)) => {
                let rows: Vec<Vec<String>> = self
                    .local
                    .variables
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone()])
                    .collect();
                crate::table::print_table(
                    &mut out,
                    &["Variable Name".to_string(), "Value".to_string()],
                    &rows,
                );
            }
            Ok(Kind::Query(_) | Kind::Print(_)) => {
                let sql = parsed.as_ref().map(|s| s.text.clone()).unwrap_or_default();
                let plain = matches!(parsed.as_ref().map(|s| &s.kind), Ok(Kind::Print(_)));
                self.stream_query(&sql, plain)?
            }
            _ => {
                let entities = self
                    .client
                    .ksql(
                        &format!("{text};"),
                        &self.local.properties,
                        &self.local.variables,
                    )
                    .map_err(|e| failure_text(&e))?;
                render::entities(&mut out, self.format, &entities);
                if entities.iter().any(|e| e["@type"] == "currentStatus") {
                    self.refresh_sources();
                }
            }
        }
        Ok(())
    }

    /// Streams a query's rows until it ends or Ctrl-C ends it; `plain` rows (PRINT's
    /// records) are printed as lines rather than in a table.
    fn stream_query(&mut self, sql: &str, plain: bool) -> Result<(), String> {
        let streaming = self
            .client
            .query(&format!("{sql};"), &self.local.properties)
            .map_err(|e| failure_text(&e))?;
        let mut out = self.output();
        if self.format == Format::Json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({"queryId": streaming.id, "columnNames": streaming.columns})
            );
        }
        let table = crate::table::Table::streaming(&streaming.columns);
        let tabular = self.format == Format::Tabular && !plain;
        if tabular {
            table.print_header(&mut out, &streaming.columns);
        }
        // Rows are read on their own thread so that Ctrl-C is noticed while none come.
        let (tx, rx) = std::sync::mpsc::channel::<Option<Value>>();
        let mut rows = streaming.rows;
        std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::BufRead::read_line(&mut rows, &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Ok(row) = serde_json::from_str::<Value>(&line) {
                            if tx.send(Some(row)).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            let _ = tx.send(None);
        });
        self.interrupted.store(false, Ordering::SeqCst);
        let mut count = 0usize;
        loop {
            if self.interrupted.swap(false, Ordering::SeqCst) {
                if let Err(e) = self.client.close_query(&streaming.id) {
                    eprintln!("warning: the query may still run: {}", e.message());
                }
                break;
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(row)) if row.is_array() => {
                    count += 1;
                    match self.format {
                        Format::Tabular if plain => {
                            for cell in row.as_array().into_iter().flatten() {
                                let _ = writeln!(out, "{}", render::cell(cell));
                            }
                        }
                        Format::Tabular => {
                            let cells: Vec<String> = row
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(render::cell)
                                .collect();
                            table.print_row(&mut out, &cells);
                        }
                        Format::Json => {
                            let _ = writeln!(out, "{row}");
                        }
                    }
                }
                // An error the server sends in the stream.
                Ok(Some(other)) => {
                    let _ = writeln!(out, "{}", render::cell(&other["message"]));
                }
                Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        if tabular {
            let _ = writeln!(out, "{}", table.rule());
        }
        let limit = sql
            .to_uppercase()
            .rsplit_once("LIMIT")
            .and_then(|(_, n)| n.trim().trim_end_matches(';').trim().parse::<usize>().ok());
        if limit.is_some_and(|l| count >= l) {
            let _ = writeln!(out, "Limit Reached");
        }
        let _ = writeln!(out, "Query terminated");
        Ok(())
    }

    /// Where output goes: stdout, and the spool file while one is open.
    fn output(&self) -> Output {
        Output {
            spool: self
                .spool
                .as_ref()
                .and_then(|(_, file)| file.try_clone().ok()),
        }
    }

    /// Lists the server's streams and tables again, for Tab completion.
    fn refresh_sources(&self) {
        let Ok(entities) = self.client.ksql(
            "SHOW STREAMS; SHOW TABLES;",
            &self.local.properties,
            &self.local.variables,
        ) else {
            return;
        };
        let names: Vec<String> = entities
            .iter()
            .flat_map(|e| {
                e["streams"]
                    .as_array()
                    .or(e["tables"].as_array())
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect();
        if let Ok(mut sources) = self.sources.lock() {
            *sources = names;
        }
    }
}

fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Unreachable(e) => e.clone(),
        Failure::Refused { message, answer } => match answer["statementText"].as_str() {
            Some(statement) if !statement.is_empty() => {
                format!("{message}\nStatement: {statement}")
            }
            _ => message.clone(),
        },
    }
}

fn print_help() {
    println!(
        "Statements end with ';' and may span lines. Besides ksqlDB's SQL:
  OUTPUT JSON | OUTPUT TABULAR;   how answers are shown
  RUN SCRIPT '/path/file.sql';    runs a file's statements
  SPOOL <file> | SPOOL OFF;       copies statements and their output to a file
  SET / UNSET / DEFINE / UNDEFINE stay in this shell and go with every request
  Ctrl-C                          ends a running query (not the shell)
  exit, quit, Ctrl-D              leave"
    );
}
