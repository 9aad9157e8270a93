//! What `SHOW FUNCTIONS` and `DESCRIBE FUNCTION` tell of the function library.

use brook_planner::functions::{aggregates, names};

/// Table functions: one input row gives several output rows.
const TABLE_FUNCTIONS: &[&str] = &["EXPLODE", "CUBE_EXPLODE"];

/// Scalar functions the planner types itself (lambdas, CAST, the constructors), which
/// ksqlDB lists with the rest, with their categories.
const SPECIAL_FORMS: &[(&str, &str)] = &[
    ("ARRAY", "ARRAY"),
    ("CAST", "CONVERSIONS"),
    ("FILTER", "LAMBDA"),
    ("MAP", "MAP"),
    ("REDUCE", "LAMBDA"),
    ("TRANSFORM", "LAMBDA"),
];

/// A function as `SHOW FUNCTIONS` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionEntry {
    pub name: String,
    /// SCALAR, AGGREGATE or TABLE.
    pub kind: &'static str,
    /// ksqlDB's category: STRING, MATHEMATICAL, DATE / TIME, AGGREGATE, TABLE, ...
    pub category: &'static str,
}

/// Every function, by name.
pub fn functions() -> Vec<FunctionEntry> {
    let entry = |name: &str, kind, category| FunctionEntry {
        name: name.to_string(),
        kind,
        category,
    };
    let mut all: Vec<FunctionEntry> = names()
        .into_iter()
        .map(|n| {
            entry(
                n,
                "SCALAR",
                brook_planner::functions::category(n).unwrap_or("OTHER"),
            )
        })
        .chain(
            aggregates::NAMES
                .iter()
                .map(|n| entry(n, "AGGREGATE", "AGGREGATE")),
        )
        .chain(TABLE_FUNCTIONS.iter().map(|n| entry(n, "TABLE", "TABLE")))
        .chain(SPECIAL_FORMS.iter().map(|(n, c)| entry(n, "SCALAR", c)))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.dedup_by(|a, b| a.name == b.name);
    all
}

/// The kind of the function named `name`, if there is one.
pub fn function_kind(name: &str) -> Option<&'static str> {
    let upper = name.to_uppercase();
    functions()
        .into_iter()
        .find(|f| f.name == upper)
        .map(|f| f.kind)
}

/// Argument types tried when listing a scalar function's signatures.
fn sample_types() -> Vec<brook_sql::ast::DataType> {
    use brook_sql::ast::DataType as T;
    vec![
        T::String,
        T::Int,
        T::BigInt,
        T::Double,
        T::Boolean,
        T::Decimal {
            precision: 10,
            scale: 2,
        },
        T::Bytes,
        T::Date,
        T::Time,
        T::Timestamp,
        T::Array(Box::new(T::String)),
        T::Map(Box::new(T::String), Box::new(T::String)),
    ]
}

/// A scalar function's signatures with up to three arguments, as its registry entry
/// resolves them: the argument types it takes as they are (not by widening) and what it
/// returns for them.
pub fn signatures(name: &str) -> Vec<(Vec<brook_sql::ast::DataType>, brook_sql::ast::DataType)> {
    let Some(function) = brook_planner::functions::lookup(&name.to_uppercase()) else {
        return Vec::new();
    };
    let types = sample_types();
    let mut found = Vec::new();
    for arity in 0..=3 {
        for args in crate::serving::combinations(&vec![types.clone(); arity]) {
            let given: Vec<Option<brook_sql::ast::DataType>> =
                args.iter().cloned().map(Some).collect();
            if let Ok(signature) = (function.0.resolve)(&given) {
                if signature.params == args {
                    found.push((args, signature.returns));
                }
            }
        }
    }
    found
}
