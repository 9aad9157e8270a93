//! Comparing actual records with expected ones as ksqlDB's runner does: doubles within
//! 1e-6, struct and map field names without regard to case.

use serde_json::Value as Json;

pub fn json_matches(expected: &Json, actual: &Json) -> bool {
    match (expected, actual) {
        (Json::Number(e), Json::Number(a)) => {
            if let (Some(e), Some(a)) = (e.as_i64(), a.as_i64()) {
                return e == a;
            }
            match (e.as_f64(), a.as_f64()) {
                (Some(e), Some(a)) => (e - a).abs() <= 1e-6 || e == a,
                _ => e.to_string() == a.to_string(),
            }
        }
        (Json::Array(e), Json::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| json_matches(e, a))
        }
        // As ksqlDB's runner reads a field of the actual record by the expected name, an
        // expected NULL matches a field that is not there.
        (Json::Object(e), Json::Object(a)) => {
            e.len() == a.len()
                && e.iter().all(|(k, ev)| {
                    a.iter()
                        .find(|(ak, _)| ak.eq_ignore_ascii_case(k))
                        .map_or(ev.is_null(), |(_, av)| json_matches(ev, av))
                })
        }
        // Expected decimals may be written as strings, padded or not ("005.4" for 5.4).
        (Json::String(e), Json::Number(a)) if e.contains('.') && a.to_string().contains('.') => {
            e.parse::<f64>().ok() == a.as_f64()
        }
        _ => expected == actual,
    }
}

#[cfg(test)]
mod tests {
    use super::json_matches;
    use serde_json::json;

    #[test]
    fn tolerant_where_ksql_is() {
        assert!(json_matches(
            &json!({"a": 1.0000001, "B": [1]}),
            &json!({"A": 1.0, "b": [1]})
        ));
        assert!(!json_matches(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_matches(&json!("1"), &json!(1)));
    }
}
