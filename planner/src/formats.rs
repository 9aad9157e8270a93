//! Serialization formats as properties of a source: which exist, which types and column
//! counts each can hold, and their options.

use crate::error::{PlanError, Result};
use brook_sql::ast::DataType;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    Kafka,
    Json,
    Delimited,
    None,
    Avro,
    Protobuf,
    ProtobufNoSr,
    JsonSr,
}

impl FormatKind {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_uppercase().as_str() {
            "KAFKA" => FormatKind::Kafka,
            "JSON" => FormatKind::Json,
            "DELIMITED" => FormatKind::Delimited,
            "NONE" => FormatKind::None,
            "AVRO" => FormatKind::Avro,
            "PROTOBUF" => FormatKind::Protobuf,
            "PROTOBUF_NOSR" => FormatKind::ProtobufNoSr,
            "JSON_SR" => FormatKind::JsonSr,
            _ => return Err(PlanError::new(format!("Unknown format: {name}"))),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Kafka => "KAFKA",
            FormatKind::Json => "JSON",
            FormatKind::Delimited => "DELIMITED",
            FormatKind::None => "NONE",
            FormatKind::Avro => "AVRO",
            FormatKind::Protobuf => "PROTOBUF",
            FormatKind::ProtobufNoSr => "PROTOBUF_NOSR",
            FormatKind::JsonSr => "JSON_SR",
        }
    }

    /// Whether a source's columns can come from the schema registry instead of the statement.
    pub fn supports_schema_inference(self) -> bool {
        matches!(
            self,
            FormatKind::Avro | FormatKind::Protobuf | FormatKind::JsonSr
        )
    }

    /// Whether the format writes several columns as one structured record.
    pub fn supports_multiple_columns(self) -> bool {
        !matches!(self, FormatKind::Kafka | FormatKind::None)
    }
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format with its options, as a source's key or value uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    pub kind: FormatKind,
    /// DELIMITED's field separator.
    pub delimiter: char,
    /// Whether a single value column is written inside an object/record (the default) or
    /// on its own. Keys are never wrapped.
    pub wrap_single_value: bool,
    /// AVRO's record name for what is written (`VALUE_AVRO_SCHEMA_FULL_NAME`), instead of
    /// `io.confluent.ksql.avro_schemas.KsqlDataSourceSchema`.
    pub avro_full_name: Option<String>,
}

impl Format {
    pub fn new(kind: FormatKind) -> Self {
        Self {
            kind,
            delimiter: ',',
            wrap_single_value: true,
            avro_full_name: None,
        }
    }

    /// Checks that this format can hold `columns` (as key columns when `is_key`).
    pub fn validate(&self, columns: &[(&str, &DataType)], is_key: bool) -> Result<()> {
        match self.kind {
            FormatKind::None if !columns.is_empty() => {
                return Err(PlanError::new(format!(
                    "The 'NONE' format can only be used when no columns are defined. Got: [{}]",
                    column_list(columns, is_key)
                )))
            }
            FormatKind::Kafka if columns.len() > 1 => {
                return Err(PlanError::new(format!(
                    "The 'KAFKA' format only supports a single field. Got: [{}]",
                    column_list(columns, is_key)
                )))
            }
            _ => {}
        }
        for (name, t) in columns {
            // Avro names the fields of its records; a single unwrapped value has none.
            if self.kind == FormatKind::Avro
                && (columns.len() > 1 || (!is_key && self.wrap_single_value))
            {
                avro_name(name)?;
            }
            self.validate_type(t).map_err(|e| {
                if is_key {
                    PlanError::new(format!("{}, column: `{name}`", e.message))
                } else {
                    e
                }
            })?;
        }
        Ok(())
    }

    fn validate_type(&self, t: &DataType) -> Result<()> {
        let unsupported = |name: &str| {
            Err(PlanError::new(format!(
                "The '{}' format does not support type '{name}'",
                self.kind
            )))
        };
        match (self.kind, t) {
            (FormatKind::Kafka, DataType::Boolean) => unsupported("BOOLEAN"),
            (FormatKind::Kafka, DataType::Decimal { .. }) => unsupported("DECIMAL"),
            (FormatKind::Kafka | FormatKind::Delimited, DataType::Array(_)) => unsupported("ARRAY"),
            (FormatKind::Kafka | FormatKind::Delimited, DataType::Map(..)) => unsupported("MAP"),
            (FormatKind::Kafka | FormatKind::Delimited, DataType::Struct(_)) => {
                unsupported("STRUCT")
            }
            (FormatKind::Protobuf | FormatKind::ProtobufNoSr, DataType::Map(k, v)) => {
                if **k != DataType::String {
                    return Err(PlanError::new(
                        "PROTOBUF format only supports MAP types with STRING keys",
                    ));
                }
                self.validate_type(v)
            }
            (FormatKind::Avro, DataType::Map(k, v)) => {
                if **k != DataType::String {
                    return Err(PlanError::new("Avro only supports MAPs with STRING keys"));
                }
                self.validate_type(v)
            }
            (FormatKind::Avro, DataType::Struct(fields)) => fields.iter().try_for_each(|(n, t)| {
                avro_name(n)?;
                self.validate_type(t)
            }),
            (FormatKind::Json | FormatKind::JsonSr, DataType::Map(k, v)) => {
                if **k != DataType::String {
                    return Err(PlanError::new(
                        "JSON only supports MAP types with STRING keys",
                    ));
                }
                self.validate_type(v)
            }
            (_, DataType::Array(inner)) => self.validate_type(inner),
            (_, DataType::Map(_, v)) => self.validate_type(v),
            (_, DataType::Struct(fields)) => {
                fields.iter().try_for_each(|(_, t)| self.validate_type(t))
            }
            _ => Ok(()),
        }
    }
}

/// Avro's rule for names: a letter or `_`, then letters, digits and `_`.
fn avro_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let refuse = |why: &str| {
        Err(PlanError::new(format!(
            "Schema is not compatible with Avro: {why}: {name}"
        )))
    };
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return refuse("Illegal initial character"),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return refuse("Illegal character in");
    }
    Ok(())
}

fn column_list(columns: &[(&str, &DataType)], is_key: bool) -> String {
    columns
        .iter()
        .map(|(name, t)| format!("`{name}` {t}{}", if is_key { " KEY" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads DELIMITED's `VALUE_DELIMITER`/`KEY_DELIMITER` values, with ksqlDB's special names.
pub fn parse_delimiter(text: &str) -> Result<char> {
    match text.to_uppercase().as_str() {
        "TAB" => return Ok('\t'),
        "SPACE" => return Ok(' '),
        _ => {}
    }
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_whitespace() => Ok(c),
        (None, _) | (Some(_), None) => Err(PlanError::new(
            "Failed to prepare statement: Configuration VALUE_DELIMITER is invalid: Delimiter cannot be empty, if you meant to have a tab or space for delimiter, please use the special values 'TAB' or 'SPACE'\nExample valid value: ';'",
        )),
        _ => Err(PlanError::new(format!(
            "Failed to prepare statement: Configuration VALUE_DELIMITER is invalid: Invalid delimiter value: '{text}'. Delimiter must be a single character or TAB,SPACE\nExample valid value: ';'"
        ))),
    }
}
