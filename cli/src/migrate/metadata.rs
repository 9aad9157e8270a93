//! The migrations metadata on the server: the `MIGRATION_EVENTS` stream, where every
//! change of a version's state is inserted (under the version, and under `CURRENT` for the
//! latest), and the `MIGRATION_SCHEMA_VERSIONS` table, the latest event per key, read
//! with pull queries.

use super::project::Config;
use crate::client::{Client, Failure};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub const CURRENT: &str = "CURRENT";
/// How the first migration names the version before it.
pub const NONE: &str = "<none>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    Migrated,
    Error,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Running => "RUNNING",
            State::Migrated => "MIGRATED",
            State::Error => "ERROR",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "RUNNING" => State::Running,
            "MIGRATED" => State::Migrated,
            "ERROR" => State::Error,
            _ => State::Pending,
        }
    }
}

/// A version as the metadata table holds it.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: u32,
    pub name: String,
    pub state: State,
    pub checksum: String,
    /// Epoch milliseconds, as text.
    pub started_on: String,
    pub completed_on: String,
    pub previous: Option<u32>,
    pub error_reason: String,
}

pub struct Metadata<'a> {
    pub client: &'a Client,
    pub config: &'a Config,
}

fn failure(e: Failure) -> String {
    e.message()
}

/// SQL text for a string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Metadata<'_> {
    fn ksql(&self, sql: &str) -> Result<Vec<Value>, String> {
        self.client
            .ksql(sql, &BTreeMap::new(), &BTreeMap::new())
            .map_err(failure)
    }

    /// The topics' default names start with the server's service id.
    fn topic_prefix(&self) -> Result<String, String> {
        let info = self.client.info().map_err(failure)?;
        Ok(info["KsqlServerInfo"]["ksqlServiceId"]
            .as_str()
            .unwrap_or("default_")
            .to_string())
    }

    pub fn initialize(&self) -> Result<(), String> {
        let c = self.config;
        let prefix = self.topic_prefix()?;
        let stream_topic = c
            .stream_topic
            .clone()
            .unwrap_or_else(|| format!("{prefix}ksql_{}", c.stream));
        let table_topic = c
            .table_topic
            .clone()
            .unwrap_or_else(|| format!("{prefix}ksql_{}", c.table));
        println!("Creating stream: {}", c.stream);
        self.ksql(&format!(
            "CREATE STREAM IF NOT EXISTS {} (version_key STRING KEY, version STRING, name STRING, \
             state STRING, checksum STRING, started_on STRING, completed_on STRING, \
             previous STRING, error_reason STRING) WITH (KAFKA_TOPIC='{stream_topic}', \
             VALUE_FORMAT='JSON', PARTITIONS=1, REPLICAS={});",
            c.stream, c.replicas
        ))?;
        println!("Creating table: {}", c.table);
        self.ksql(&format!(
            "CREATE TABLE IF NOT EXISTS {} WITH (KAFKA_TOPIC='{table_topic}') AS SELECT \
             version_key, latest_by_offset(version) AS version, latest_by_offset(name) AS name, \
             latest_by_offset(state) AS state, latest_by_offset(checksum) AS checksum, \
             latest_by_offset(started_on) AS started_on, \
             latest_by_offset(completed_on) AS completed_on, \
             latest_by_offset(previous) AS previous, \
             latest_by_offset(error_reason) AS error_reason \
             FROM {} GROUP BY version_key;",
            c.table, c.stream
        ))?;
        Ok(())
    }

    /// The metadata table's row for `key` (a version, or `CURRENT`).
    pub fn get(&self, key: &str) -> Result<Option<Version>, String> {
        let sql = format!(
            "SELECT version, name, state, checksum, started_on, completed_on, previous, \
             error_reason FROM {} WHERE version_key = {};",
            self.config.table,
            quoted(key)
        );
        let (_, rows) = self
            .client
            .query_rows(&sql, &BTreeMap::new())
            .map_err(|e| match &e {
                Failure::Refused { message, .. } if message.contains("does not exist") => format!(
                    "{message}\nThe migrations metadata is missing: run `brook migrate initialize-metadata` first."
                ),
                _ => failure(e),
            })?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let text = |i: usize| row[i].as_str().unwrap_or_default().to_string();
        let version = text(0)
            .parse()
            .map_err(|_| format!("the metadata has a bad version for {key}: {}", row[0]))?;
        Ok(Some(Version {
            version,
            name: text(1),
            state: State::parse(&text(2)),
            checksum: text(3),
            started_on: text(4),
            completed_on: text(5),
            previous: text(6).parse().ok(),
            error_reason: text(7),
        }))
    }

    /// Records a version's state under its number and under `CURRENT`, and waits until the
    /// table shows it.
    pub fn record(&self, v: &Version) -> Result<(), String> {
        let previous = v
            .previous
            .map(|p| p.to_string())
            .unwrap_or_else(|| NONE.to_string());
        for key in [v.version.to_string(), CURRENT.to_string()] {
            self.ksql(&format!(
                "INSERT INTO {} (version_key, version, name, state, checksum, started_on, \
                 completed_on, previous, error_reason) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {});",
                self.config.stream,
                quoted(&key),
                quoted(&v.version.to_string()),
                quoted(&v.name),
                quoted(v.state.name()),
                quoted(&v.checksum),
                quoted(&v.started_on),
                quoted(&v.completed_on),
                quoted(&previous),
                quoted(&v.error_reason),
            ))?;
        }
        // The table follows the stream through a query: later reads must see this state.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(current) = self.get(CURRENT)? {
                if current.version == v.version && current.state == v.state {
                    return Ok(());
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the metadata table {} did not show version {} as {} within a minute",
                    self.config.table,
                    v.version,
                    v.state.name()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The applied versions, from the current one back to the first.
    pub fn history(&self) -> Result<Vec<Version>, String> {
        let mut chain = Vec::new();
        let Some(current) = self.get(CURRENT)? else {
            return Ok(chain);
        };
        let mut next = Some(current.version);
        while let Some(version) = next {
            if chain.iter().any(|v: &Version| v.version == version) {
                return Err(format!("the migration history loops at version {version}"));
            }
            let v = self.get(&version.to_string())?.ok_or_else(|| {
                format!("the migration history names version {version}, which has no metadata")
            })?;
            next = v.previous;
            chain.push(v);
        }
        Ok(chain)
    }

    /// Terminates the query that writes the table, then drops the table and the stream
    /// with their topics.
    pub fn destroy(&self) -> Result<(), String> {
        let c = self.config;
        let queries = self.ksql("SHOW QUERIES;")?;
        let writers: Vec<String> = queries
            .iter()
            .flat_map(|e| e["queries"].as_array().cloned().unwrap_or_default())
            .filter(|q| {
                q["sinks"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|n| n.as_str() == Some(c.table.as_str())))
            })
            .filter_map(|q| q["id"].as_str().map(str::to_string))
            .collect();
        for id in &writers {
            println!("Terminating query with ID: {id}");
            self.ksql(&format!("TERMINATE {id};"))?;
        }
        println!("Dropping migrations metadata table: {}", c.table);
        self.ksql(&format!("DROP TABLE IF EXISTS {} DELETE TOPIC;", c.table))?;
        println!("Dropping migrations metadata stream: {}", c.stream);
        self.ksql(&format!("DROP STREAM IF EXISTS {} DELETE TOPIC;", c.stream))?;
        Ok(())
    }
}
