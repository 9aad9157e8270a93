//! Kafka Connect's config provider references, `${env:NAME}` and `${file:path:key}`
//! (`path` a Java properties file), resolved when a connector's tasks start, so that a
//! secret is stored, logged and shown only as its reference.

use std::collections::BTreeMap;

/// The config with every reference replaced by what it names.
pub fn resolve(config: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    config
        .iter()
        .map(|(k, v)| Ok((k.clone(), resolve_value(v)?)))
        .collect()
}

fn resolve_value(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            return Ok(out);
        };
        let reference = &after[..end];
        match reference.split_once(':') {
            Some(("env", name)) => {
                let found = std::env::var(name).map_err(|_| {
                    format!("the config references ${{env:{name}}}, which is not set")
                })?;
                out.push_str(&found);
            }
            Some(("file", path_and_key)) => {
                let (path, key) = path_and_key.rsplit_once(':').ok_or_else(|| {
                    format!("${{file:{path_and_key}}} names no key (${{file:path:key}})")
                })?;
                out.push_str(&file_value(path, key)?);
            }
            // Not a provider reference (an HTTP sink's `${topic}`, say): kept as written.
            _ => out.push_str(&rest[at..at + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of `key` in the `key=value` (or `key: value`) file at `path`.
fn file_value(path: &str, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read secrets file {path}: {e}"))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .find_map(|line| {
            let at = line.find(['=', ':'])?;
            (line[..at].trim() == key).then(|| line[at + 1..].trim().to_string())
        })
        .ok_or_else(|| format!("secrets file {path} has no key {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_file_references_resolve_and_others_stay() {
        std::env::set_var("BROOK_TEST_SECRET", "s3cret");
        let dir = std::env::temp_dir().join(format!("brook-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("creds.properties");
        std::fs::write(&file, "# creds\nuser = alice\npassword=pa:ss\n").unwrap();
        let config = BTreeMap::from([
            ("a".to_string(), "key ${env:BROOK_TEST_SECRET}".to_string()),
            (
                "b".to_string(),
                format!("${{file:{}:password}}", file.display()),
            ),
            ("c".to_string(), "http://h/${topic}".to_string()),
        ]);
        let resolved = resolve(&config).unwrap();
        assert_eq!(resolved["a"], "key s3cret");
        assert_eq!(resolved["b"], "pa:ss");
        assert_eq!(resolved["c"], "http://h/${topic}");
        let missing = BTreeMap::from([("a".to_string(), "${env:BROOK_NOT_SET_X}".to_string())]);
        assert!(resolve(&missing).unwrap_err().contains("BROOK_NOT_SET_X"));
    }
}
