//! The entities `/ksql` answers `SHOW` / `LIST` with, in ksqlDB's shapes.

use brook_engine::Listing;
use brook_sql::ast::SourceKind;
use serde_json::{json, Value};

pub fn listing(statement_text: &str, listing: &Listing) -> Value {
    match listing {
        Listing::Sources { kind, sources } => {
            let (entity, field, kind_name) = match kind {
                SourceKind::Stream => ("streams", "streams", "STREAM"),
                SourceKind::Table => ("tables", "tables", "TABLE"),
            };
            let items: Vec<Value> = sources
                .iter()
                .map(|s| {
                    json!({
                        "type": kind_name,
                        "name": s.name,
                        "topic": s.topic,
                        "keyFormat": s.key_format,
                        "valueFormat": s.value_format,
                        "isWindowed": s.windowed,
                    })
                })
                .collect();
            json!({
                "@type": entity,
                "statementText": statement_text,
                field: items,
                "warnings": [],
            })
        }
        Listing::Queries(queries) => {
            let items: Vec<Value> = queries
                .iter()
                .map(|q| {
                    json!({
                        "queryString": q.sql,
                        "sinks": [q.sink],
                        "sinkKafkaTopics": [q.sink_topic],
                        "id": q.id,
                        "statusCount": {q.state.clone(): 1},
                        "queryType": "PERSISTENT",
                        "state": q.state,
                    })
                })
                .collect();
            json!({
                "@type": "queries",
                "statementText": statement_text,
                "queries": items,
                "warnings": [],
            })
        }
        Listing::Properties(properties) => {
            let items: Vec<Value> = properties
                .iter()
                .map(|(name, value)| json!({"name": name, "scope": "KSQL", "value": value}))
                .collect();
            json!({
                "@type": "properties",
                "statementText": statement_text,
                "properties": items,
                "overwrittenProperties": [],
                "defaultProperties": [],
                "warnings": [],
            })
        }
        Listing::Variables(variables) => {
            let items: Vec<Value> = variables
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            json!({
                "@type": "variables",
                "statementText": statement_text,
                "variables": items,
                "warnings": [],
            })
        }
    }
}
