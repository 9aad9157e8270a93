//! Reading numeric settings (of the server's config or a session's properties) the same
//! way everywhere: unset or blank takes the default, anything else must be a positive
//! whole number, and the error names the setting.

use std::collections::BTreeMap;

/// The positive whole number `name` is set to, or `default` when it is unset.
pub fn positive(
    properties: &BTreeMap<String, String>,
    name: &str,
    default: u64,
) -> Result<u64, String> {
    match properties.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{name} must be a positive whole number, not '{text}'"
            )),
        },
    }
}

/// Refuses a value Brook knows to be wrong for the property it is given to (a
/// `processing.guarantee` Kafka Streams does not have, say); other properties pass.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    let properties: BTreeMap<String, String> = [(name.to_string(), value.to_string())].into();
    crate::runtime::Guarantee::from_properties(&properties)?;
    crate::runtime::standby_replicas(&properties)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check, positive};

    #[test]
    fn known_properties_refuse_wrong_values() {
        assert!(check("processing.guarantee", "exactly_once_v2").is_ok());
        assert!(check("ksql.streams.processing.guarantee", "twice").is_err());
        assert!(check("num.standby.replicas", "-1").is_err());
        assert!(check("any.other", "anything").is_ok());
    }

    #[test]
    fn positive_settings_take_their_default_and_refuse_the_rest() {
        let props = |v: &str| [("n".to_string(), v.to_string())].into_iter().collect();
        assert_eq!(positive(&Default::default(), "n", 7), Ok(7));
        assert_eq!(positive(&props(" "), "n", 7), Ok(7));
        assert_eq!(positive(&props(" 12 "), "n", 7), Ok(12));
        for bad in ["0", "-1", "many", "1.5"] {
            assert_eq!(
                positive(&props(bad), "n", 7),
                Err(format!("n must be a positive whole number, not '{bad}'"))
            );
        }
    }
}
