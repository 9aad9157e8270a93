//! `brook migrate`: version-controlled deployments, compatible with ksql-migrations.
//! A project holds numbered migration files; `apply` runs those not applied yet through
//! a server's REST API, recording each version's state (RUNNING, then MIGRATED or ERROR)
//! and the file's checksum in the migrations metadata, so that `info` and `validate` can
//! tell what was applied and whether an applied file has changed since.

mod metadata;
mod project;

use crate::client::Client;
use crate::local::Local;
use metadata::{Metadata, State, Version, CURRENT};
use project::{Config, Migration};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The project's config file.
    #[arg(short = 'c', long = "config-file", global = true, default_value = project::CONFIG_FILE)]
    config_file: PathBuf,
    #[command(subcommand)]
    command: MigrateCommand,
}

#[derive(clap::Subcommand)]
enum MigrateCommand {
    /// Creates a project folder: its config file and an empty migrations folder.
    NewProject { dir: PathBuf, server_url: String },
    /// Creates the migrations metadata stream and table on the server.
    InitializeMetadata,
    /// Creates an empty migration file, the next version unless --version says.
    Create {
        description: String,
        #[arg(short = 'v', long)]
        version: Option<u32>,
    },
    /// Applies migration files that are not applied yet.
    Apply {
        /// Every file after the current version.
        #[arg(short = 'a', long, group = "which")]
        all: bool,
        /// The next file only.
        #[arg(short = 'n', long, group = "which")]
        next: bool,
        /// Every file after the current version, up to this one.
        #[arg(short = 'u', long, group = "which")]
        until: Option<u32>,
        /// This version only.
        #[arg(short = 'v', long, group = "which")]
        version: Option<u32>,
        /// Variables for the files, as name=value.
        #[arg(short = 'd', long = "define")]
        define: Vec<String>,
        /// Shows what would be applied, without applying it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Shows the current version and the state of every version.
    Info,
    /// Checks that applied files have not changed since they were applied.
    Validate,
    /// Drops the migrations metadata stream and table, and their topics.
    DestroyMetadata,
}

pub fn run(args: MigrateArgs) -> ExitCode {
    let started = std::time::Instant::now();
    let outcome = tokio::task::block_in_place(|| match args.command {
        MigrateCommand::NewProject { dir, server_url } => project::new_project(&dir, &server_url),
        command => {
            let config = Config::load(&args.config_file)?;
            let client = Client::new(
                &config.server_url,
                config.user.as_deref(),
                config.password.as_deref(),
                config.ca_file.as_deref(),
            )?;
            client.info().map_err(|e| e.message())?;
            let metadata = Metadata {
                client: &client,
                config: &config,
            };
            match command {
                MigrateCommand::NewProject { .. } => Ok(()),
                MigrateCommand::InitializeMetadata => {
                    println!("Initializing migrations metadata");
                    metadata.initialize()?;
                    println!("Migrations metadata initialized successfully");
                    Ok(())
                }
                MigrateCommand::Create {
                    description,
                    version,
                } => project::create(&config.migrations_dir, &description, version).map(|_| ()),
                MigrateCommand::Apply {
                    all,
                    next,
                    until,
                    version,
                    define,
                    dry_run,
                } => {
                    let which = match (all, next, until, version) {
                        (true, _, _, _) => Which::All,
                        (_, true, _, _) => Which::Next,
                        (_, _, Some(u), _) => Which::Until(u),
                        (_, _, _, Some(v)) => Which::Version(v),
                        _ => {
                            return Err(
                                "say which migrations to apply: --all, --next, --until V or --version V"
                                    .to_string(),
                            )
                        }
                    };
                    apply(&client, &metadata, which, &define, dry_run)
                }
                MigrateCommand::Info => info(&metadata),
                MigrateCommand::Validate => validate(&metadata).map(|_| {
                    println!("Successfully validated checksums for migrations that have already been applied");
                }),
                MigrateCommand::DestroyMetadata => {
                    println!("Cleaning migrations metadata stream and table from the server");
                    metadata.destroy()?;
                    println!("Migrations metadata cleaned successfully");
                    Ok(())
                }
            }
        }
    });
    println!(
        "Execution time: {:.4} seconds",
        started.elapsed().as_secs_f64()
    );
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Which {
    All,
    Next,
    Until(u32),
    Version(u32),
}

/// The applied history must be whole: every version MIGRATED, with the checksum of its
/// file as it is now. Returns the applied versions, latest first.
fn validate(metadata: &Metadata) -> Result<Vec<Version>, String> {
    let files = project::migrations(&metadata.config.migrations_dir)?;
    let history = metadata.history()?;
    for v in &history {
        if v.state != State::Migrated {
            return Err(format!(
                "migration version {} is {}, not MIGRATED{}",
                v.version,
                v.state.name(),
                match v.error_reason.as_str() {
                    "" | "N/A" => String::new(),
                    reason => format!(" ({reason})"),
                }
            ));
        }
        let file = files
            .iter()
            .find(|f| f.version == v.version)
            .ok_or_else(|| format!("no migration file for applied version {}", v.version))?;
        let checksum = file.checksum()?;
        if checksum != v.checksum {
            return Err(format!(
                "migration version {} was applied with checksum {}, but {} now has checksum {checksum}: applied files must not change",
                v.version,
                v.checksum,
                file.path.display()
            ));
        }
    }
    Ok(history)
}

fn now_ms() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .to_string()
}

fn apply(
    client: &Client,
    metadata: &Metadata,
    which: Which,
    defines: &[String],
    dry_run: bool,
) -> Result<(), String> {
    if dry_run {
        println!("This is a dry run. No statements will be submitted to the server.");
    }
    println!("Validating current migration state before applying new migrations");
    if let Some(current) = metadata.get(CURRENT)? {
        if current.state == State::Running {
            return Err(format!(
                "migration version {} is still RUNNING: another apply runs, or one was aborted",
                current.version
            ));
        }
    }
    let history = validate(metadata)?;
    let current = history.first().map(|v| v.version).unwrap_or(0);
    println!("Loading migration files");
    let files = project::migrations(&metadata.config.migrations_dir)?;
    println!("{} migration file(s) loaded.", files.len());
    let after: Vec<&Migration> = files.iter().filter(|f| f.version > current).collect();
    let chosen: Vec<&Migration> = match which {
        Which::All => after,
        Which::Next => after.into_iter().take(1).collect(),
        Which::Until(u) => after.into_iter().filter(|f| f.version <= u).collect(),
        Which::Version(v) => {
            if v <= current {
                return Err(format!(
                    "version {v} is not after the current version {current}"
                ));
            }
            let file = after
                .into_iter()
                .find(|f| f.version == v)
                .ok_or_else(|| format!("no migration file has version {v}"))?;
            vec![file]
        }
    };
    if chosen.is_empty() {
        println!("No eligible migrations found.");
        return Ok(());
    }
    let mut variables = std::collections::BTreeMap::new();
    for d in defines {
        let (name, value) = d
            .split_once('=')
            .ok_or_else(|| format!("--define takes name=value, not {d}"))?;
        variables.insert(name.trim().to_uppercase(), value.to_string());
    }
    let mut previous = (current > 0).then_some(current);
    for file in chosen {
        println!("Applying migration version {}: {}", file.version, file.name);
        let contents = file.contents()?;
        println!("{} contents:\n{contents}", file.path.display());
        if dry_run {
            continue;
        }
        let mut version = Version {
            version: file.version,
            name: file.name.clone(),
            state: State::Running,
            checksum: file.checksum()?,
            started_on: now_ms(),
            completed_on: String::new(),
            previous,
            error_reason: "N/A".into(),
        };
        metadata.record(&version)?;
        // Properties and variables a file sets last for that file only.
        let mut local = Local {
            properties: Default::default(),
            variables: variables.clone(),
        };
        let outcome = run_file(client, &mut local, &contents);
        version.completed_on = now_ms();
        match outcome {
            Ok(()) => {
                version.state = State::Migrated;
                metadata.record(&version)?;
            }
            Err(e) => {
                version.state = State::Error;
                version.error_reason = e.clone();
                metadata.record(&version)?;
                return Err(format!(
                    "migration version {} failed, recorded as ERROR: {e}",
                    file.version
                ));
            }
        }
        previous = Some(file.version);
    }
    if dry_run {
        println!("Dry run complete. No migrations were actually applied.");
    } else {
        println!("Successfully migrated");
    }
    Ok(())
}

/// Runs a migration file's statements one by one; stops at the first that fails.
fn run_file(client: &Client, local: &mut Local, contents: &str) -> Result<(), String> {
    let statements = brook_sql::split_statements(contents).map_err(|e| e.to_string())?;
    for statement in statements {
        let parsed = local.parse(&statement.text)?;
        if local.take(&parsed.kind).is_some() {
            continue;
        }
        if let brook_sql::ast::StatementKind::Query(_) = parsed.kind {
            return Err(format!(
                "queries cannot be part of a migration: {}",
                statement.text
            ));
        }
        client
            .ksql(
                &format!("{};", statement.text),
                &local.properties,
                &local.variables,
            )
            .map_err(|e| format!("{} (statement: {})", e.message(), statement.text.trim()))?;
    }
    Ok(())
}

/// A time in epoch milliseconds as info shows it.
fn shown_time(ms: &str) -> String {
    ms.parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| "N/A".into())
}

fn info(metadata: &Metadata) -> Result<(), String> {
    let files = project::migrations(&metadata.config.migrations_dir)?;
    let current = metadata.get(CURRENT)?;
    match &current {
        Some(c) => println!("Current migration version: {}", c.version),
        None => println!("Current migration version: <none>"),
    }
    let mut versions: Vec<u32> = files.iter().map(|f| f.version).collect();
    if let Some(c) = &current {
        versions.push(c.version);
    }
    versions.sort();
    versions.dedup();
    let mut rows = Vec::new();
    for v in versions {
        let applied = metadata.get(&v.to_string())?;
        let name = files
            .iter()
            .find(|f| f.version == v)
            .map(|f| f.name.clone())
            .or_else(|| applied.as_ref().map(|a| a.name.clone()))
            .unwrap_or_default();
        let row = match applied {
            Some(a) => vec![
                v.to_string(),
                name,
                a.state.name().to_string(),
                a.previous
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| metadata::NONE.into()),
                shown_time(&a.started_on),
                shown_time(&a.completed_on),
                match a.error_reason.as_str() {
                    "" => "N/A".to_string(),
                    r => r.to_string(),
                },
            ],
            None => vec![
                v.to_string(),
                name,
                State::Pending.name().to_string(),
                "N/A".into(),
                "N/A".into(),
                "N/A".into(),
                "N/A".into(),
            ],
        };
        rows.push(row);
    }
    let names: Vec<String> = [
        "Version",
        "Name",
        "State",
        "Previous Version",
        "Started On",
        "Completed On",
        "Error Reason",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    crate::table::print_table(&mut std::io::stdout(), &names, &rows);
    Ok(())
}
