//! A real HTTP endpoint on loopback for sink connectors to deliver to: it records every
//! request it gets (with the requests in flight at that moment), and can be told to
//! answer slowly, to answer a status for a while, to refuse records whose value holds a
//! marker, or to stall until released.

use crate::LoopbackServer;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A request as the endpoint got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub user_agent: String,
    /// The `x-functions-key` header, if sent.
    pub function_key: Option<String>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    pub body: Value,
    /// What it answered.
    pub status: u16,
    /// Requests of the same User-Agent in flight when it arrived, itself included.
    pub in_flight_of_agent: usize,
}

#[derive(Default)]
struct Behaviour {
    /// Answer this status to every request until the instant passes.
    failing: Option<(u16, std::time::Instant)>,
    /// Answer 400 to a batch holding a record whose JSON text contains this.
    refuse_marker: Option<String>,
    /// How long each answer takes.
    delay: Duration,
    /// Requests need a bearer token this issuer gave out.
    oauth2: Option<Issuer>,
}

/// An OAuth2 token endpoint (client credentials) at `/token`, for the endpoint's requests.
struct Issuer {
    client_id: String,
    client_secret: String,
    /// Tokens issued so far; the last one is the one accepted, until revoked.
    issued: usize,
    /// The headers of the last token request, by lower-case name.
    last_headers: HashMap<String, String>,
    current: Option<String>,
}

impl Issuer {
    /// Answers a token request: a new token for the right client, 401 otherwise.
    fn token(&mut self, authorization: Option<&str>, form: &str) -> (u16, String) {
        use base64::Engine;
        let fields: std::collections::HashMap<&str, &str> = form
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.client_id, self.client_secret))
        );
        let client_ok = authorization == Some(basic.as_str())
            || (fields.get("client_id") == Some(&self.client_id.as_str())
                && fields.get("client_secret") == Some(&self.client_secret.as_str()));
        if !client_ok || fields.get("grant_type") != Some(&"client_credentials") {
            return (401, r#"{"error": "invalid_client"}"#.into());
        }
        self.issued += 1;
        let token = format!("token-{}", self.issued);
        self.current = Some(token.clone());
        (
            200,
            serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
                .to_string(),
        )
    }
}

pub struct Endpoint {
    pub port: u16,
    shared: Arc<Shared>,
    /// Its port closes when the endpoint is dropped.
    _server: LoopbackServer,
}

/// What the endpoint's handlers and the test share.
#[derive(Default)]
struct Shared {
    /// Keep every request's body (a benchmark's endpoint only counts records).
    keep: bool,
    received: Mutex<Vec<Received>>,
    behaviour: Mutex<Behaviour>,
    stalled: (Mutex<bool>, Condvar),
    /// Requests in flight per User-Agent.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Requests that arrived, answered or not.
    arrived: AtomicUsize,
    /// Requests being answered now.
    answering: AtomicUsize,
    /// Records in requests answered 200.
    delivered_records: AtomicUsize,
}

impl Endpoint {
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// An endpoint that answers 200 at once and only counts the records it gets.
    pub fn counting() -> Self {
        Self::serve(0, true)
    }

    /// An endpoint on this port (0: any free one); a test stops one (dropping it) and
    /// starts another on its port to have the sink meet refused connections meanwhile.
    pub fn start_on(port: u16) -> Self {
        Self::serve(port, false)
    }

    fn serve(port: u16, counting: bool) -> Self {
        // A benchmark's endpoint only counts: keeping every body would cost the machine
        // more than the sink under test.
        let shared = Arc::new(Shared {
            keep: !counting,
            ..Default::default()
        });
        let router = axum::Router::new()
            .fallback(answer)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let server = LoopbackServer::start(port, router);
        Self {
            port: server.port,
            shared,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/sink", self.port)
    }

    /// Closes the endpoint (connections are refused from now on); returns every request
    /// it answered.
    pub fn stop(self) -> Vec<Received> {
        let shared = self.shared.clone();
        drop(self);
        // Requests that arrived before are still answered: they are part of what it got.
        crate::wait_for(Duration::from_secs(30), || {
            (shared.answering.load(Ordering::SeqCst) == 0).then_some(())
        });
        let answered = shared.received.lock().unwrap().clone();
        answered
    }

    /// Records in requests answered 200 so far (duplicates included).
    pub fn delivered_count(&self) -> usize {
        self.shared.delivered_records.load(Ordering::SeqCst)
    }

    /// Requests that arrived so far, answered or not.
    pub fn arrived(&self) -> usize {
        self.shared.arrived.load(Ordering::SeqCst)
    }

    /// Every request so far, in the order they were answered.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Answers `status` to everything for `duration` from now.
    pub fn fail_for(&self, status: u16, duration: Duration) {
        self.shared.behaviour.lock().unwrap().failing =
            Some((status, std::time::Instant::now() + duration));
    }

    /// Answers 400 to batches holding `marker`.
    pub fn refuse(&self, marker: Option<&str>) {
        self.shared.behaviour.lock().unwrap().refuse_marker = marker.map(str::to_string);
    }

    /// From now on, requests need a bearer token issued at `token_url()` to the client
    /// `id` with `secret`.
    pub fn require_oauth2(&self, id: &str, secret: &str) {
        self.shared.behaviour.lock().unwrap().oauth2 = Some(Issuer {
            client_id: id.into(),
            client_secret: secret.into(),
            issued: 0,
            last_headers: HashMap::new(),
            current: None,
        });
    }

    /// The token issued last stops being accepted; a new one is issued on request.
    pub fn revoke_token(&self) {
        if let Some(issuer) = self.shared.behaviour.lock().unwrap().oauth2.as_mut() {
            issuer.current = None;
        }
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared
            .behaviour
            .lock()
            .unwrap()
            .oauth2
            .as_ref()
            .map_or(0, |i| i.issued)
    }

    /// A header of the last token request.
    pub fn token_request_header(&self, name: &str) -> Option<String> {
        let behaviour = self.shared.behaviour.lock().unwrap();
        let issuer = behaviour.oauth2.as_ref()?;
        issuer.last_headers.get(&name.to_lowercase()).cloned()
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared.behaviour.lock().unwrap().delay = delay;
    }

    /// Holds every request (already arrived or arriving) until `stall(false)`.
    pub fn stall(&self, on: bool) {
        let (lock, released) = &self.shared.stalled;
        *lock.lock().unwrap() = on;
        released.notify_all();
    }

    /// The (partition, offset) of every record delivered with a 200 answer.
    pub fn delivered(&self) -> Vec<(i64, i64)> {
        self.received()
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| records_of(&r.body))
            .collect()
    }
}

/// The (partition, offset) of each record in an Azure Functions request body.
pub fn records_of(body: &Value) -> Vec<(i64, i64)> {
    body.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap_or(-1),
                r["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Stalled requests are let go, so that the server can finish them and close.
        self.stall(false);
    }
}

/// Answers one request; the answer is worked out on a blocking thread, since it may wait
/// (a delay, a stall) as long as the test asks.
async fn answer(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    shared.answering.fetch_add(1, Ordering::SeqCst);
    let worker = shared.clone();
    let answered =
        tokio::task::spawn_blocking(move || worker.answer(uri.path(), &headers, &body)).await;
    shared.answering.fetch_sub(1, Ordering::SeqCst);
    let (status, content_type, text) =
        answered.unwrap_or_else(|e| (500, "text/plain", format!("the endpoint failed: {e}")));
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    // Each request on a connection of its own: once the endpoint is dropped, a sink meets
    // refused connections, not a pooled one.
    (
        status,
        [("content-type", content_type), ("connection", "close")],
        text,
    )
        .into_response()
}

impl Shared {
    /// The status, content type and body answered to a request.
    fn answer(
        &self,
        path: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> (u16, &'static str, String) {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let agent = header("user-agent").unwrap_or_default();
        let function_key = header("x-functions-key");
        let authorization = header("authorization");
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let now_in_flight = {
            let mut map = self.in_flight.lock().unwrap();
            let n = map.entry(agent.clone()).or_default();
            *n += 1;
            *n
        };
        let text = String::from_utf8_lossy(body).into_owned();
        // Token requests are the issuer's, not deliveries.
        let token_answer = self
            .behaviour
            .lock()
            .unwrap()
            .oauth2
            .as_mut()
            .filter(|_| path == "/token")
            .map(|issuer| {
                issuer.last_headers = headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                issuer.token(authorization.as_deref(), &text)
            });
        if let Some((status, body)) = token_answer {
            self.left(&agent);
            return (status, "application/json", body);
        }
        {
            let (lock, released) = &self.stalled;
            let mut stall = lock.lock().unwrap();
            while *stall {
                stall = released.wait(stall).unwrap();
            }
        }
        let (status, delay) = {
            let b = self.behaviour.lock().unwrap();
            let bearer = b
                .oauth2
                .as_ref()
                .map(|i| i.current.as_ref().map(|t| format!("Bearer {t}")));
            let status = match (&b.failing, &b.refuse_marker) {
                _ if bearer
                    .as_ref()
                    .is_some_and(|expected| expected.is_none() || *expected != authorization) =>
                {
                    401
                }
                (Some((status, until)), _) if std::time::Instant::now() < *until => *status,
                (_, Some(marker)) if text.contains(marker.as_str()) => 400,
                _ => 200,
            };
            (status, b.delay)
        };
        std::thread::sleep(delay);
        if status == 200 {
            let records = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(&text)
                .map_or(0, |r| r.len());
            self.delivered_records.fetch_add(records, Ordering::SeqCst);
        }
        let body = if self.keep {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            Value::Null
        };
        self.received.lock().unwrap().push(Received {
            user_agent: agent.clone(),
            function_key,
            authorization,
            body,
            status,
            in_flight_of_agent: now_in_flight,
        });
        self.left(&agent);
        let answer = if status == 200 { "ok" } else { "refused" };
        (status, "text/plain", answer.to_string())
    }

    /// A request of `agent` is answered.
    fn left(&self, agent: &str) {
        if let Some(n) = self.in_flight.lock().unwrap().get_mut(agent) {
            *n -= 1;
        }
    }
}
