//! A pull query: the rows a source holds now, filtered and projected once. A table holds
//! the latest record of each key (a record without a value deletes its key); a stream
//! holds every record.

use crate::dataflow::Operators;
use crate::pipeline::InputRecord;
use brook_planner::value::Value;
use std::collections::BTreeMap;

/// What a table's records amount to: its latest record per key (windowed keys carry their
/// window), in partition and key order, without deleted keys.
pub fn table_rows(records: Vec<InputRecord>) -> Vec<InputRecord> {
    let mut latest: BTreeMap<(i32, Option<Vec<u8>>), InputRecord> = BTreeMap::new();
    for record in records {
        let key = (record.partition, record.key.clone());
        if record.value.is_some() {
            latest.insert(key, record);
        } else {
            latest.remove(&key);
        }
    }
    latest.into_values().collect()
}

/// Runs a stateless query over `records`: the rows it selects, up to its limit.
pub fn run_pull(operators: &Operators, records: &[InputRecord]) -> Result<Vec<Vec<Value>>, String> {
    let mut store = brook_state::Store::memory();
    let mut errors = Vec::new();
    let limit = operators.limit().map(|l| l as usize).unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    for chunk in records.chunks(1000) {
        let output = operators.process(chunk, &mut store, &mut errors)?;
        for row in 0..output.len {
            if rows.len() >= limit {
                return Ok(rows);
            }
            if !output.tombstone.get(row).copied().unwrap_or(false) {
                rows.push(output.row(operators.projection(), row));
            }
        }
    }
    Ok(rows)
}

/// Which rows of a table a pull query needs.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The rows of these keys (one value per key column, in key order).
    Keys(Vec<Vec<Value>>),
    /// Every row.
    Scan,
}

/// ksqlDB's reasons for refusing a WHERE clause that does not pin the key, when table
/// scans are off.
struct Refusal(String);

/// The keys a pull query's WHERE clause pins: every disjunct must give each key column a
/// value (`KEY = literal` or `KEY IN (...)`; window bounds may come with them). Otherwise
/// the query scans the table, or, with `scans` off, is refused with ksqlDB's message.
pub fn key_lookup(
    query: &brook_sql::ast::Query,
    source: &brook_planner::catalog::SourceDef,
    scans: bool,
) -> Result<Lookup, String> {
    let keys: Vec<&brook_planner::catalog::Column> = source.key_columns().collect();
    let Some(filter) = &query.filter else {
        return if scans || keys.is_empty() {
            Ok(Lookup::Scan)
        } else {
            Err("Pull queries on tables without a WHERE clause need table scans (ksql.query.pull.table.scan.enabled).".into())
        };
    };
    match pinned_keys(filter, &keys) {
        Ok(Some(found)) => Ok(Lookup::Keys(found)),
        Ok(None) => Ok(Lookup::Scan),
        Err(Refusal(message))
            if scans && !message.starts_with('\'') && !message.starts_with("Primary key") =>
        {
            Ok(Lookup::Scan)
        }
        Err(Refusal(message)) => Err(message),
    }
}

fn disjuncts(e: &brook_sql::ast::Expr) -> Vec<&brook_sql::ast::Expr> {
    use brook_sql::ast::{BinaryOp, Expr};
    match e {
        Expr::Binary {
            op: BinaryOp::Or,
            left,
            right,
        } => {
            let mut all = disjuncts(left);
            all.extend(disjuncts(right));
            all
        }
        other => vec![other],
    }
}

fn conjuncts(e: &brook_sql::ast::Expr) -> Vec<&brook_sql::ast::Expr> {
    use brook_sql::ast::{BinaryOp, Expr};
    match e {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        other => vec![other],
    }
}

/// The column names `e` refers to.
fn columns_of(e: &brook_sql::ast::Expr) -> Vec<String> {
    let mut found = Vec::new();
    e.rewrite(&mut |x| {
        if let brook_sql::ast::Expr::Column { name, .. } = x {
            found.push(name.clone());
        }
        None
    });
    found
}

/// For each disjunct, the values it gives the key columns; `None` when one gives none.
fn pinned_keys(
    filter: &brook_sql::ast::Expr,
    keys: &[&brook_planner::catalog::Column],
) -> Result<Option<Vec<Vec<Value>>>, Refusal> {
    use brook_sql::ast::{BinaryOp, Expr};
    let is_key = |name: &str| keys.iter().any(|k| k.name == name);
    let key_text = keys
        .iter()
        .map(|k| format!("`{}` {} KEY", k.name, k.data_type))
        .collect::<Vec<_>>()
        .join(", ");
    let mut all = Vec::new();
    for disjunct in disjuncts(filter) {
        // Per key column, the values this disjunct allows.
        let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for c in conjuncts(disjunct) {
            let refs = columns_of(c);
            let key_refs: Vec<&String> = refs.iter().filter(|n| is_key(n)).collect();
            if key_refs.is_empty() {
                continue;
            }
            let column = keys
                .iter()
                .find(|k| k.name == *key_refs[0])
                .copied()
                .ok_or_else(|| {
                    Refusal("A comparison must directly reference a key column.".into())
                })?;
            let direct = |e: &Expr| matches!(e, Expr::Column { name, .. } if *name == column.name);
            let resolvable = |e: &Expr| columns_of(e).is_empty();
            let convert = |e: &Expr| -> Result<Value, Refusal> {
                if matches!(e, Expr::Literal(brook_sql::ast::Literal::Null)) {
                    return Err(Refusal(format!(
                        "Primary key columns can not be NULL: ({} = null)",
                        column.name
                    )));
                }
                if matches!(e, Expr::Literal(brook_sql::ast::Literal::String(_)))
                    && column.data_type != brook_sql::ast::DataType::String
                {
                    return Err(Refusal(format!(
                        "{e} can not be converted to the type of the key column: {} {} KEY",
                        column.name, column.data_type
                    )));
                }
                crate::session::literal_value(e, &column.data_type, &column.name)
                    .map_err(|err| Refusal(err.message))
            };
            if values.contains_key(&column.name) {
                return Err(Refusal("A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate".into()));
            }
            let pinned = match c {
                Expr::Binary {
                    op: BinaryOp::Eq,
                    left,
                    right,
                } => {
                    let other = if direct(left) {
                        right
                    } else if direct(right) {
                        left
                    } else {
                        let (l, r) = (columns_of(left), columns_of(right));
                        let both = !l.is_empty() && !r.is_empty();
                        return Err(Refusal(if both {
                            "A comparison must be between a key column and a resolvable expression."
                        } else {
                            "A comparison must directly reference a key column."
                        }
                        .into()));
                    };
                    if !resolvable(other) {
                        return Err(Refusal(
                            "A comparison must be between a key column and a resolvable expression."
                                .into(),
                        ));
                    }
                    vec![convert(other)?]
                }
                Expr::InList {
                    expr,
                    list,
                    negated: false,
                } if direct(expr) => {
                    if !list.iter().all(resolvable) {
                        return Err(Refusal(
                            "A comparison must be between a key column and a resolvable expression."
                                .into(),
                        ));
                    }
                    list.iter().map(convert).collect::<Result<_, _>>()?
                }
                Expr::Binary {
                    op:
                        BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq,
                    ..
                } => {
                    let others = conjuncts(disjunct)
                        .iter()
                        .filter(|x| columns_of(x).iter().any(|n| is_key(n)))
                        .count();
                    return Err(Refusal(if others > 1 {
                        "A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate".to_string()
                    } else {
                        format!("Bound on key columns '[{key_text}]' must currently be '='. ")
                    }));
                }
                _ => {
                    return Err(Refusal(
                        "A comparison must directly reference a key column.".into(),
                    ))
                }
            };
            values.insert(column.name.clone(), pinned);
        }
        if values.is_empty() {
            return Err(Refusal(format!(
                "WHERE clause missing key column for disjunct: {disjunct}"
            )));
        }
        if values.len() < keys.len() {
            return Err(Refusal(
                "Multi-column sources must specify every key in the WHERE clause".into(),
            ));
        }
        // Every combination of the key columns' values.
        let mut combos: Vec<Vec<Value>> = vec![vec![]];
        for k in keys {
            let options = values.get(&k.name).cloned().unwrap_or_default();
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    options.iter().map(move |v| {
                        let mut next = c.clone();
                        next.push(v.clone());
                        next
                    })
                })
                .collect();
        }
        all.extend(combos);
    }
    Ok(Some(all))
}
