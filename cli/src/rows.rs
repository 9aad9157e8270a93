//! Printing a push query's rows as a table while they arrive.

use crate::table::Table;
use brook_engine::serving::PushQuery;
use brook_planner::value::{format_decimal, format_double, Value};
use std::io::Write;

/// Prints the header, then each row as it comes, until the query ends.
pub async fn print_push_query(mut push: PushQuery) -> Result<(), String> {
    let names: Vec<String> = push.columns.iter().map(|(n, _)| n.clone()).collect();
    let table = Table::streaming(&names);
    let mut out = std::io::stdout();
    table.print_header(&mut out, &names);
    let mut count = 0u64;
    while let Some(row) = push.rows.recv().await {
        let row = row?;
        table.print_row(&mut out, &row.columns.iter().map(cell).collect::<Vec<_>>());
        count += 1;
    }
    let _ = writeln!(out, "{}", table.rule());
    if push.limit.is_some_and(|l| count >= l) {
        let _ = writeln!(out, "Limit Reached");
    }
    let _ = writeln!(out, "Query terminated");
    Ok(())
}

/// A value as ksqlDB's CLI shows it.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) | Value::Timestamp(i) => i.to_string(),
        Value::Date(d) | Value::Time(d) => d.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Decimal(u, s) => format_decimal(*u, *s),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => format!("{b:?}"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}={}", cell(k), cell(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Struct(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{k}={}", cell(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
