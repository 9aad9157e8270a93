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

#[cfg(test)]
mod tests {
    use super::positive;

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
