//! How the shell shows what the server answers: tables (the default), or JSON after
//! `OUTPUT JSON`.

use crate::table::print_table;
use serde_json::Value;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Tabular,
    Json,
}

/// A value in a table cell: strings as they are, the rest as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Prints the entities `/ksql` answered with.
pub fn entities(out: &mut impl Write, format: Format, entities: &[Value]) {
    if format == Format::Json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&Value::Array(entities.to_vec())).unwrap_or_default()
        );
        return;
    }
    for entity in entities {
        tabular(out, entity);
    }
}

fn tabular(out: &mut impl Write, entity: &Value) {
    let rows = |list: &Value, fields: &[&str]| -> Vec<Vec<String>> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|item| fields.iter().map(|f| cell(&item[*f])).collect())
            .collect()
    };
    match entity["@type"].as_str().unwrap_or_default() {
        "currentStatus" => {
            let message = cell(&entity["commandStatus"]["message"]);
            print_table(out, &strings(&["Message"]), &[vec![message]]);
        }
        kind @ ("streams" | "tables") => {
            let noun = if kind == "streams" { "Stream" } else { "Table" };
            print_table(
                out,
                &[
                    format!("{noun} Name"),
                    "Kafka Topic".into(),
                    "Key Format".into(),
                    "Value Format".into(),
                    "Windowed".into(),
                ],
                &rows(
                    &entity[kind],
                    &["name", "topic", "keyFormat", "valueFormat", "isWindowed"],
                ),
            );
        }
        "queries" => {
            let queries: Vec<Vec<String>> = entity["queries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|q| {
                    vec![
                        cell(&q["id"]),
                        cell(&q["state"]),
                        cell(&q["sinks"][0]),
                        cell(&q["sinkKafkaTopics"][0]),
                        cell(&q["queryString"]),
                    ]
                })
                .collect();
            print_table(
                out,
                &strings(&[
                    "Query ID",
                    "Status",
                    "Sink Name",
                    "Sink Kafka Topic",
                    "Query String",
                ]),
                &queries,
            );
        }
        "properties" => print_table(
            out,
            &strings(&["Property", "Scope", "Value"]),
            &rows(&entity["properties"], &["name", "scope", "value"]),
        ),
        "variables" => print_table(
            out,
            &strings(&["Variable Name", "Value"]),
            &rows(&entity["variables"], &["name", "value"]),
        ),
        "sourceDescription" => source_description(out, &entity["sourceDescription"]),
        "source_descriptions" => {
            for d in entity["sourceDescriptions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                source_description(out, d);
                let _ = writeln!(out);
            }
        }
        "warning_entity" => {
            let _ = writeln!(out, "Warning: {}", cell(&entity["message"]));
        }
        "kafka_topics" | "kafka_topics_extended" => {
            let extended = entity["@type"] == "kafka_topics_extended";
            let topics: Vec<Vec<String>> = entity["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let replicas = t["replicaInfo"].as_array().cloned().unwrap_or_default();
                    let mut row = vec![
                        cell(&t["name"]),
                        replicas.len().to_string(),
                        replicas.first().map(cell).unwrap_or_default(),
                    ];
                    if extended {
                        row.push(cell(&t["consumerCount"]));
                        row.push(cell(&t["consumerGroupCount"]));
                    }
                    row
                })
                .collect();
            let mut header = strings(&["Kafka Topic", "Partitions", "Partition Replicas"]);
            if extended {
                header.extend(strings(&["Consumers", "ConsumerGroups"]));
            }
            print_table(out, &header, &topics);
        }
        "function_names" => print_table(
            out,
            &strings(&["Function Name", "Type"]),
            &rows(&entity["functions"], &["name", "type"]),
        ),
        "describe_function" => {
            let _ = writeln!(out, "Name        : {}", cell(&entity["name"]));
            let _ = writeln!(out, "Author      : {}", cell(&entity["author"]));
            let _ = writeln!(out, "Version     : {}", cell(&entity["version"]));
            let _ = writeln!(out, "Overview    : {}", cell(&entity["description"]));
            let _ = writeln!(out, "Type        : {}", cell(&entity["type"]));
            let overloads: Vec<Vec<String>> = entity["functions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    let args: Vec<String> = f["argumentTypes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(cell)
                        .collect();
                    vec![args.join(", "), cell(&f["returnType"])]
                })
                .collect();
            print_table(out, &strings(&["Arguments", "Returns"]), &overloads);
        }
        "type_list" => {
            let types: Vec<Vec<String>> = entity["types"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, t)| vec![name.clone(), cell(&t["type"])])
                .collect();
            print_table(out, &strings(&["Type Name", "Schema"]), &types);
        }
        "connector_info" => {
            let _ = writeln!(out, " Created connector {}", cell(&entity["info"]["name"]));
        }
        "drop_connector" => {
            let _ = writeln!(
                out,
                " Dropped connector \"{}\"",
                cell(&entity["connectorName"])
            );
        }
        "connector_list" => print_table(
            out,
            &strings(&["Connector Name", "Type", "Class", "Status"]),
            &rows(
                &entity["connectors"],
                &["name", "type", "className", "state"],
            ),
        ),
        "usage" => print_table(
            out,
            &strings(&[
                "Query ID",
                "Kind",
                "Records Read",
                "Bytes Read",
                "Records Written",
                "Bytes Written",
                "Changelog Bytes",
                "CPU Seconds",
                "State Bytes",
            ]),
            &rows(
                &entity["usage"],
                &[
                    "queryId",
                    "kind",
                    "recordsRead",
                    "bytesRead",
                    "recordsWritten",
                    "bytesWritten",
                    "changelogBytesWritten",
                    "cpuSeconds",
                    "stateBytes",
                ],
            ),
        ),
        "connector_plugins_list" => print_table(
            out,
            &strings(&["Class", "Type", "Version"]),
            &rows(
                &entity["connectorsPlugins"],
                &["className", "type", "version"],
            ),
        ),
        "connector_description" => {
            let status = &entity["status"];
            let _ = writeln!(out, "Name                 : {}", cell(&status["name"]));
            let _ = writeln!(
                out,
                "Class                : {}",
                cell(&entity["connectorClass"])
            );
            let _ = writeln!(out, "Type                 : {}", cell(&status["type"]));
            let _ = writeln!(
                out,
                "State                : {}",
                cell(&status["connector"]["state"])
            );
            let _ = writeln!(
                out,
                "WorkerId             : {}",
                cell(&status["connector"]["worker_id"])
            );
            let _ = writeln!(out);
            print_table(
                out,
                &strings(&[
                    "Task ID",
                    "State",
                    "Sent",
                    "Retries",
                    "Dead Letters",
                    "Error Trace",
                ]),
                &rows(
                    &status["tasks"],
                    &[
                        "id",
                        "state",
                        "records_sent",
                        "retries",
                        "dead_letters",
                        "trace",
                    ],
                ),
            );
        }
        "queryDescription" => query_description(out, &entity["queryDescription"]),
        "queryDescriptionList" => {
            for q in entity["queryDescriptions"].as_array().into_iter().flatten() {
                query_description(out, q);
                let _ = writeln!(out);
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(entity).unwrap_or_default()
            );
        }
    }
}

/// A stream's or table's description, as DESCRIBE shows it.
fn source_description(out: &mut impl Write, d: &Value) {
    let _ = writeln!(out, "Name                 : {}", cell(&d["name"]));
    let _ = writeln!(out, "Type                 : {}", cell(&d["type"]));
    let _ = writeln!(out, "Kafka topic          : {}", cell(&d["topic"]));
    let _ = writeln!(out, "Key format           : {}", cell(&d["keyFormat"]));
    let _ = writeln!(out, "Value format         : {}", cell(&d["valueFormat"]));
    let fields: Vec<Vec<String>> = d["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let key = if f["type"] == "KEY" { " (key)" } else { "" };
            vec![
                cell(&f["name"]),
                format!("{}{key}", cell(&f["schema"]["type"])),
            ]
        })
        .collect();
    print_table(out, &strings(&["Field", "Type"]), &fields);
    if d["extended"] == true {
        let _ = writeln!(
            out,
            "Partitions           : {}, replication: {}",
            cell(&d["partitions"]),
            cell(&d["replication"])
        );
        for (title, queries) in [
            ("Queries that read from this source", &d["readQueries"]),
            ("Queries that write from this source", &d["writeQueries"]),
        ] {
            let _ = writeln!(out, "\n{title}\n-----------------------------------");
            for q in queries.as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "{} ({}) : {}",
                    cell(&q["id"]),
                    cell(&q["state"]),
                    cell(&q["queryString"])
                );
            }
        }
        let _ = writeln!(out, "\nLocal runtime statistics\n------------------------");
        let _ = writeln!(out, "{}", cell(&d["statistics"]));
        let _ = writeln!(out, "{}", cell(&d["errorStats"]));
        let _ = writeln!(
            out,
            "(Statistics of the local KSQL server interaction with the Kafka topic {})",
            cell(&d["topic"])
        );
    }
}

/// A query's description, as EXPLAIN shows it.
fn query_description(out: &mut impl Write, q: &Value) {
    let _ = writeln!(out, "ID                   : {}", cell(&q["id"]));
    let _ = writeln!(out, "SQL                  : {}", cell(&q["statementText"]));
    let _ = writeln!(out, "Sources              : {}", cell(&q["sources"]));
    let _ = writeln!(out, "Sinks                : {}", cell(&q["sinks"]));
    let _ = writeln!(out, "State                : {}", cell(&q["state"]));
    let _ = writeln!(
        out,
        "\nExecution plan\n--------------\n{}",
        cell(&q["executionPlan"])
    );
}
