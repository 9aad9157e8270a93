//! The entities `/ksql` answers `SHOW` / `LIST` with, in ksqlDB's shapes.

use brook_engine::Listing;
use brook_sql::ast::{DataType, SourceKind};
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
                        "isWindowed": s.window.is_some(),
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
        Listing::Source(d) => json!({
            "@type": "sourceDescription",
            "statementText": statement_text,
            "sourceDescription": source_description(d),
            "warnings": [],
        }),
        Listing::SourceDescriptions(descriptions) => json!({
            "@type": "source_descriptions",
            "statementText": statement_text,
            "sourceDescriptions": descriptions.iter().map(source_description).collect::<Vec<_>>(),
            "warnings": [],
        }),
        Listing::QueryDescriptions(descriptions) => json!({
            "@type": "queryDescriptionList",
            "statementText": statement_text,
            "queryDescriptions": descriptions.iter().map(query_description).collect::<Vec<_>>(),
            "warnings": [],
        }),
        Listing::Queries(queries) => {
            let items: Vec<Value> = queries.iter().map(query).collect();
            json!({
                "@type": "queries",
                "statementText": statement_text,
                "queries": items,
                "warnings": [],
            })
        }
        Listing::Properties {
            properties,
            overwritten,
        } => {
            let items: Vec<Value> = properties
                .iter()
                .map(|(name, value)| json!({"name": name, "scope": "KSQL", "value": value}))
                .collect();
            json!({
                "@type": "properties",
                "statementText": statement_text,
                "properties": items,
                "overwrittenProperties": overwritten,
                "defaultProperties": [],
                "warnings": [],
            })
        }
        Listing::Topics { topics, consumers } => {
            let items: Vec<Value> = topics
                .iter()
                .map(|(name, partitions, replicas)| {
                    let mut item = json!({
                        "name": name,
                        "replicaInfo": vec![replicas; (*partitions).max(0) as usize],
                    });
                    if let Some(consumers) = consumers {
                        let c = consumers.get(name).copied().unwrap_or_default();
                        item["consumerCount"] = json!(c.consumers);
                        item["consumerGroupCount"] = json!(c.groups);
                    }
                    item
                })
                .collect();
            let entity = match consumers {
                Some(_) => "kafka_topics_extended",
                None => "kafka_topics",
            };
            json!({
                "@type": entity,
                "statementText": statement_text,
                "topics": items,
                "warnings": [],
            })
        }
        Listing::Functions(functions) => json!({
            "@type": "function_names",
            "statementText": statement_text,
            "functions": functions
                .iter()
                .map(|f| json!({"name": f.name, "type": f.kind, "category": f.category}))
                .collect::<Vec<_>>(),
            "warnings": [],
        }),
        Listing::Function { name, kind } => json!({
            "@type": "describe_function",
            "statementText": statement_text,
            "name": name,
            "description": brook_engine::metadata::description(name),
            "author": "Brook",
            "version": crate::VERSION,
            "path": "internal",
            "functions": brook_engine::metadata::signatures(name)
                .iter()
                .map(|(args, returns)| {
                    let names = brook_engine::metadata::argument_names(name, args.len());
                    let shown: Vec<String> = args.iter().map(|t| t.to_string()).collect();
                    json!({
                        "arguments": names
                            .iter()
                            .zip(&shown)
                            .map(|(n, t)| json!({"name": n, "type": t, "description": format!("{n}, a {t}"), "isVariadic": false}))
                            .collect::<Vec<_>>(),
                        "returnType": returns.to_string(),
                        "argumentTypes": shown,
                        "description": format!(
                            "{}({}) returns {returns}",
                            name.to_uppercase(),
                            names.iter().zip(&shown).map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ")
                        ),
                    })
                })
                .collect::<Vec<_>>(),
            "type": kind,
            "warnings": [],
        }),
        Listing::Types(types) => {
            let mut all = serde_json::Map::new();
            for (name, t) in types {
                all.insert(name.clone(), json!({"type": t}));
            }
            json!({
                "@type": "type_list",
                "statementText": statement_text,
                "types": all,
                "warnings": [],
            })
        }
        Listing::Query(q) => json!({
            "@type": "queryDescription",
            "statementText": statement_text,
            "queryDescription": query_description(q),
            "warnings": [],
        }),
        Listing::Connectors(connectors) => {
            crate::connect::connector_list(statement_text, connectors)
        }
        Listing::Connector { status, sources } => {
            crate::connect::connector_description(statement_text, status, sources)
        }
        Listing::ConnectorPlugins(plugins) => crate::connect::plugins_list(statement_text, plugins),
        Listing::Usage(usage) => json!({
            "@type": "usage",
            "statementText": statement_text,
            "usage": usage
                .iter()
                .map(|u| json!({
                    "queryId": u.query_id,
                    "kind": u.kind.name(),
                    "recordsRead": u.records_read,
                    "bytesRead": u.bytes_read,
                    "recordsWritten": u.records_written,
                    "bytesWritten": u.bytes_written,
                    "changelogRecordsWritten": u.changelog_records_written,
                    "changelogBytesWritten": u.changelog_bytes_written,
                    "cpuSeconds": u.cpu_seconds,
                    "stateBytes": u.state_bytes,
                    "intervals": u.intervals,
                }))
                .collect::<Vec<_>>(),
            "warnings": [],
        }),
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

/// DESCRIBE EXTENDED's error figures, in ksqlDB's `name: value` layout: the topic's failed
/// records, and the records its readers found away from their key's partition.
fn error_stats(d: &brook_engine::SourceDescription) -> String {
    if !d.extended {
        return String::new();
    }
    let misplaced: u64 = d.read_queries.iter().map(|q| q.misplaced).sum();
    let mut stats = vec![d.statistics.error_stats.clone()];
    if misplaced > 0 {
        stats.push(format!("misplaced-records:{misplaced:>10}"));
    }
    stats.retain(|s| !s.is_empty());
    stats.join(" ")
}

/// A query's failure as ksqlDB's `QueryError` shows it.
fn query_error(e: &brook_engine::runtime::QueryFailure) -> Value {
    json!({
        "timestamp": e.timestamp,
        "errorMessage": e.message,
        "type": "UNKNOWN",
    })
}

fn query(q: &brook_engine::QuerySummary) -> Value {
    json!({
        "queryString": q.sql,
        "sinks": [q.sink],
        "sinkKafkaTopics": [q.sink_topic],
        "id": q.id,
        "statusCount": {q.state.clone(): 1},
        "queryType": "PERSISTENT",
        "state": q.state,
    })
}

/// A column type as ksqlDB's field schemas name it: the type's keyword.
fn type_name(t: &DataType) -> String {
    let full = t.to_string();
    full.split(['<', '(']).next().unwrap_or(&full).to_string()
}

/// A type as ksqlDB's schema objects describe it: its keyword, a struct's fields, an
/// array's or map's element schema.
fn schema_info(t: &DataType) -> Value {
    let fields = match t {
        DataType::Struct(fields) => Value::Array(
            fields
                .iter()
                .map(|(name, t)| json!({"name": name, "schema": schema_info(t)}))
                .collect(),
        ),
        _ => Value::Null,
    };
    let member = match t {
        DataType::Array(e) | DataType::Map(_, e) => schema_info(e),
        _ => Value::Null,
    };
    json!({"type": type_name(t), "fields": fields, "memberSchema": member})
}

/// Columns as ksqlDB's `fields`: name, schema, and `"type": "KEY"` for key columns.
fn fields(columns: &[(String, DataType, bool)]) -> Vec<Value> {
    columns
        .iter()
        .map(|(name, t, key)| {
            let mut field = json!({"name": name, "schema": schema_info(t)});
            if *key {
                field["type"] = json!("KEY");
            }
            field
        })
        .collect()
}

/// A stream's or table's description, as DESCRIBE gives it.
fn source_description(d: &brook_engine::SourceDescription) -> Value {
    json!({
        "name": d.summary.name,
        "windowType": d.summary.window,
        "readQueries": d.read_queries.iter().map(query).collect::<Vec<_>>(),
        "writeQueries": d.write_queries.iter().map(query).collect::<Vec<_>>(),
        "fields": fields(&d.columns),
        "type": match d.kind { SourceKind::Stream => "STREAM", SourceKind::Table => "TABLE" },
        "timestamp": d.timestamp_column.clone().unwrap_or_default(),
        "statistics": if d.extended { d.statistics.statistics.clone() } else { String::new() },
        "errorStats": error_stats(d),
        "extended": d.extended,
        "keyFormat": d.summary.key_format,
        "valueFormat": d.summary.value_format,
        "topic": d.summary.topic,
        "partitions": d.partitions,
        "replication": d.replication,
        "statement": d.statement,
        "sourceConstraints": d.constraints,
    })
}

/// A query's description, as EXPLAIN gives it.
fn query_description(q: &brook_engine::QueryDescription) -> Value {
    json!({
        "id": q.id,
        "statementText": q.statement,
        "windowType": q.window,
        "fields": fields(&q.fields),
        "sources": q.sources,
        "sinks": q.sinks,
        "topology": q.topology,
        "executionPlan": q.execution_plan,
        "overriddenProperties": q.overridden,
        "ksqlHostQueryStatus": match (&q.host, &q.state) {
            (Some(host), Some(state)) => json!({host.clone(): state}),
            _ => json!({}),
        },
        "queryType": if q.id.is_empty() { "" } else { "PERSISTENT" },
        "state": q.state,
        "queryErrors": q.errors.iter().map(query_error).collect::<Vec<_>>(),
        // Brook's own: how far each store's latest restore from its changelog came in
        // this process.
        "restores": q.restores.iter().map(|(changelog, partition, r)| json!({
            "changelog": changelog,
            "partition": partition,
            "restored": r.restored,
            "toRestore": r.to_restore,
            "done": r.done,
        })).collect::<Vec<_>>(),
    })
}
