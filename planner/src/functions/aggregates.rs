//! The aggregate function library (UDAFs): how each resolves its argument types and literal
//! parameters, and its accumulator: the state it starts from, how a row is added to it (and
//! taken away again when a table row changes), how two session windows' states merge, and
//! the result it stands for.
//!
//! States are plain values so that stores can persist them and changelogs carry them.

use crate::types::is_numeric;
use crate::value::{compare_values, Value};
use brook_sql::ast::DataType;
use std::cmp::Ordering;

/// The most elements COLLECT_LIST, COLLECT_SET and HISTOGRAM keep, as ksqlDB's default.
pub const COLLECTION_LIMIT: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum Udaf {
    Count,
    /// The value every row has, or NULL when they differ.
    Attr,
    CountDistinct,
    Sum,
    /// The sum of the elements of arrays.
    SumList,
    Avg,
    Min,
    Max,
    /// With the most elements kept.
    CollectList(usize),
    CollectSet(usize),
    TopK(usize),
    TopKDistinct(usize),
    Histogram,
    /// `n` values as an array, or one value; whether NULLs are skipped.
    EarliestByOffset(Option<usize>, bool),
    LatestByOffset(Option<usize>, bool),
    /// The variance (ksqlDB's STDDEV_SAMP is the variance, STDDEV_SAMPLE its root).
    VarianceSample,
    StddevSample,
    StddevPop,
    Correlation,
}

/// An aggregate as a query uses it: the function, the types of its column arguments and its
/// result type.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub udaf: Udaf,
    pub arg_types: Vec<DataType>,
    pub returns: DataType,
}

/// The aggregate functions' names.
pub const NAMES: &[&str] = &[
    "ATTR",
    "AVG",
    "COLLECT_LIST",
    "COLLECT_SET",
    "CORRELATION",
    "COUNT",
    "COUNT_DISTINCT",
    "EARLIEST_BY_OFFSET",
    "HISTOGRAM",
    "LATEST_BY_OFFSET",
    "MAX",
    "MIN",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "STDDEV_SAMPLE",
    "SUM",
    "SUM_LIST",
    "TOPK",
    "TOPKDISTINCT",
];

pub fn is_aggregate(name: &str) -> bool {
    NAMES.contains(&name.to_uppercase().as_str())
}

/// How many leading arguments of `name` are columns; the rest must be literals.
pub fn column_arguments(name: &str, total: usize) -> usize {
    match name.to_uppercase().as_str() {
        "CORRELATION" => 2.min(total),
        "TOPK" => total.saturating_sub(1).max(1).min(total),
        _ => 1.min(total),
    }
}

fn no_params(name: &str, types: &[DataType]) -> String {
    format!(
        "Function '{name}' does not accept parameters ({}).",
        types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn positive(name: &str, v: &Value) -> Result<usize, String> {
    match v {
        Value::Int(n) if *n > 0 => Ok(*n as usize),
        Value::BigInt(n) if *n > 0 => Ok(*n as usize),
        _ => Err(format!("{name} requires a positive whole number of values")),
    }
}

/// Resolves `name` over column arguments of `types` and literal `params`.
pub fn resolve(name: &str, types: &[DataType], params: &[Value]) -> Result<Aggregate, String> {
    let upper = name.to_uppercase();
    let all: Vec<DataType> = types.to_vec();
    let fail = || no_params(&upper, &all);
    let first = types.first().cloned();
    let numeric = first.as_ref().is_some_and(is_numeric);
    let (udaf, returns) = match upper.as_str() {
        "COUNT" => (Udaf::Count, DataType::BigInt),
        "COUNT_DISTINCT" => (Udaf::CountDistinct, DataType::BigInt),
        "ATTR" if params.is_empty() => (Udaf::Attr, first.clone().ok_or_else(fail)?),
        "SUM" if numeric && params.is_empty() => (Udaf::Sum, first.clone().ok_or_else(fail)?),
        "AVG" if numeric && params.is_empty() => (Udaf::Avg, DataType::Double),
        "SUM_LIST" if params.is_empty() => match &first {
            Some(DataType::Array(e))
                if matches!(**e, DataType::Int | DataType::BigInt | DataType::Double) =>
            {
                (Udaf::SumList, (**e).clone())
            }
            _ => return Err(fail()),
        },
        "MIN" | "MAX" if params.is_empty() => {
            let t = first.clone().ok_or_else(fail)?;
            let comparable = numeric
                || matches!(
                    t,
                    DataType::String
                        | DataType::Bytes
                        | DataType::Date
                        | DataType::Time
                        | DataType::Timestamp
                        | DataType::Boolean
                );
            if !comparable {
                return Err(fail());
            }
            let udaf = if upper == "MIN" { Udaf::Min } else { Udaf::Max };
            (udaf, t)
        }
        "COLLECT_LIST" | "COLLECT_SET" if params.is_empty() => {
            let t = first.clone().ok_or_else(fail)?;
            let udaf = if upper == "COLLECT_LIST" {
                Udaf::CollectList(COLLECTION_LIMIT)
            } else {
                Udaf::CollectSet(COLLECTION_LIMIT)
            };
            (udaf, DataType::Array(Box::new(t)))
        }
        "TOPK" | "TOPKDISTINCT" if params.len() == 1 => {
            let k = positive(&upper, &params[0])?;
            let t = first.clone().ok_or_else(fail)?;
            if upper == "TOPK" && types.len() > 1 {
                let mut fields = vec![("SORT_COL".to_string(), t)];
                for (i, other) in types[1..].iter().enumerate() {
                    fields.push((format!("COL{i}"), other.clone()));
                }
                (
                    Udaf::TopK(k),
                    DataType::Array(Box::new(DataType::Struct(fields))),
                )
            } else if upper == "TOPK" {
                (Udaf::TopK(k), DataType::Array(Box::new(t)))
            } else {
                (Udaf::TopKDistinct(k), DataType::Array(Box::new(t)))
            }
        }
        "HISTOGRAM" if first == Some(DataType::String) && params.is_empty() => (
            Udaf::Histogram,
            DataType::Map(Box::new(DataType::String), Box::new(DataType::BigInt)),
        ),
        "EARLIEST_BY_OFFSET" | "LATEST_BY_OFFSET" => {
            let t = first.clone().ok_or_else(fail)?;
            let (n, ignore_nulls) = match params {
                [] => (None, true),
                [Value::Boolean(b)] => (None, *b),
                [n] => (Some(positive(&upper, n)?), true),
                [n, Value::Boolean(b)] => (Some(positive(&upper, n)?), *b),
                _ => return Err(fail()),
            };
            let returns = match n {
                Some(_) => DataType::Array(Box::new(t)),
                None => t,
            };
            let udaf = if upper == "EARLIEST_BY_OFFSET" {
                Udaf::EarliestByOffset(n, ignore_nulls)
            } else {
                Udaf::LatestByOffset(n, ignore_nulls)
            };
            (udaf, returns)
        }
        "STDDEV_SAMP" | "STDDEV_SAMPLE" | "STDDEV_POP" if numeric && params.is_empty() => {
            let udaf = match upper.as_str() {
                "STDDEV_SAMP" => Udaf::VarianceSample,
                "STDDEV_SAMPLE" => Udaf::StddevSample,
                _ => Udaf::StddevPop,
            };
            (udaf, DataType::Double)
        }
        "CORRELATION" if types.len() == 2 && types.iter().all(is_numeric) && params.is_empty() => {
            (Udaf::Correlation, DataType::Double)
        }
        _ => return Err(fail()),
    };
    Ok(Aggregate {
        udaf,
        arg_types: types.to_vec(),
        returns,
    })
}

/// Equality where maps are sets of entries, whatever their order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((n, a), (m, b))| n == m && same(a, b))
        }
        _ => a == b,
    }
}

/// ATTR's state: each distinct value (NULL included) with how many rows have it.
fn attr_count(state: Value, value: &Value, by: i64) -> Value {
    let mut entries = items(&state);
    match entries
        .iter()
        .position(|e| items(e).first().is_some_and(|v| same(v, value)))
    {
        Some(i) => {
            let n = items(&entries[i]).get(1).map(count).unwrap_or(0) + by;
            if n <= 0 {
                entries.remove(i);
            } else {
                entries[i] = Value::Array(vec![value.clone(), Value::BigInt(n)]);
            }
        }
        None if by > 0 => entries.push(Value::Array(vec![value.clone(), Value::BigInt(by)])),
        None => {}
    }
    Value::Array(entries)
}

fn count(v: &Value) -> i64 {
    match v {
        Value::BigInt(n) => *n,
        _ => 0,
    }
}

fn double(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::BigInt(n) => Some(*n as f64),
        Value::Double(d) => Some(*d),
        Value::Decimal(u, s) => Some(*u as f64 / 10f64.powi(*s as i32)),
        _ => None,
    }
}

fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        _ => vec![],
    }
}

/// Sorted descending, NULLs dropped, at most `k`.
fn top(mut values: Vec<Value>, k: usize, distinct: bool) -> Vec<Value> {
    let key = |v: &Value| match v {
        Value::Struct(fields) => fields.first().map(|f| f.1.clone()).unwrap_or(Value::Null),
        other => other.clone(),
    };
    values.sort_by(|a, b| compare_values(&key(b), &key(a)).unwrap_or(Ordering::Equal));
    if distinct {
        values.dedup();
    }
    values.truncate(k);
    values
}

impl Aggregate {
    fn zero(&self) -> Value {
        match &self.returns {
            DataType::Int => Value::Int(0),
            DataType::BigInt => Value::BigInt(0),
            DataType::Double => Value::Double(0.0),
            DataType::Decimal { scale, .. } => Value::Decimal(0, *scale),
            _ => Value::Null,
        }
    }

    /// The state before any row.
    pub fn init(&self) -> Value {
        match &self.udaf {
            Udaf::Count => Value::BigInt(0),
            Udaf::Sum | Udaf::SumList => self.zero(),
            Udaf::Min | Udaf::Max => Value::Null,
            Udaf::Histogram => Value::Map(vec![]),
            // Moments: count, sum and sum of squares (and for two columns the cross terms).
            Udaf::Avg => Value::Array(vec![Value::BigInt(0), Value::Null]),
            Udaf::VarianceSample | Udaf::StddevSample | Udaf::StddevPop => Value::Array(vec![
                Value::BigInt(0),
                Value::Double(0.0),
                Value::Double(0.0),
            ]),
            Udaf::Correlation => Value::Array(vec![
                Value::BigInt(0),
                Value::Double(0.0),
                Value::Double(0.0),
                Value::Double(0.0),
                Value::Double(0.0),
                Value::Double(0.0),
            ]),
            _ => Value::Array(vec![]),
        }
    }

    /// Adds a row's arguments; `sequence` orders rows for the BY_OFFSET functions.
    pub fn add(&self, state: Value, args: &[Value], sequence: i64) -> Result<Value, String> {
        let arg = args.first().cloned().unwrap_or(Value::Null);
        Ok(match &self.udaf {
            Udaf::Count => {
                if args.is_empty() || !arg.is_null() {
                    Value::BigInt(count(&state) + 1)
                } else {
                    state
                }
            }
            Udaf::Attr => attr_count(state, &arg, 1),
            Udaf::CountDistinct => {
                let mut seen = items(&state);
                if !arg.is_null() && !seen.contains(&arg) {
                    seen.push(arg);
                }
                Value::Array(seen)
            }
            Udaf::Sum => {
                if arg.is_null() {
                    state
                } else {
                    self.plus(&state, &arg, 1)?
                }
            }
            Udaf::SumList => {
                let mut sum = state;
                for element in items(&arg).iter().filter(|e| !e.is_null()) {
                    sum = self.plus(&sum, element, 1)?;
                }
                sum
            }
            Udaf::Avg => match (&state, double(&arg)) {
                (Value::Array(s), Some(_)) => {
                    let sum = if s[1].is_null() {
                        arg
                    } else {
                        numeric_add(&s[1], &arg, 1)?
                    };
                    Value::Array(vec![Value::BigInt(count(&s[0]) + 1), sum])
                }
                _ => state,
            },
            Udaf::Min | Udaf::Max => {
                let want = if self.udaf == Udaf::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if arg.is_null() {
                    state
                } else if state.is_null() || compare_values(&arg, &state) == Some(want) {
                    arg
                } else {
                    state
                }
            }
            Udaf::CollectList(limit) => {
                let mut list = items(&state);
                if list.len() < *limit {
                    list.push(arg);
                }
                Value::Array(list)
            }
            Udaf::CollectSet(limit) => {
                let mut set = items(&state);
                if set.len() < *limit && !set.iter().any(|v| same(v, &arg)) {
                    set.push(arg);
                }
                Value::Array(set)
            }
            Udaf::TopK(k) | Udaf::TopKDistinct(k) => {
                if arg.is_null() {
                    return Ok(state);
                }
                let mut list = items(&state);
                let entry = if args.len() > 1 {
                    let mut fields = vec![("SORT_COL".to_string(), arg)];
                    for (i, other) in args[1..].iter().enumerate() {
                        fields.push((format!("COL{i}"), other.clone()));
                    }
                    Value::Struct(fields)
                } else {
                    arg
                };
                list.push(entry);
                Value::Array(top(list, *k, matches!(self.udaf, Udaf::TopKDistinct(_))))
            }
            Udaf::Histogram => {
                let mut map = match state {
                    Value::Map(m) => m,
                    _ => vec![],
                };
                if !arg.is_null() {
                    match map.iter().position(|(k, _)| *k == arg) {
                        Some(i) => map[i].1 = Value::BigInt(count(&map[i].1) + 1),
                        None if map.len() < COLLECTION_LIMIT => map.push((arg, Value::BigInt(1))),
                        None => {}
                    }
                }
                Value::Map(map)
            }
            Udaf::EarliestByOffset(n, ignore_nulls) | Udaf::LatestByOffset(n, ignore_nulls) => {
                if arg.is_null() && *ignore_nulls {
                    return Ok(state);
                }
                let mut list = items(&state);
                list.push(Value::Array(vec![Value::BigInt(sequence), arg]));
                Value::Array(self.keep_by_offset(list, n.unwrap_or(1)))
            }
            Udaf::VarianceSample | Udaf::StddevSample | Udaf::StddevPop => match double(&arg) {
                Some(x) => moments(&state, &[x], 1.0),
                None => state,
            },
            Udaf::Correlation => match (double(&arg), args.get(1).and_then(double)) {
                (Some(x), Some(y)) => moments(&state, &[x, y], 1.0),
                _ => state,
            },
        })
    }

    /// Takes a row's arguments away again, for aggregations over tables.
    pub fn undo(&self, state: Value, args: &[Value]) -> Result<Value, String> {
        let arg = args.first().cloned().unwrap_or(Value::Null);
        Ok(match &self.udaf {
            Udaf::Count => {
                if args.is_empty() || !arg.is_null() {
                    Value::BigInt(count(&state) - 1)
                } else {
                    state
                }
            }
            Udaf::Attr => attr_count(state, &arg, -1),
            Udaf::Sum if !arg.is_null() => self.plus(&state, &arg, -1)?,
            Udaf::SumList => {
                let mut sum = state;
                for element in items(&arg).iter().filter(|e| !e.is_null()) {
                    sum = self.plus(&sum, element, -1)?;
                }
                sum
            }
            Udaf::Avg => match (&state, double(&arg)) {
                (Value::Array(s), Some(_)) if !s[1].is_null() => Value::Array(vec![
                    Value::BigInt(count(&s[0]) - 1),
                    numeric_add(&s[1], &arg, -1)?,
                ]),
                _ => state,
            },
            Udaf::CollectList(_) | Udaf::CollectSet(_) => {
                let mut list = items(&state);
                if let Some(i) = list.iter().position(|v| *v == arg) {
                    list.remove(i);
                }
                Value::Array(list)
            }
            Udaf::Histogram => {
                let mut map = match state {
                    Value::Map(m) => m,
                    _ => vec![],
                };
                if let Some(i) = map.iter().position(|(k, _)| *k == arg) {
                    let n = count(&map[i].1) - 1;
                    if n <= 0 {
                        map.remove(i);
                    } else {
                        map[i].1 = Value::BigInt(n);
                    }
                }
                Value::Map(map)
            }
            Udaf::VarianceSample | Udaf::StddevSample | Udaf::StddevPop => match double(&arg) {
                Some(x) => moments(&state, &[x], -1.0),
                None => state,
            },
            Udaf::Correlation => match (double(&arg), args.get(1).and_then(double)) {
                (Some(x), Some(y)) => moments(&state, &[x, y], -1.0),
                _ => state,
            },
            _ => state,
        })
    }

    /// Whether the function can take rows away (and so aggregate a table).
    pub fn supports_undo(&self) -> bool {
        !matches!(
            self.udaf,
            Udaf::Min
                | Udaf::Max
                | Udaf::TopK(_)
                | Udaf::TopKDistinct(_)
                | Udaf::CountDistinct
                | Udaf::EarliestByOffset(..)
                | Udaf::LatestByOffset(..)
        )
    }

    /// Merges the states of two session windows, `earlier` first.
    pub fn merge(&self, earlier: Value, later: Value) -> Result<Value, String> {
        Ok(match &self.udaf {
            Udaf::Count => Value::BigInt(count(&earlier) + count(&later)),
            Udaf::Attr => {
                let mut state = earlier;
                for entry in items(&later) {
                    let entry = items(&entry);
                    if let (Some(v), Some(n)) = (entry.first(), entry.get(1)) {
                        state = attr_count(state, v, count(n));
                    }
                }
                state
            }
            Udaf::Sum | Udaf::SumList => self.plus(&earlier, &later, 1)?,
            Udaf::Avg => match (&earlier, &later) {
                (Value::Array(a), Value::Array(b)) => Value::Array(vec![
                    Value::BigInt(count(&a[0]) + count(&b[0])),
                    match (a[1].is_null(), b[1].is_null()) {
                        (true, _) => b[1].clone(),
                        (_, true) => a[1].clone(),
                        _ => numeric_add(&a[1], &b[1], 1)?,
                    },
                ]),
                _ => later,
            },
            Udaf::Min | Udaf::Max => {
                let mut state = earlier;
                state = self.add(state, &[later], 0)?;
                state
            }
            Udaf::CountDistinct
            | Udaf::CollectList(_)
            | Udaf::CollectSet(_)
            | Udaf::TopK(_)
            | Udaf::TopKDistinct(_) => {
                let mut state = earlier;
                for item in items(&later) {
                    state = match (&self.udaf, item) {
                        (Udaf::TopK(_), Value::Struct(fields)) => {
                            let args: Vec<Value> = fields.into_iter().map(|f| f.1).collect();
                            self.add(state, &args, 0)?
                        }
                        (_, item) => self.add(state, &[item], 0)?,
                    };
                }
                state
            }
            Udaf::Histogram => {
                let mut map = match earlier {
                    Value::Map(m) => m,
                    _ => vec![],
                };
                if let Value::Map(other) = later {
                    for (k, n) in other {
                        match map.iter().position(|(key, _)| *key == k) {
                            Some(i) => map[i].1 = Value::BigInt(count(&map[i].1) + count(&n)),
                            None if map.len() < COLLECTION_LIMIT => map.push((k, n)),
                            None => {}
                        }
                    }
                }
                Value::Map(map)
            }
            Udaf::EarliestByOffset(n, _) | Udaf::LatestByOffset(n, _) => {
                let mut list = items(&earlier);
                list.extend(items(&later));
                Value::Array(self.keep_by_offset(list, n.unwrap_or(1)))
            }
            Udaf::VarianceSample | Udaf::StddevSample | Udaf::StddevPop => {
                let (a, b) = (items(&earlier), items(&later));
                let get = |v: &[Value], i: usize| v.get(i).and_then(double).unwrap_or(0.0);
                let (na, nb) = (get(&a, 0), get(&b, 0));
                if na == 0.0 {
                    return Ok(later);
                }
                if nb == 0.0 {
                    return Ok(earlier);
                }
                let delta = get(&b, 1) / nb - get(&a, 1) / na;
                Value::Array(vec![
                    Value::BigInt((na + nb) as i64),
                    Value::Double(get(&a, 1) + get(&b, 1)),
                    Value::Double(get(&a, 2) + get(&b, 2) + delta * delta * na * nb / (na + nb)),
                ])
            }
            Udaf::Correlation => match (&earlier, &later) {
                (Value::Array(a), Value::Array(b)) => Value::Array(
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| match (x, y) {
                            (Value::BigInt(x), Value::BigInt(y)) => Value::BigInt(x + y),
                            _ => Value::Double(double(x).unwrap_or(0.0) + double(y).unwrap_or(0.0)),
                        })
                        .collect(),
                ),
                _ => later,
            },
        })
    }

    /// What a state stands for.
    pub fn result(&self, state: &Value) -> Value {
        match &self.udaf {
            Udaf::CountDistinct => Value::BigInt(items(state).len() as i64),
            Udaf::Attr => match items(state).as_slice() {
                [only] => items(only).into_iter().next().unwrap_or(Value::Null),
                _ => Value::Null,
            },
            Udaf::Avg => match state {
                Value::Array(s) if count(&s[0]) > 0 => match double(&s[1]) {
                    Some(sum) => Value::Double(sum / count(&s[0]) as f64),
                    None => Value::Null,
                },
                _ => Value::Null,
            },
            Udaf::EarliestByOffset(n, _) | Udaf::LatestByOffset(n, _) => {
                let values: Vec<Value> = items(state)
                    .into_iter()
                    .map(|entry| items(&entry).pop().unwrap_or(Value::Null))
                    .collect();
                match n {
                    Some(_) => Value::Array(values),
                    None => values.into_iter().next().unwrap_or(Value::Null),
                }
            }
            Udaf::VarianceSample | Udaf::StddevSample | Udaf::StddevPop => {
                let s = items(state);
                let n = s.first().map(count).unwrap_or(0) as f64;
                let m2 = s.get(2).and_then(double).unwrap_or(0.0);
                match self.udaf {
                    Udaf::StddevPop if n > 0.0 => Value::Double((m2 / n).sqrt()),
                    Udaf::VarianceSample if n > 1.0 => Value::Double(m2 / (n - 1.0)),
                    Udaf::StddevSample if n > 1.0 => Value::Double((m2 / (n - 1.0)).sqrt()),
                    _ => Value::Double(0.0),
                }
            }
            Udaf::Correlation => {
                let s: Vec<f64> = items(state)
                    .iter()
                    .map(|v| double(v).unwrap_or(0.0))
                    .collect();
                let (n, sx, sy, sxx, syy, sxy) = (s[0], s[1], s[2], s[3], s[4], s[5]);
                let cov = sxy - sx * sy / n;
                let vx = sxx - sx * sx / n;
                let vy = syy - sy * sy / n;
                Value::Double(cov / (vx * vy).sqrt())
            }
            _ => state.clone(),
        }
    }

    fn keep_by_offset(&self, mut list: Vec<Value>, n: usize) -> Vec<Value> {
        let sequence = |v: &Value| items(v).first().map(count).unwrap_or(0);
        list.sort_by_key(sequence);
        if matches!(self.udaf, Udaf::LatestByOffset(..)) {
            let skip = list.len().saturating_sub(n);
            list.drain(..skip);
        } else {
            list.truncate(n);
        }
        list
    }

    fn plus(&self, a: &Value, b: &Value, sign: i8) -> Result<Value, String> {
        let sum = numeric_add(a, b, sign)?;
        if let (Value::Decimal(u, _), DataType::Decimal { precision, .. }) = (&sum, &self.returns) {
            if u.unsigned_abs() >= 10u128.pow(*precision as u32) {
                return Err(format!(
                    "Numeric field overflow: the sum does not fit DECIMAL({precision})"
                ));
            }
        }
        Ok(sum)
    }
}

/// `a + sign * b` for numbers of one type.
fn numeric_add(a: &Value, b: &Value, sign: i8) -> Result<Value, String> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_add(y.wrapping_mul(sign as i32))),
        (Value::BigInt(x), Value::BigInt(y)) => {
            Value::BigInt(x.wrapping_add(y.wrapping_mul(sign as i64)))
        }
        (Value::Double(x), Value::Double(y)) => Value::Double(x + y * sign as f64),
        (Value::Decimal(x, s), Value::Decimal(y, t)) => {
            let scale = (*s).max(*t);
            let up = |v: i128, from: i8| v * 10i128.pow((scale - from) as u32);
            Value::Decimal(up(*x, *s) + up(*y, *t) * sign as i128, scale)
        }
        (x, Value::Null) => x.clone(),
        (Value::Null, y) => y.clone(),
        (x, y) => return Err(format!("cannot add {x:?} and {y:?}")),
    })
}

/// Adds (`sign` 1) or removes (-1) a row of values to running sums: the count, then for one
/// column its sum and sum of squares, for two the sums, squares and cross products.
fn moments(state: &Value, xs: &[f64], sign: f64) -> Value {
    let s = items(state);
    let get = |i: usize| s.get(i).and_then(double).unwrap_or(0.0);
    let n = Value::BigInt(s.first().map(count).unwrap_or(0) + sign as i64);
    match xs {
        // Count, sum and the sum of squared differences from the mean, updated as Welford
        // does, which keeps precision where sums of squares lose it.
        [x] => {
            let (count, sum, m2) = (s.first().map(count).unwrap_or(0) as f64, get(1), get(2));
            let (after, total) = if sign > 0.0 {
                (count + 1.0, sum + x)
            } else {
                (count, sum)
            };
            let step = if after > 1.0 {
                (after * x - total).powi(2) / (after * (after - 1.0))
            } else {
                0.0
            };
            Value::Array(vec![
                n,
                Value::Double(sum + sign * x),
                Value::Double(m2 + sign * step),
            ])
        }
        [x, y] => Value::Array(vec![
            Value::Double(get(0) + sign),
            Value::Double(get(1) + sign * x),
            Value::Double(get(2) + sign * y),
            Value::Double(get(3) + sign * x * x),
            Value::Double(get(4) + sign * y * y),
            Value::Double(get(5) + sign * x * y),
        ]),
        _ => state.clone(),
    }
}
