//! Test files and their cases, expanded over `format` and `config` as ksqlDB expands them.

use crate::lenient_json::strip_comments;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// One runnable case.
#[derive(Debug, Clone)]
pub struct Case {
    pub file: String,
    /// `<file> - <name>[ - <format>][ - <config>]`
    pub name: String,
    pub statements: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub inputs: Vec<Json>,
    pub outputs: Vec<Json>,
    pub topics: Vec<Json>,
    pub expected_exception: Option<String>,
    /// The message of the exception's cause, when the test names one.
    pub expected_cause: Option<String>,
    pub post: Option<Json>,
    /// REST cases: what each statement's request answers.
    pub responses: Vec<Json>,
    /// REST cases: the error response expected (`message`, `status`).
    pub expected_error: Option<Json>,
    /// REST cases: inputs are produced once the push query runs.
    pub inputs_after_push: bool,
    /// REST cases: each query is also asked for protobuf rows (`queryProto` responses).
    pub protobuf_queries: bool,
    /// Why the file itself turns this case off.
    pub disabled: Option<String>,
}

/// The `.json` files under `path` (or `path` itself), sorted.
pub fn load_path(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The cases of one file.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json: Json = serde_json::from_str(&strip_comments(&text))
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.trim_end_matches(".json").to_string();
    let tests = json["tests"]
        .as_array()
        .ok_or_else(|| format!("{file} has no \"tests\" list"))?;
    let mut cases = Vec::new();
    for test in tests {
        let name = test["name"].as_str().unwrap_or("unnamed");
        let formats = variants(&test["format"]);
        let configs = variants(&test["config"]);
        for format in &formats {
            for config in &configs {
                let mut full = format!("{stem} - {name}");
                for part in [format, config].into_iter().flatten() {
                    full.push_str(" - ");
                    full.push_str(part);
                }
                let fill = |s: &str| {
                    let mut s = s.to_string();
                    if let Some(f) = format {
                        s = s.replace("{FORMAT}", f);
                    }
                    if let Some(c) = config {
                        s = s.replace("{CONFIG}", c);
                    }
                    s
                };
                let strings = |v: &Json| -> Vec<String> {
                    v.as_array()
                        .map(|a| a.iter().filter_map(|s| s.as_str()).map(fill).collect())
                        .unwrap_or_default()
                };
                let properties = test["properties"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                let v = match v {
                                    Json::String(s) => fill(s),
                                    other => other.to_string(),
                                };
                                (k.clone(), v)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let disabled = match test.get("enabled") {
                    Some(Json::Bool(false)) => Some("disabled by the test file".to_string()),
                    _ => None,
                };
                cases.push(Case {
                    file: file.clone(),
                    name: full,
                    statements: strings(&test["statements"]),
                    properties,
                    inputs: list(&test["inputs"]),
                    outputs: list(&test["outputs"]),
                    topics: list(&test["topics"]),
                    expected_exception: test["expectedException"].as_object().map(|e| {
                        e.get("message")
                            .and_then(|m| m.as_str())
                            .unwrap_or("")
                            .to_string()
                    }),
                    expected_cause: test["expectedException"]["causeMessage"]
                        .as_str()
                        .map(str::to_string),
                    post: test.get("post").cloned(),
                    responses: list(&test["responses"]),
                    expected_error: test.get("expectedError").cloned(),
                    inputs_after_push: test["inputConditions"]["waitForActivePushQuery"]
                        .as_bool()
                        .unwrap_or(false),
                    protobuf_queries: test["testPullWithProtoFormat"].as_bool().unwrap_or(false),
                    disabled,
                });
            }
        }
    }
    Ok(cases)
}

fn variants(v: &Json) -> Vec<Option<String>> {
    match v.as_array() {
        Some(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                Some(
                    i.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| i.to_string()),
                )
            })
            .collect(),
        _ => vec![None],
    }
}

fn list(v: &Json) -> Vec<Json> {
    v.as_array().cloned().unwrap_or_default()
}
