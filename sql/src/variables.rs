//! `${name}` substitution with the variables set by `DEFINE`.

use crate::error::{ParseError, Position};
use std::collections::BTreeMap;

/// Replaces every `${name}` in `text` with its value. Names are case-insensitive, as
/// `DEFINE` stores them upper-cased. A reference to an undefined variable is an error.
pub fn substitute_variables(
    text: &str,
    variables: &BTreeMap<String, String>,
    position: Position,
) -> Result<String, ParseError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(ParseError::new(
                position,
                "unterminated variable reference '${'",
            ));
        };
        let name = after[..end].trim();
        if name.contains(':') {
            // A config provider's reference (`${env:NAME}`, `${file:path:key}`): a connector
            // resolves it when its tasks start, so that secrets are never stored resolved.
            out.push_str(&rest[at..at + 2 + end + 1]);
            rest = &after[end + 1..];
            continue;
        }
        match variables.get(&name.to_uppercase()) {
            Some(value) => out.push_str(value),
            None => {
                return Err(ParseError::new(
                    position,
                    format!("Variable '{name}' is not defined"),
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_case_insensitively() {
        let vars = BTreeMap::from([("TOPIC".to_string(), "orders".to_string())]);
        let out = substitute_variables("WITH (kafka_topic='${topic}')", &vars, Position::default());
        assert_eq!(out.unwrap(), "WITH (kafka_topic='orders')");
    }

    #[test]
    fn config_provider_references_are_kept() {
        let out = substitute_variables(
            "'function.key'='${env:FN_KEY}'",
            &BTreeMap::new(),
            Position::default(),
        );
        assert_eq!(out.unwrap(), "'function.key'='${env:FN_KEY}'");
    }

    #[test]
    fn undefined_variable_is_an_error() {
        let err =
            substitute_variables("${nope}", &BTreeMap::new(), Position::default()).unwrap_err();
        assert!(err.message.contains("'nope' is not defined"), "{err}");
    }
}
