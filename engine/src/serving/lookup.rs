//! Which keys a pull query's WHERE clause pins, by ksqlDB's rules: every disjunct must
//! give each key column its values with `KEY = literal` or `KEY IN (...)` (window bounds
//! may come with them). A single STRING key bounded by one comparison (`<`, `<=`, `>`,
//! `>=`) is a range of the store's key order, served without a table scan when range
//! scans are on. Otherwise the query scans its table, or, with table scans off, is
//! refused with ksqlDB's message.

use brook_planner::catalog::Column;
use brook_planner::value::Value;
use brook_sql::ast::{BinaryOp, DataType, Expr, Literal, Query};
use std::collections::BTreeMap;

/// Which rows of a table a pull query needs.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The rows of these keys (one value per key column, in key order).
    Keys(Vec<Vec<Value>>),
    /// The rows whose key lies between the bounds (each inclusive; the WHERE clause still
    /// decides the ends).
    Range {
        lower: Option<Value>,
        upper: Option<Value>,
    },
    /// Every row.
    Scan,
}

/// What the session allows a pull query besides key lookups.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// `ksql.query.pull.table.scan.enabled`
    pub scans: bool,
    /// `ksql.query.pull.range.scan.enabled`
    pub ranges: bool,
}

/// Why a WHERE clause pins no keys, in ksqlDB's words; `always` refusals hold even when
/// the table may be scanned (values that cannot be keys).
struct Refusal {
    message: String,
    always: bool,
}

fn refuse<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        message: message.into(),
        always: false,
    })
}

const NOT_DIRECT: &str = "A comparison must directly reference a key column.";
const NOT_RESOLVABLE: &str =
    "A comparison must be between a key column and a resolvable expression.";
const COMBINED: &str = "A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate";
const NEEDS_SCAN: &str = "Query requires table scan to be enabled";
const EVERY_KEY: &str = "Multi-column sources must specify every key in the WHERE clause.";

/// What one disjunct pins: values of every key column, or a range of the only one.
enum Pinned {
    Values(BTreeMap<String, Vec<Value>>),
    Range {
        lower: Option<Value>,
        upper: Option<Value>,
    },
}

pub fn key_lookup(
    query: &Query,
    source: &brook_planner::catalog::SourceDef,
    access: Access,
) -> Result<Lookup, String> {
    let keys: Vec<&Column> = source.key_columns().collect();
    let Some(filter) = &query.filter else {
        return if access.scans || keys.is_empty() {
            Ok(Lookup::Scan)
        } else {
            Err("Pull queries on tables without a WHERE clause need table scans (ksql.query.pull.table.scan.enabled).".into())
        };
    };
    // Ranges follow the store's byte order, which is a STRING key's order only (a
    // windowed key is its key's bytes, then its window).
    let ranged = matches!(keys.as_slice(), [k] if k.data_type == DataType::String);
    match pinned_keys(filter, &keys, ranged) {
        Ok(Lookup::Range { .. }) if !access.ranges => match access.scans {
            true => Ok(Lookup::Scan),
            false => Err(NEEDS_SCAN.into()),
        },
        Ok(lookup) => Ok(lookup),
        Err(Refusal { always: false, .. }) if access.scans => Ok(Lookup::Scan),
        Err(Refusal { message, .. }) => Err(message),
    }
}

/// ksqlDB's refusal of a LIKE on a column that is not a string, which a pull query meets
/// before its WHERE clause is typed.
pub fn check_like(query: &Query, source: &brook_planner::catalog::SourceDef) -> Result<(), String> {
    let mut problem = None;
    if let Some(filter) = &query.filter {
        filter.rewrite(&mut |node| {
            if let Expr::Like { expr, .. } = node {
                if let Expr::Column { name, .. } = &**expr {
                    let column = source.columns.iter().find(|c| c.name == *name);
                    if let Some(c) = column.filter(|c| c.data_type != DataType::String) {
                        problem.get_or_insert_with(|| format!(
                            "The column type for Like condition must be VARCHAR. The column type is {}",
                            c.data_type
                        ));
                    }
                }
            }
            None
        });
    }
    problem.map_or(Ok(()), Err)
}

/// The operands of a chain of `op`s.
fn split(e: &Expr, op: BinaryOp) -> Vec<&Expr> {
    match e {
        Expr::Binary {
            op: found,
            left,
            right,
        } if *found == op => {
            let mut all = split(left, op);
            all.extend(split(right, op));
            all
        }
        other => vec![other],
    }
}

/// The column names `e` refers to.
fn columns_of(e: &Expr) -> Vec<String> {
    let mut found = Vec::new();
    e.rewrite(&mut |x| {
        if let Expr::Column { name, .. } = x {
            found.push(name.clone());
        }
        None
    });
    found
}

/// Every list taking one element of each of `options`, in order.
pub(crate) fn combinations<T: Clone>(options: &[Vec<T>]) -> Vec<Vec<T>> {
    let mut lists: Vec<Vec<T>> = vec![vec![]];
    for choices in options {
        lists = lists
            .iter()
            .flat_map(|l| {
                choices.iter().map(move |c| {
                    let mut next = l.clone();
                    next.push(c.clone());
                    next
                })
            })
            .collect();
    }
    lists
}

/// The key values of each disjunct, every combination of its key columns' values; or the
/// range of a clause that is one range.
fn pinned_keys(filter: &Expr, keys: &[&Column], ranged: bool) -> Result<Lookup, Refusal> {
    let disjuncts = split(filter, BinaryOp::Or);
    let mut all = Vec::new();
    for disjunct in &disjuncts {
        match disjunct_keys(disjunct, keys, ranged)? {
            // A union of ranges is a scan.
            Pinned::Range { .. } if disjuncts.len() > 1 => return refuse(NEEDS_SCAN),
            Pinned::Range { lower, upper } => return Ok(Lookup::Range { lower, upper }),
            Pinned::Values(values) => {
                let options: Vec<Vec<Value>> = keys
                    .iter()
                    .map(|k| values.get(&k.name).cloned().unwrap_or_default())
                    .collect();
                all.extend(combinations(&options));
            }
        }
    }
    Ok(Lookup::Keys(all))
}

/// Per key column, the values one disjunct allows, or the range it bounds the key to.
fn disjunct_keys(disjunct: &Expr, keys: &[&Column], ranged: bool) -> Result<Pinned, Refusal> {
    let key_of = |e: &Expr| {
        columns_of(e)
            .into_iter()
            .find_map(|n| keys.iter().find(|k| k.name == n).copied())
    };
    let conjuncts = split(disjunct, BinaryOp::And);
    if conjuncts
        .iter()
        .any(|c| matches!(c, Expr::Like { expr, .. } if !matches!(**expr, Expr::Column { .. })))
    {
        return refuse("Like condition must be between strings");
    }
    let conditions: Vec<(&Expr, &Column)> = conjuncts
        .into_iter()
        .filter_map(|c| key_of(c).map(|k| (c, k)))
        .collect();
    let on = |column: &Column| {
        conditions
            .iter()
            .filter(|(_, k)| k.name == column.name)
            .count()
    };
    if keys.len() > 1 && keys.iter().any(|k| on(k) == 0) && !conditions.is_empty() {
        return refuse(EVERY_KEY);
    }
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut range = None;
    for (condition, column) in &conditions {
        if on(column) > 1 {
            return refuse(COMBINED);
        }
        let pinned = match condition {
            Expr::Binary {
                op: BinaryOp::Eq,
                left,
                right,
            } => vec![equality(left, right, column)?],
            Expr::InList {
                expr,
                list,
                negated: false,
            } if is_column(expr, column) => {
                if !list.iter().all(|e| columns_of(e).is_empty()) {
                    return refuse(NOT_RESOLVABLE);
                }
                list.iter()
                    .map(|e| key_value(e, column))
                    .collect::<Result<_, _>>()?
            }
            Expr::Binary {
                op: BinaryOp::NotEq,
                ..
            } => {
                let key_text = keys
                    .iter()
                    .map(|k| format!("`{}` {} KEY", k.name, k.data_type))
                    .collect::<Vec<_>>()
                    .join(", ");
                return refuse(format!(
                    "Bound on key columns '[{key_text}]' must currently be '='. "
                ));
            }
            Expr::Binary {
                op: op @ (BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq),
                left,
                right,
            } => {
                if !ranged {
                    return refuse(NEEDS_SCAN);
                }
                // `KEY < x` bounds it above, `x < KEY` below.
                let (bound, key_first) = if is_column(left, column) {
                    (right, true)
                } else if is_column(right, column) {
                    (left, false)
                } else {
                    return refuse(NOT_DIRECT);
                };
                if !columns_of(bound).is_empty() {
                    return refuse(NOT_RESOLVABLE);
                }
                let value = key_value(bound, column)?;
                let below = matches!(op, BinaryOp::Lt | BinaryOp::LtEq) == key_first;
                range = Some(match below {
                    true => (None, Some(value)),
                    false => (Some(value), None),
                });
                continue;
            }
            _ => return refuse(NOT_DIRECT),
        };
        values.insert(column.name.clone(), pinned);
    }
    if let Some((lower, upper)) = range {
        return Ok(Pinned::Range { lower, upper });
    }
    if values.is_empty() {
        return refuse(format!(
            "WHERE clause missing key column for disjunct: {disjunct}"
        ));
    }
    if values.len() < keys.len() {
        return refuse(EVERY_KEY);
    }
    Ok(Pinned::Values(values))
}

fn is_column(e: &Expr, column: &Column) -> bool {
    matches!(e, Expr::Column { name, .. } if *name == column.name)
}

/// The value `KEY = other` (or `other = KEY`) gives the key.
fn equality(left: &Expr, right: &Expr, column: &Column) -> Result<Value, Refusal> {
    let other = if is_column(left, column) {
        right
    } else if is_column(right, column) {
        left
    } else if !columns_of(left).is_empty() && !columns_of(right).is_empty() {
        return refuse(NOT_RESOLVABLE);
    } else {
        return refuse(NOT_DIRECT);
    };
    if !columns_of(other).is_empty() {
        return refuse(NOT_RESOLVABLE);
    }
    key_value(other, column)
}

/// A literal as a value of the key column; NULL and strings for other types never are.
fn key_value(e: &Expr, column: &Column) -> Result<Value, Refusal> {
    let always = |message: String| {
        Err(Refusal {
            message,
            always: true,
        })
    };
    if matches!(e, Expr::Literal(Literal::Null)) {
        return always(format!(
            "Primary key columns can not be NULL: ({} = null)",
            column.name
        ));
    }
    if matches!(e, Expr::Literal(Literal::String(_))) && column.data_type != DataType::String {
        return always(format!(
            "{e} can not be converted to the type of the key column: {} {} KEY",
            column.name, column.data_type
        ));
    }
    crate::session::literal_value(e, &column.data_type, &column.name).map_err(|err| Refusal {
        message: err.message,
        always: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_planner::catalog::ColumnRole;

    fn key(name: &str, data_type: DataType) -> Column {
        Column {
            name: name.into(),
            data_type,
            role: ColumnRole::Key,
        }
    }

    fn filter(sql: &str) -> Expr {
        let sql = format!("SELECT * FROM T WHERE {sql};");
        let statement = brook_sql::parse_statements(&sql, &mut Default::default())
            .expect("parses")
            .remove(0);
        match statement.kind {
            brook_sql::ast::StatementKind::Query(q) => q.filter.expect("a WHERE clause"),
            other => panic!("not a query: {other:?}"),
        }
    }

    fn pinned(sql: &str, keys: &[Column], ranged: bool) -> Result<Lookup, String> {
        let keys: Vec<&Column> = keys.iter().collect();
        pinned_keys(&filter(sql), &keys, ranged).map_err(|r| r.message)
    }

    #[test]
    fn one_comparison_on_a_string_key_is_a_range() {
        let id = [key("ID", DataType::String)];
        let s = |t: &str| Some(Value::String(t.into()));
        assert_eq!(
            pinned("ID < '12'", &id, true),
            Ok(Lookup::Range {
                lower: None,
                upper: s("12")
            })
        );
        assert_eq!(
            pinned("'12' <= ID AND V0 > 'x'", &id, true),
            Ok(Lookup::Range {
                lower: s("12"),
                upper: None
            })
        );
        assert_eq!(
            pinned("ID >= '11' AND ID <= '13'", &id, true),
            Err(COMBINED.into())
        );
        assert_eq!(
            pinned("ID < '11' OR ID > '13'", &id, true),
            Err(NEEDS_SCAN.into())
        );
        assert_eq!(
            pinned("ID = '11'", &id, true),
            Ok(Lookup::Keys(vec![vec![Value::String("11".into())]]))
        );
    }

    #[test]
    fn other_keys_need_a_scan_for_comparisons() {
        let id = [key("ID", DataType::Int)];
        assert_eq!(pinned("ID >= 12", &id, false), Err(NEEDS_SCAN.into()));
        let two = [key("ID1", DataType::String), key("ID2", DataType::Int)];
        assert_eq!(
            pinned("ID1 <= '11' AND ID2 >= 10", &two, false),
            Err(NEEDS_SCAN.into())
        );
        assert_eq!(pinned("ID1 <= '09'", &two, false), Err(EVERY_KEY.into()));
        assert_eq!(
            pinned("ID1 <= '11' OR ID2 >= 10", &two, false),
            Err(EVERY_KEY.into())
        );
    }
}
