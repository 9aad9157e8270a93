//! OAuth2 client credentials for the HTTP sink (`auth.type=OAUTH2`, as Confluent's HTTP
//! sink): a token is asked of `oauth2.token.url` with the client's id and secret, kept
//! until it expires (a minute early) or the endpoint answers 401, and sent as a bearer
//! token with every request.

use crate::config::{OAuth2, OAuth2ClientAuth};
use std::time::{Duration, Instant};

/// How long before its `expires_in` a token is replaced, so that none is sent as it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFailure {
    pub reason: String,
    /// Worth asking again (no answer, or a 5xx/429), as opposed to refused credentials.
    pub retriable: bool,
}

/// A task's token, asked for when first needed and again once spent.
#[derive(Default)]
pub struct Tokens {
    current: tokio::sync::Mutex<Option<Token>>,
}

#[derive(Clone)]
struct Token {
    value: String,
    expires: Option<Instant>,
}

impl Tokens {
    /// A token valid now, and whether it was just issued (a refusal of a fresh token is
    /// the endpoint's; of an older one, maybe the token's age).
    pub async fn bearer(
        &self,
        client: &reqwest::Client,
        config: &OAuth2,
        timeout: Duration,
    ) -> Result<(String, bool), TokenFailure> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            if token.expires.is_none_or(|at| Instant::now() < at) {
                return Ok((token.value.clone(), false));
            }
        }
        let token = request(client, config, timeout).await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok((value, true))
    }

    /// The endpoint refused `token`: the next request asks for a new one.
    pub async fn refused(&self, token: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| t.value == token) {
            *current = None;
        }
    }
}

/// One token request (RFC 6749 section 4.4).
async fn request(
    client: &reqwest::Client,
    config: &OAuth2,
    timeout: Duration,
) -> Result<Token, TokenFailure> {
    let mut form = vec![("grant_type", "client_credentials")];
    if !config.scope.is_empty() {
        form.push(("scope", config.scope.as_str()));
    }
    let mut builder = client.post(&config.token_url).timeout(timeout);
    for (name, value) in &config.headers {
        builder = builder.header(name, value);
    }
    match config.client_auth {
        OAuth2ClientAuth::Header => {
            builder = builder.basic_auth(&config.client_id, Some(&config.client_secret));
        }
        OAuth2ClientAuth::Url => {
            form.push(("client_id", config.client_id.as_str()));
            form.push(("client_secret", config.client_secret.as_str()));
        }
    }
    let failure = |reason: String, retriable| TokenFailure {
        reason: format!("no OAuth2 token from {}: {reason}", config.token_url),
        retriable,
    };
    let response = builder
        .form(&form)
        .send()
        .await
        .map_err(|e| failure(super::delivery::error_chain(&e), true))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| failure(super::delivery::error_chain(&e), true))?;
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(500).collect();
        let retriable = status.is_server_error() || status.as_u16() == 429;
        return Err(failure(format!("it answered {status}: {text}"), retriable));
    }
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| failure(format!("its answer is not JSON ({e})"), false))?;
    let value = answer
        .get(&config.token_property)
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            failure(
                format!(
                    "its answer has no string '{}' (oauth2.token.property)",
                    config.token_property
                ),
                false,
            )
        })?
        .to_string();
    let expires = answer
        .get("expires_in")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .map(|secs| Instant::now() + Duration::from_secs(secs).saturating_sub(EXPIRY_MARGIN));
    Ok(Token { value, expires })
}
