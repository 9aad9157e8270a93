//! HTTP basic authentication for the API: users and passwords from a file in the format
//! of the JAAS property-file login ksqlDB uses (`user: password[,role...]` per line).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub struct BasicAuth {
    realm: String,
    users: BTreeMap<String, String>,
}

/// Paths answered without credentials: container health checks.
pub(crate) const OPEN_PATHS: &[&str] = &["/chc/live", "/chc/ready"];

impl BasicAuth {
    /// Reads the users file. Passwords are stored as they are (`plain` or `PLAIN:plain`).
    pub fn from_file(path: &Path, realm: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the users file {}: {e}", path.display()))?;
        let mut users = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((user, rest)) = line.split_once([':', '=']) else {
                return Err(format!(
                    "{}:{}: expected `user: password[,role...]`",
                    path.display(),
                    n + 1
                ));
            };
            let password = rest.split(',').next().unwrap_or_default().trim();
            let password = match password.split_once(':') {
                Some(("PLAIN", p)) => p,
                Some((scheme @ ("MD5" | "CRYPT" | "OBF"), _)) => {
                    return Err(format!(
                        "{}:{}: {scheme} passwords are not supported; write them plain",
                        path.display(),
                        n + 1
                    ))
                }
                _ => password,
            };
            users.insert(user.trim().to_string(), password.to_string());
        }
        if users.is_empty() {
            return Err(format!("the users file {} names no user", path.display()));
        }
        Ok(Self {
            realm: realm.to_string(),
            users,
        })
    }

    fn admits(&self, authorization: Option<&str>) -> bool {
        use base64::Engine as _;
        let Some(encoded) = authorization.and_then(|a| a.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = pair.split_once(':') else {
            return false;
        };
        self.users
            .get(user)
            .is_some_and(|expected| same(expected.as_bytes(), password.as_bytes()))
    }
}

/// Compares in time that does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses requests without valid credentials, with ksqlDB's 401 error.
pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|a| a.to_str().ok());
    if OPEN_PATHS.contains(&path) || auth.admits(authorization) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            format!("Basic realm=\"{}\"", auth.realm),
        )],
        Json(json!({
            "@type": "generic_error",
            "error_code": 40100,
            "message": "Unauthorized: this server needs a user name and password (basic authentication)",
        })),
    )
        .into_response()
}
