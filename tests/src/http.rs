//! A real HTTP client for a `brook server` under test.

use std::time::Duration;

pub struct Http {
    pub base: String,
    pub agent: ureq::Agent,
}

impl Http {
    pub fn new(port: u16) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: format!("http://127.0.0.1:{port}"),
            agent,
        }
    }

    /// (status, body)
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut r = self.agent.get(format!("{}{path}", self.base)).call().ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_to_string().ok()?))
    }

    /// (status, body)
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        let send = || {
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Content-Type", "application/json")
                .send(body)
        };
        // A pooled connection the server has closed fails on write, before the request
        // reached it: that one is sent again on a new connection.
        let mut r = match send() {
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => send(),
            other => other,
        }
        .expect("request");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().expect("body"))
    }

    /// A request with any method and an optional JSON body: (status, body).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Content-Type", "application/json")
            .body(body.unwrap_or_default().to_string())
            .expect("request");
        let mut r = self.agent.run(request).expect("request");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// Statements through `/ksql`: the status and the parsed answer.
    pub fn ksql(&self, sql: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({ "ksql": sql, "streamsProperties": {} }).to_string();
        let (status, text) = self.post("/ksql", &body);
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("/ksql answered with no JSON ({e}): {text}"));
        (status, value)
    }
}
