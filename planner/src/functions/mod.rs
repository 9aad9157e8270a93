//! The scalar function registry: each function's name, how its argument types resolve to
//! parameter and result types, and its evaluation of one row.

pub mod aggregates;
pub mod arrays;
mod encoding;
mod json;
mod maps;
mod math;
mod nulls;
mod strings;
pub mod temporal;

use crate::types::{common_numeric, is_numeric};
use crate::value::Value;
use brook_sql::ast::DataType;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The types arguments are converted to, and the result type.
pub struct Signature {
    pub params: Vec<DataType>,
    pub returns: DataType,
}

/// Argument types as written: `None` for a NULL literal, which fits any parameter.
pub type ArgTypes<'a> = &'a [Option<DataType>];

pub struct ScalarFunction {
    pub name: &'static str,
    pub resolve: fn(ArgTypes) -> Result<Signature, String>,
    /// One row: arguments of the parameter types, and the result type.
    pub eval: fn(&[Value], &DataType) -> Result<Value, String>,
}

/// A function as a typed expression refers to it.
#[derive(Clone, Copy)]
pub struct FunctionRef(pub &'static ScalarFunction);

impl PartialEq for FunctionRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl std::fmt::Debug for FunctionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

/// Each function with the category ksqlDB lists it under (`SHOW FUNCTIONS`).
fn registry() -> &'static BTreeMap<&'static str, (ScalarFunction, &'static str)> {
    static REGISTRY: OnceLock<BTreeMap<&'static str, (ScalarFunction, &'static str)>> =
        OnceLock::new();
    REGISTRY.get_or_init(|| {
        let groups = [
            (strings::functions(), "STRING"),
            (math::functions(), "MATHEMATICAL"),
            (nulls::functions(), "CONDITIONAL"),
            (arrays::functions(), "ARRAY"),
            (maps::functions(), "MAP"),
            (temporal::functions(), "DATE / TIME"),
            (json::functions(), "JSON"),
            (encoding::functions(), "CONVERSIONS"),
            (encoding::url_functions(), "URL"),
        ];
        groups
            .into_iter()
            .flat_map(|(functions, category)| {
                functions.into_iter().map(move |f| {
                    let category = match f.name {
                        n if n.starts_with("REGEXP_") => "REGULAR EXPRESSION",
                        n if n.starts_with("URL_") => "URL",
                        "GEO_DISTANCE" => "MATHEMATICAL",
                        "MD5" | "UUID" => "STRING",
                        _ => category,
                    };
                    (f.name, (f, category))
                })
            })
            .collect()
    })
}

pub fn lookup(name: &str) -> Option<FunctionRef> {
    registry().get(name).map(|(f, _)| FunctionRef(f))
}

/// The category of the scalar function `name` (upper case), as `SHOW FUNCTIONS` lists it.
pub fn category(name: &str) -> Option<&'static str> {
    registry().get(name).map(|(_, category)| *category)
}

/// All registered names, sorted.
pub fn names() -> Vec<&'static str> {
    registry().keys().copied().collect()
}

/// ksqlDB's message for arguments that fit no signature.
pub fn no_match(name: &str, args: ArgTypes) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            a.as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "null".into())
        })
        .collect();
    // ksqlDB names a function as its implementation declares it: most in lower case.
    let declared = match name.to_uppercase().as_str() {
        "COALESCE" => "COALESCE".to_string(),
        _ => name.to_lowercase(),
    };
    format!(
        "Function '{declared}' does not accept parameters ({}).",
        shown.join(", ")
    )
}

/// Whether an argument of type `arg` can be passed as `param` (same type, a NULL, or a
/// numeric widening as ksqlDB does implicitly).
pub(crate) fn fits(arg: &Option<DataType>, param: &DataType) -> bool {
    match arg {
        None => true,
        Some(a) if a == param => true,
        Some(a) => match (a, param) {
            (DataType::Int, DataType::BigInt | DataType::Double | DataType::Decimal { .. }) => true,
            (DataType::BigInt, DataType::Double | DataType::Decimal { .. }) => true,
            (DataType::Decimal { .. }, DataType::Double) => true,
            (DataType::Array(a), DataType::Array(p)) => fits(&Some((**a).clone()), p),
            _ => false,
        },
    }
}

/// A fixed signature, if the arguments fit it.
pub(crate) fn exactly(
    name: &str,
    args: ArgTypes,
    params: &[DataType],
    returns: DataType,
) -> Result<Signature, String> {
    if args.len() == params.len() && args.iter().zip(params).all(|(a, p)| fits(a, p)) {
        Ok(Signature {
            params: params.to_vec(),
            returns,
        })
    } else {
        Err(no_match(name, args))
    }
}

/// The first signature the arguments fit.
pub(crate) fn first_of(
    name: &str,
    args: ArgTypes,
    options: &[(&[DataType], DataType)],
) -> Result<Signature, String> {
    options
        .iter()
        .find_map(|(params, returns)| exactly(name, args, params, returns.clone()).ok())
        .ok_or_else(|| no_match(name, args))
}

/// The one type all non-NULL arguments share (numbers widen to a common type).
pub(crate) fn common_type(name: &str, args: ArgTypes) -> Result<DataType, String> {
    let mut common: Option<DataType> = None;
    for a in args.iter().flatten() {
        common = Some(match common {
            None => a.clone(),
            Some(c) if &c == a => c,
            Some(c) if is_numeric(&c) && is_numeric(a) => {
                common_numeric(&c, a).ok_or_else(|| no_match(name, args))?
            }
            Some(_) => return Err(no_match(name, args)),
        });
    }
    common.ok_or_else(|| no_match(name, args))
}

/// Evaluation helper: NULL if any argument is NULL, else `f`.
pub(crate) fn strict(
    args: &[Value],
    f: impl FnOnce(&[Value]) -> Result<Value, String>,
) -> Result<Value, String> {
    if args.iter().any(Value::is_null) {
        Ok(Value::Null)
    } else {
        f(args)
    }
}

pub(crate) fn int_arg(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i as i64),
        Value::BigInt(i) => Some(*i),
        _ => None,
    }
}

/// The greatest (or least, as `wanted` says) non-NULL value.
pub(crate) fn pick(values: &[Value], wanted: std::cmp::Ordering) -> Value {
    let mut best: Option<&Value> = None;
    for v in values.iter().filter(|v| !v.is_null()) {
        best = match best {
            Some(b) if crate::value::compare_values(v, b) != Some(wanted) => Some(b),
            _ => Some(v),
        };
    }
    best.cloned().unwrap_or(Value::Null)
}
