//! What `SHOW FUNCTIONS` and `DESCRIBE FUNCTION` tell of the function library.

use brook_planner::functions::{aggregates, names};
use std::collections::BTreeMap;
use std::sync::OnceLock;

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

/// What ksqlDB's function reference says of a function: its description and the names
/// of the arguments of its documented signatures (`scripts/function-docs.py` writes them
/// from the reference pages).
#[derive(Debug, Default, serde::Deserialize)]
struct FunctionDoc {
    description: String,
    signatures: Vec<Vec<String>>,
}

fn docs() -> &'static BTreeMap<String, FunctionDoc> {
    static DOCS: OnceLock<BTreeMap<String, FunctionDoc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        serde_json::from_str(include_str!("metadata/function_docs.json")).unwrap_or_default()
    })
}

/// A function's description as the reference gives it, or what kind of function it is.
pub fn description(name: &str) -> String {
    let upper = name.to_uppercase();
    match docs().get(&upper) {
        Some(doc) if !doc.description.is_empty() => doc.description.clone(),
        _ => format!(
            "The {} function {upper}.",
            function_kind(&upper).unwrap_or("SCALAR").to_lowercase()
        ),
    }
}

/// Names for the `arity` arguments of a signature: those of the documented signature
/// with as many arguments, else the longest one's, numbered past its end.
pub fn argument_names(name: &str, arity: usize) -> Vec<String> {
    let documented = docs()
        .get(&name.to_uppercase())
        .map(|d| d.signatures.as_slice())
        .unwrap_or_default();
    let chosen = documented
        .iter()
        .find(|s| s.len() == arity)
        .or_else(|| documented.iter().max_by_key(|s| s.len()));
    (0..arity)
        .map(|i| {
            chosen
                .and_then(|s| s.get(i).cloned())
                .unwrap_or_else(|| format!("arg{}", i + 1))
        })
        .collect()
}

/// A function's signatures with up to three arguments, as its registry entry resolves
/// them: the argument types it takes as they are (not by widening) and what it returns
/// for them. Aggregates are tried on one column argument.
pub fn signatures(name: &str) -> Vec<(Vec<brook_sql::ast::DataType>, brook_sql::ast::DataType)> {
    let upper = name.to_uppercase();
    if aggregates::is_aggregate(&upper) {
        let mut found: Vec<_> = sample_types()
            .into_iter()
            .filter_map(|t| {
                let args = vec![t];
                aggregates::resolve(&upper, &args, &[])
                    .ok()
                    .filter(|a| a.arg_types == args)
                    .map(|a| (args, a.returns))
            })
            .collect();
        found.dedup();
        return found;
    }
    let Some(function) = brook_planner::functions::lookup(&upper) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_described_as_the_reference_describes_them() {
        assert_eq!(description("ucase"), "Converts a string to uppercase.");
        assert_eq!(argument_names("SUBSTRING", 3), ["str", "pos", "len"]);
        assert_eq!(argument_names("SUBSTRING", 2), ["str", "pos"]);
        // Past what the reference documents, arguments are numbered.
        assert_eq!(argument_names("ABS", 2), ["col1", "arg2"]);
    }

    #[test]
    fn aggregates_list_their_signatures() {
        use brook_sql::ast::DataType;
        let sum = signatures("SUM");
        assert!(
            sum.contains(&(vec![DataType::Int], DataType::Int)),
            "{sum:?}"
        );
        assert!(
            sum.contains(&(vec![DataType::Double], DataType::Double)),
            "{sum:?}"
        );
        assert!(!signatures("COUNT").is_empty());
    }
}
