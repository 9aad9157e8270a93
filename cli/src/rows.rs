//! Printing a push query's rows as a table while they arrive.

use brook_engine::query::PushQuery;
use brook_planner::value::{format_decimal, format_double, Value};
use std::io::Write;

/// Prints the header, then each row as it comes, until the query ends.
pub async fn print_push_query(mut push: PushQuery) -> Result<(), String> {
    let widths: Vec<usize> = push.columns.iter().map(|(n, _)| n.len().max(12)).collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+";
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("| {c:<w$} "))
            .collect::<String>()
            + "|"
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{rule}");
    let _ = writeln!(
        out,
        "{}",
        line(push.columns.iter().map(|(n, _)| n.clone()).collect())
    );
    let _ = writeln!(out, "{rule}");
    let _ = out.flush();
    let mut count = 0u64;
    while let Some(row) = push.rows.recv().await {
        let row = row?;
        let _ = writeln!(out, "{}", line(row.iter().map(cell).collect()));
        let _ = out.flush();
        count += 1;
    }
    let _ = writeln!(out, "{rule}");
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
