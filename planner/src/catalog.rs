//! The metastore: the streams, tables and types that statements have created.

use crate::error::{PlanError, Result};
use crate::formats::{parse_delimiter, Format, FormatKind};
use brook_sql::ast::{self, DataType, Literal, Properties, SourceKind};
use std::collections::BTreeMap;

/// Pseudo columns every source row carries besides its key and value columns.
pub const ROWTIME: &str = "ROWTIME";
pub const ROWPARTITION: &str = "ROWPARTITION";
pub const ROWOFFSET: &str = "ROWOFFSET";
pub const WINDOWSTART: &str = "WINDOWSTART";
pub const WINDOWEND: &str = "WINDOWEND";
pub const RESERVED_COLUMNS: &[&str] = &[ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND];

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnRole {
    Key,
    Value,
    /// All headers (`None`) or the header with that key.
    Header(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub role: ColumnRole,
}

/// A stream or table: its topic, columns and formats.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDef {
    pub name: String,
    pub kind: SourceKind,
    pub topic: String,
    pub columns: Vec<Column>,
    pub key_format: Format,
    pub value_format: Format,
    /// The value column whose content is the record's time, instead of the Kafka timestamp.
    pub timestamp_column: Option<String>,
    /// How a STRING timestamp column is written (a Java DateTimeFormatter pattern).
    pub timestamp_format: Option<String>,
    /// Partitions asked for in `WITH (PARTITIONS=n)`, used when the topic must be created.
    pub partitions: Option<i32>,
    pub replicas: Option<i32>,
    /// `WITH (RETENTION_MS=n)`: the `retention.ms` of a topic the statement creates.
    pub retention_ms: Option<i64>,
    /// `CREATE SOURCE ...`: read-only.
    pub is_source: bool,
    /// The statement that created it.
    pub sql: String,
    /// For a windowed table (or a stream of windowed keys): how its keys are windowed.
    pub window: Option<SourceWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    Tumbling,
    Hopping,
    Session,
}

impl WindowType {
    pub fn name(self) -> &'static str {
        match self {
            WindowType::Tumbling => "TUMBLING",
            WindowType::Hopping => "HOPPING",
            WindowType::Session => "SESSION",
        }
    }
}

/// A windowed source's window: its type and, for time windows, its size in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceWindow {
    pub kind: WindowType,
    pub size: Option<i64>,
}

impl SourceWindow {
    pub fn of(window: &brook_sql::ast::Window) -> Self {
        use brook_sql::ast::WindowKind;
        match window.kind {
            WindowKind::Tumbling { size } => Self {
                kind: WindowType::Tumbling,
                size: Some(size),
            },
            WindowKind::Hopping { size, .. } => Self {
                kind: WindowType::Hopping,
                size: Some(size),
            },
            WindowKind::Session { .. } => Self {
                kind: WindowType::Session,
                size: None,
            },
        }
    }
}

impl SourceDef {
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.role == ColumnRole::Key)
    }

    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.role == ColumnRole::Value)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub sources: BTreeMap<String, SourceDef>,
    pub types: BTreeMap<String, DataType>,
}

impl Catalog {
    pub fn source(&self, name: &str) -> Result<&SourceDef> {
        self.sources
            .get(name)
            .ok_or_else(|| PlanError::new(format!("{name} does not exist.")))
    }

    /// Replaces named types by their definitions.
    pub fn resolve_type(&self, t: &DataType) -> Result<DataType> {
        Ok(match t {
            DataType::Named(name) => match self.types.get(name) {
                Some(t) => t.clone(),
                None => return Err(PlanError::new(format!("Unknown type: {name}"))),
            },
            DataType::Array(inner) => DataType::Array(Box::new(self.resolve_type(inner)?)),
            DataType::Map(k, v) => DataType::Map(
                Box::new(self.resolve_type(k)?),
                Box::new(self.resolve_type(v)?),
            ),
            DataType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(n, t)| Ok((n.clone(), self.resolve_type(t)?)))
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Builds the source a `CREATE STREAM|TABLE (...) WITH (...)` statement declares.
    pub fn source_from_create(&self, create: &ast::CreateSource, sql: &str) -> Result<SourceDef> {
        let props = WithClause::read(&create.properties, false)?;
        let topic = props.topic.clone().ok_or_else(|| {
            PlanError::new("Missing required property \"KAFKA_TOPIC\" which has no default value.")
        })?;
        let mut columns = Vec::new();
        for c in &create.columns {
            if RESERVED_COLUMNS.contains(&c.name.as_str()) {
                return Err(PlanError::at(
                    c.position,
                    format!(
                        "'{}' is a reserved column name. You cannot use it as a name for a column.",
                        c.name
                    ),
                ));
            }
            if columns.iter().any(|x: &Column| x.name == c.name) {
                return Err(PlanError::at(
                    c.position,
                    format!("Duplicate column names: {}", c.name),
                ));
            }
            let header_type = DataType::Array(Box::new(DataType::Struct(vec![
                ("KEY".into(), DataType::String),
                ("VALUE".into(), DataType::Bytes),
            ])));
            match (&c.role, &c.header_key) {
                (ast::ColumnRole::Headers, None)
                    if self.resolve_type(&c.data_type)? != header_type =>
                {
                    return Err(PlanError::new(format!(
                        "Invalid type for HEADERS column: expected {header_type}, got {}",
                        c.data_type
                    )))
                }
                (ast::ColumnRole::Headers, Some(key))
                    if self.resolve_type(&c.data_type)? != DataType::Bytes =>
                {
                    return Err(PlanError::new(format!(
                        "Invalid type for HEADER('{key}') column: expected BYTES, got {}",
                        c.data_type
                    )))
                }
                _ => {}
            }
            let role = match c.role {
                ast::ColumnRole::Key => ColumnRole::Key,
                ast::ColumnRole::Value => ColumnRole::Value,
                ast::ColumnRole::Headers => ColumnRole::Header(c.header_key.clone()),
            };
            columns.push(Column {
                name: c.name.clone(),
                data_type: self.resolve_type(&c.data_type)?,
                role,
            });
        }
        if create.kind == SourceKind::Table && !columns.iter().any(|c| c.role == ColumnRole::Key) {
            return Err(PlanError::new(
                "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.",
            ));
        }
        let (key_format, value_format) = props.formats(None)?;
        check_wrap(
            &props,
            columns
                .iter()
                .filter(|c| c.role == ColumnRole::Value)
                .count(),
        )?;
        let source = SourceDef {
            name: create.name.clone(),
            kind: create.kind,
            topic,
            columns,
            key_format,
            value_format,
            timestamp_column: props.timestamp.clone(),
            timestamp_format: props.timestamp_format.clone(),
            partitions: props.partitions,
            replicas: props.replicas,
            retention_ms: props.retention_ms,
            is_source: create.is_source,
            sql: sql.to_string(),
            window: props.window,
        };
        validate_source(&source)?;
        Ok(source)
    }
}

/// An explicit WRAP_SINGLE_VALUE needs exactly one value column.
pub(crate) fn check_wrap(props: &WithClause, value_columns: usize) -> Result<()> {
    if props.wrap_single_value.is_some() && value_columns != 1 {
        return Err(PlanError::new(
            "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas",
        ));
    }
    Ok(())
}

/// Checks formats against columns and the timestamp column.
pub fn validate_source(source: &SourceDef) -> Result<()> {
    let keys: Vec<_> = source
        .key_columns()
        .map(|c| (c.name.as_str(), &c.data_type))
        .collect();
    if source.window.is_some() && keys.is_empty() {
        return Err(PlanError::new("Windowed sources require a key column."));
    }
    let values: Vec<_> = source
        .value_columns()
        .map(|c| (c.name.as_str(), &c.data_type))
        .collect();
    fn contains_map(t: &DataType) -> bool {
        match t {
            DataType::Map(..) => true,
            DataType::Array(inner) => contains_map(inner),
            DataType::Struct(fields) => fields.iter().any(|(_, t)| contains_map(t)),
            _ => false,
        }
    }
    for c in source.key_columns() {
        if contains_map(&c.data_type) {
            return Err(PlanError::new(format!(
                "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{}`. Column type: {}. See https://github.com/confluentinc/ksql/issues/6621 for more.",
                c.name, c.data_type
            )));
        }
    }
    source.key_format.validate(&keys, true).map_err(|e| {
        if source.key_format.kind == FormatKind::None {
            return e;
        }
        let columns: Vec<String> = keys.iter().map(|(n, t)| format!("`{n}` {t} KEY")).collect();
        PlanError::new(format!(
            "Key format does not support schema.\nformat: {}\nschema: Persistence{{columns=[{}], features=[]}}\nreason: {}",
            source.key_format.kind,
            columns.join(", "),
            e.message
        ))
    })?;
    source.value_format.validate(&values, false)?;
    if !source.value_format.wrap_single_value && values.len() != 1 {
        return Err(PlanError::new(
            "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas",
        ));
    }
    if let Some(ts) = &source.timestamp_column {
        match source.column(ts) {
            Some(c) if matches!(c.data_type, DataType::BigInt | DataType::Timestamp) => {}
            Some(c) if c.data_type == DataType::String && source.timestamp_format.is_some() => {}
            Some(c) => {
                return Err(PlanError::new(format!(
                    "Timestamp column, `{ts}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified. Got {}",
                    c.data_type
                )))
            }
            None => {
                return Err(PlanError::new(format!(
                    "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{ts}'"
                )))
            }
        }
    }
    Ok(())
}

/// The `WITH (...)` properties ksqlDB knows, read and checked.
#[derive(Debug, Clone, Default)]
pub struct WithClause {
    pub topic: Option<String>,
    pub format: Option<FormatKind>,
    pub key_format: Option<FormatKind>,
    pub value_format: Option<FormatKind>,
    pub key_delimiter: Option<char>,
    pub value_delimiter: Option<char>,
    pub value_avro_full_name: Option<String>,
    pub wrap_single_value: Option<bool>,
    pub partitions: Option<i32>,
    pub replicas: Option<i32>,
    pub retention_ms: Option<i64>,
    pub timestamp: Option<String>,
    pub timestamp_format: Option<String>,
    pub key_schema_id: Option<u32>,
    pub value_schema_id: Option<u32>,
    pub window: Option<SourceWindow>,
}

/// `'30 SECONDS'` in milliseconds.
fn parse_duration(key: &str, text: &str) -> Result<i64> {
    let invalid = |why: String| {
        PlanError::new(format!(
            "Configuration {key} is invalid: Invalid duration: '{text}'. {why}"
        ))
    };
    let mut words = text.split_whitespace();
    let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(invalid("Not recognizable as a duration.".into()));
    };
    let n: i64 = n
        .parse()
        .map_err(|_| invalid("Not recognizable as a duration.".into()))?;
    let upper = unit.to_uppercase();
    let millis = match upper.trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(invalid(format!("Unknown time unit: '{upper}'"))),
    };
    Ok(n * millis)
}

impl WithClause {
    pub fn read(props: &Properties, for_query: bool) -> Result<Self> {
        let mut out = WithClause::default();
        let mut unknown = Vec::new();
        let mut window_size = None;
        for (key, value) in props {
            let text = value.as_property_text();
            match key.as_str() {
                "KAFKA_TOPIC" => out.topic = Some(text),
                "FORMAT" => out.format = Some(FormatKind::parse(&text)?),
                "KEY_FORMAT" => out.key_format = Some(FormatKind::parse(&text)?),
                "VALUE_FORMAT" => out.value_format = Some(FormatKind::parse(&text)?),
                "KEY_DELIMITER" => out.key_delimiter = Some(parse_delimiter(&text)?),
                "VALUE_DELIMITER" => out.value_delimiter = Some(parse_delimiter(&text)?),
                "VALUE_AVRO_SCHEMA_FULL_NAME" => out.value_avro_full_name = Some(text),
                "WRAP_SINGLE_VALUE" => out.wrap_single_value = Some(boolean(key, value)?),
                "PARTITIONS" => out.partitions = Some(positive(key, value)?),
                "REPLICAS" => out.replicas = Some(positive(key, value)?),
                "RETENTION_MS" => out.retention_ms = Some(retention(key, value)?),
                "TIMESTAMP" => out.timestamp = Some(text.to_uppercase()),
                "TIMESTAMP_FORMAT" => out.timestamp_format = Some(text),
                "KEY_SCHEMA_ID" => out.key_schema_id = Some(schema_id(key, value)?),
                "VALUE_SCHEMA_ID" => out.value_schema_id = Some(schema_id(key, value)?),
                "WINDOW_TYPE" => {
                    let kind = match text.to_uppercase().as_str() {
                        "TUMBLING" => WindowType::Tumbling,
                        "HOPPING" => WindowType::Hopping,
                        "SESSION" => WindowType::Session,
                        other => {
                            return Err(PlanError::new(format!(
                                "Invalid value {other} for property WINDOW_TYPE: String must be one of: SESSION, HOPPING, TUMBLING"
                            )))
                        }
                    };
                    let size = out.window.and_then(|w| w.size);
                    out.window = Some(SourceWindow { kind, size });
                }
                "WINDOW_SIZE" => window_size = Some(parse_duration(key, &text)?),
                // The record names to read; Brook matches fields by name, whatever the record.
                "KEY_SCHEMA_FULL_NAME" | "VALUE_SCHEMA_FULL_NAME" => {}
                _ => unknown.push(key.clone()),
            }
        }
        if !unknown.is_empty() {
            return Err(PlanError::new(format!(
                "Invalid config variable(s) in the WITH clause: {}",
                unknown.join(",")
            )));
        }
        if out.format.is_some() && (out.key_format.is_some() || out.value_format.is_some()) {
            let other = if out.key_format.is_some() {
                "KEY_FORMAT"
            } else {
                "VALUE_FORMAT"
            };
            return Err(PlanError::new(format!(
                "Cannot supply both '{other}' and 'FORMAT' properties, as 'FORMAT' sets both key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'."
            )));
        }
        let _ = for_query;
        match (&mut out.window, window_size) {
            (Some(w), Some(_)) if w.kind == WindowType::Session => {
                return Err(PlanError::new(
                    "'WINDOW_SIZE' should not be set for SESSION windows.",
                ))
            }
            (Some(w), None) if w.kind != WindowType::Session => {
                return Err(PlanError::new(format!(
                    "{} windows require 'WINDOW_SIZE' to be provided in the WITH clause.",
                    w.kind.name()
                )))
            }
            (Some(w), size) => w.size = size,
            (None, Some(_)) => {
                return Err(PlanError::new(
                    "'WINDOW_SIZE' should only be set for windowed sources: add WINDOW_TYPE.",
                ))
            }
            (None, None) => {}
        }
        Ok(out)
    }

    /// The key and value formats these properties give, falling back to `inherit` (a
    /// query's source) and then to ksqlDB's defaults (KAFKA keys; the value format has none).
    pub fn formats(&self, inherit: Option<(&Format, &Format)>) -> Result<(Format, Format)> {
        let key_kind = self
            .key_format
            .or(self.format)
            .or(inherit.map(|(k, _)| k.kind))
            .unwrap_or(FormatKind::Kafka);
        let value_kind = match self.value_format.or(self.format).or(inherit.map(|(_, v)| v.kind)) {
            Some(kind) => kind,
            None => {
                return Err(PlanError::new(
                    "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config.",
                ))
            }
        };
        for (delimiter, kind) in [
            (self.key_delimiter, key_kind),
            (self.value_delimiter, value_kind),
        ] {
            if delimiter.is_some() && kind != FormatKind::Delimited {
                return Err(PlanError::new(format!(
                    "{} does not support the following configs: [delimiter]",
                    kind.name()
                )));
            }
        }
        let mut key = Format::new(key_kind);
        let mut value = Format::new(value_kind);
        if let Some((k, v)) = inherit {
            if k.kind == key_kind {
                key.delimiter = k.delimiter;
            }
            if v.kind == value_kind {
                value.delimiter = v.delimiter;
            }
        }
        if let Some(d) = self.key_delimiter {
            key.delimiter = d;
        }
        if let Some(d) = self.value_delimiter {
            value.delimiter = d;
        }
        if let Some(name) = &self.value_avro_full_name {
            if value_kind != FormatKind::Avro {
                return Err(PlanError::new(format!(
                    "{} does not support the following configs: [fullSchemaName]",
                    value_kind.name()
                )));
            }
            if name.trim().is_empty() {
                return Err(PlanError::new(
                    "fullSchemaName cannot be empty. Format configuration: {fullSchemaName=}",
                ));
            }
            value.avro_full_name = Some(name.trim().to_string());
        }
        if let Some(wrap) = self.wrap_single_value {
            let refuses = match value.kind {
                FormatKind::Kafka | FormatKind::Delimited => wrap,
                FormatKind::Protobuf | FormatKind::ProtobufNoSr => !wrap,
                _ => false,
            };
            if refuses {
                return Err(PlanError::new(format!(
                    "Format '{}' does not support 'WRAP_SINGLE_VALUE' set to '{wrap}'.",
                    value.kind
                )));
            }
            value.wrap_single_value = wrap;
        }
        Ok((key, value))
    }
}

fn boolean(key: &str, value: &Literal) -> Result<bool> {
    match value {
        Literal::Boolean(b) => Ok(*b),
        Literal::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Literal::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(PlanError::new(format!(
            "Property {key} must be true or false"
        ))),
    }
}

/// A whole number, written as one or quoted.
fn integer(value: &Literal) -> Option<i64> {
    match value {
        Literal::Integer(i) => Some(*i),
        Literal::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A topic's `retention.ms`: milliseconds, or -1 for no limit (Kafka's own rule).
fn retention(key: &str, value: &Literal) -> Result<i64> {
    let n = integer(value);
    match n {
        Some(n) if n >= -1 => Ok(n),
        Some(_) => Err(PlanError::new(format!(
            "Invalid value {} for configuration {key}: a retention is a number of milliseconds, or -1 for no limit",
            value.as_property_text()
        ))),
        None => Err(PlanError::new(format!(
            "Invalid value {} for configuration {key}: Not a number of type LONG",
            value.as_property_text()
        ))),
    }
}

fn schema_id(key: &str, value: &Literal) -> Result<u32> {
    positive(key, value).map(|n| n as u32)
}

fn positive(key: &str, value: &Literal) -> Result<i32> {
    let n = integer(value);
    match n {
        Some(n) if n > 0 && n <= i32::MAX as i64 => Ok(n as i32),
        _ => Err(PlanError::new(format!(
            "Invalid number of {}: {}",
            key.to_lowercase(),
            value.as_property_text()
        ))),
    }
}
