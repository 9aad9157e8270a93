//! Functions about NULL.

use super::{common_type, no_match, ArgTypes, ScalarFunction, Signature};
use crate::value::Value;

pub(super) fn functions() -> Vec<ScalarFunction> {
    vec![
        // Copies a key column into the value: as a call, not a column, it is no key.
        ScalarFunction {
            name: "AS_VALUE",
            resolve: |a| match a {
                [Some(t)] => Ok(Signature {
                    params: vec![t.clone()],
                    returns: t.clone(),
                }),
                _ => Err(no_match("AS_VALUE", a)),
            },
            eval: |v, _| Ok(v[0].clone()),
        },
        ScalarFunction {
            name: "COALESCE",
            resolve: |a| all_same("COALESCE", a, 1),
            eval: |v, _| {
                Ok(v.iter()
                    .find(|v| !v.is_null())
                    .cloned()
                    .unwrap_or(Value::Null))
            },
        },
        ScalarFunction {
            name: "IFNULL",
            resolve: |a| {
                if a.len() == 2 {
                    all_same("IFNULL", a, 2)
                } else {
                    Err(no_match("IFNULL", a))
                }
            },
            eval: |v, _| {
                Ok(if v[0].is_null() {
                    v[1].clone()
                } else {
                    v[0].clone()
                })
            },
        },
        ScalarFunction {
            name: "NULLIF",
            resolve: |a| {
                if a.len() == 2 {
                    all_same("NULLIF", a, 2)
                } else {
                    Err(no_match("NULLIF", a))
                }
            },
            eval: |v, _| {
                Ok(if v[0] == v[1] {
                    Value::Null
                } else {
                    v[0].clone()
                })
            },
        },
    ]
}

fn all_same(name: &str, a: ArgTypes, min: usize) -> Result<Signature, String> {
    if a.len() < min {
        return Err(no_match(name, a));
    }
    let t = common_type(name, a)?;
    Ok(Signature {
        params: vec![t.clone(); a.len()],
        returns: t,
    })
}
