//! Sending one request, again and again while the failure is one that passes: connection
//! failures, timeouts and the statuses the config retries (429 and 5xx for functions),
//! with exponential backoff and jitter, honouring `Retry-After`, until the sink's retry
//! limit (a deadline or a count) is spent.

use crate::config::{Auth, RetryLimit, SinkConfig};
use crate::status::TaskCounters;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Why a request failed for good.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub url: String,
    /// The last answer's status, if there was an answer.
    pub status: Option<u16>,
    pub reason: String,
    /// The last answer's body.
    pub response: String,
    /// Whether the failure was one that is retried (the limit ran out), as opposed to one
    /// the endpoint meant (a 4xx that is not retried).
    pub retriable: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(
                f,
                "{} answered {status} {}: {}",
                self.url, self.reason, self.response
            ),
            None => write!(f, "{}: {}", self.url, self.reason),
        }
    }
}

pub struct Request<'a> {
    pub url: String,
    pub method: reqwest::Method,
    pub body: Vec<u8>,
    pub config: &'a SinkConfig,
    /// The User-Agent: Brook's version, the connector and the task, so that an endpoint's
    /// logs tell which task sent what.
    pub agent: &'a str,
    /// The task's OAuth2 token, when the sink authenticates with one.
    pub tokens: &'a super::oauth2::Tokens,
}

/// Sends the request until it succeeds or fails for good; returns the answer's body.
pub async fn send(
    client: &reqwest::Client,
    request: Request<'_>,
    counters: &TaskCounters,
) -> Result<Vec<u8>, Failure> {
    let config = request.config;
    let started = Instant::now();
    let mut backoff = config.retry_backoff.max(Duration::from_millis(1));
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let outcome = attempt(client, &request).await;
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let (failure, retry_after) = match outcome {
            Ok(body) => return Ok(body),
            Err(failed) => failed,
        };
        let within_limit = match config.retry {
            RetryLimit::Deadline(None) => true,
            RetryLimit::Deadline(Some(limit)) => started.elapsed() < limit,
            RetryLimit::Count(max) => attempts <= max,
        };
        if !failure.retriable || !within_limit {
            return Err(failure);
        }
        counters.retries.fetch_add(1, Ordering::Relaxed);
        let wait = retry_after.unwrap_or(backoff).min(MAX_BACKOFF.max(backoff));
        // Jitter (0.8x to 1.2x) keeps the tasks of a recovering endpoint from retrying in step.
        let wait = wait.mul_f64(0.8 + 0.4 * fastrand::f64());
        tracing::debug!("{failure}; trying again in {} ms", wait.as_millis());
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One try: the body of a 2xx answer, or the failure and the `Retry-After` it asked for.
async fn attempt(
    client: &reqwest::Client,
    request: &Request<'_>,
) -> Result<Vec<u8>, (Failure, Option<Duration>)> {
    let config = request.config;
    let mut builder = client
        .request(request.method.clone(), &request.url)
        .timeout(config.request_timeout)
        .header("content-type", "application/json")
        .header("user-agent", request.agent)
        .body(request.body.clone());
    for (name, value) in &config.headers {
        builder = builder.header(name, value);
    }
    let failure = |status, reason: String, response, retriable| Failure {
        url: request.url.clone(),
        status,
        reason,
        response,
        retriable,
    };
    // The token sent, and whether it was just issued.
    let mut bearer = None;
    match &config.auth {
        Auth::None => {}
        Auth::Basic { user, password } => builder = builder.basic_auth(user, Some(password)),
        Auth::OAuth2(oauth) => {
            match request
                .tokens
                .bearer(client, oauth, config.request_timeout)
                .await
            {
                Ok((token, fresh)) => {
                    builder = builder.bearer_auth(&token);
                    bearer = Some((token, fresh));
                }
                Err(e) => return Err((failure(None, e.reason, String::new(), e.retriable), None)),
            }
        }
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(e) => {
            let reason = if e.is_timeout() {
                format!("no answer within {} ms", config.request_timeout.as_millis())
            } else {
                format!("request failed: {}", error_chain(&e))
            };
            return Err((failure(None, reason, String::new(), true), None));
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = match read_answer(response, config.response_max_bytes).await {
        Ok(body) => body,
        Err(e) => {
            let reason = format!("reading the answer failed: {}", error_chain(&e));
            return Err((
                failure(Some(status.as_u16()), reason, String::new(), true),
                None,
            ));
        }
    };
    if status.is_success() {
        return Ok(body);
    }
    let code = status.as_u16();
    let mut retriable = config.retry_statuses.contains(code);
    let mut retry_after = retry_after;
    if let (401, Some((token, fresh))) = (code, &bearer) {
        request.tokens.refused(token).await;
        // A token refused once it was old is replaced and the request sent again at once.
        if !fresh {
            retriable = true;
            retry_after = Some(Duration::ZERO);
        }
    }
    let reason = status.canonical_reason().unwrap_or("").to_string();
    let text = String::from_utf8_lossy(&body).chars().take(2000).collect();
    Err((failure(Some(code), reason, text, retriable), retry_after))
}

/// The start of an answer's body, up to `max` bytes (the sink's `response.max.bytes`);
/// the rest is not read (the connection is dropped with it).
async fn read_answer(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == max {
            break;
        }
    }
    Ok(body)
}

/// An error with its causes (reqwest's own message leaves out why a connection failed).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
