//! Which keys a pull query's WHERE clause pins, by ksqlDB's rules: every disjunct must
//! give each key column its values with `KEY = literal` or `KEY IN (...)` (window bounds
//! may come with them). Otherwise the query scans its table, or, with table scans off,
//! is refused with ksqlDB's message.

use brook_planner::catalog::Column;
use brook_planner::value::Value;
use brook_sql::ast::{BinaryOp, DataType, Expr, Literal, Query};
use std::collections::BTreeMap;

/// Which rows of a table a pull query needs.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The rows of these keys (one value per key column, in key order).
    Keys(Vec<Vec<Value>>),
    /// Every row.
    Scan,
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

pub fn key_lookup(
    query: &Query,
    source: &brook_planner::catalog::SourceDef,
    scans: bool,
) -> Result<Lookup, String> {
    let keys: Vec<&Column> = source.key_columns().collect();
    let Some(filter) = &query.filter else {
        return if scans || keys.is_empty() {
            Ok(Lookup::Scan)
        } else {
            Err("Pull queries on tables without a WHERE clause need table scans (ksql.query.pull.table.scan.enabled).".into())
        };
    };
    match pinned_keys(filter, &keys) {
        Ok(found) => Ok(Lookup::Keys(found)),
        Err(Refusal { always: false, .. }) if scans => Ok(Lookup::Scan),
        Err(Refusal { message, .. }) => Err(message),
    }
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

/// The key values of each disjunct, every combination of its key columns' values.
fn pinned_keys(filter: &Expr, keys: &[&Column]) -> Result<Vec<Vec<Value>>, Refusal> {
    let mut all = Vec::new();
    for disjunct in split(filter, BinaryOp::Or) {
        let values = disjunct_keys(disjunct, keys)?;
        let options: Vec<Vec<Value>> = keys
            .iter()
            .map(|k| values.get(&k.name).cloned().unwrap_or_default())
            .collect();
        all.extend(combinations(&options));
    }
    Ok(all)
}

/// Per key column, the values one disjunct allows.
fn disjunct_keys(
    disjunct: &Expr,
    keys: &[&Column],
) -> Result<BTreeMap<String, Vec<Value>>, Refusal> {
    let key_of = |e: &Expr| {
        columns_of(e)
            .into_iter()
            .find_map(|n| keys.iter().find(|k| k.name == n).copied())
    };
    let conditions: Vec<(&Expr, &Column)> = split(disjunct, BinaryOp::And)
        .into_iter()
        .filter_map(|c| key_of(c).map(|k| (c, k)))
        .collect();
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (condition, column) in &conditions {
        if values.contains_key(&column.name) {
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
                op: BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq,
                ..
            } if conditions.len() > 1 => return refuse(COMBINED),
            Expr::Binary {
                op: BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq,
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
            _ => return refuse(NOT_DIRECT),
        };
        values.insert(column.name.clone(), pinned);
    }
    if values.is_empty() {
        return refuse(format!(
            "WHERE clause missing key column for disjunct: {disjunct}"
        ));
    }
    if values.len() < keys.len() {
        return refuse("Multi-column sources must specify every key in the WHERE clause");
    }
    Ok(values)
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
