//! A client of the REST API (for the shell and migrations): statements to `/ksql`, queries to `/query-stream`
//! (read line by line while they stream), `/close-query`, `/info`.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

pub struct Client {
    base: String,
    authorization: Option<String>,
    /// Requests that answer at once.
    requests: ureq::Agent,
    /// Queries, whose answers stream for as long as they run.
    streams: ureq::Agent,
}

/// What a failed request says.
pub enum Failure {
    /// The server could not be reached (or broke the connection).
    Unreachable(String),
    /// The server answered with an error: its message (and the whole answer).
    Refused { message: String, answer: Value },
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Unreachable(e) => e.clone(),
            Failure::Refused { message, .. } => message.clone(),
        }
    }
}

/// A query whose answer is streaming: its id and columns, then its rows.
pub struct Streaming {
    pub id: String,
    pub columns: Vec<String>,
    pub rows: Box<dyn BufRead + Send>,
}

impl Client {
    /// A client of the server at `base`; `ca_file` is a PEM certificate to trust for HTTPS
    /// besides the system's roots.
    pub fn new(
        base: &str,
        user: Option<&str>,
        password: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        use base64::Engine as _;
        let roots = match ca_file {
            None => ureq::tls::RootCerts::PlatformVerifier,
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
                let certificate = ureq::tls::Certificate::from_pem(&pem)
                    .map_err(|e| format!("{} holds no PEM certificate: {e}", path.display()))?;
                ureq::tls::RootCerts::new_with_certs(&[certificate])
            }
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(roots)
            .build();
        let authorization = user.map(|u| {
            let pair = format!("{u}:{}", password.unwrap_or_default());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let agent = |timeout: Option<Duration>| -> ureq::Agent {
            ureq::Agent::config_builder()
                .tls_config(tls.clone())
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_global(timeout)
                .http_status_as_error(false)
                .build()
                .into()
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            authorization,
            requests: agent(Some(Duration::from_secs(300))),
            streams: agent(None),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn post(
        &self,
        agent: &ureq::Agent,
        path: &str,
        body: &Value,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut request = agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        request
            .send(body.to_string())
            .map_err(|e| Failure::Unreachable(self.unreachable(&e)))
    }

    fn unreachable(&self, e: &ureq::Error) -> String {
        format!(
            "the server at {} is unreachable ({e}); is `brook server` running there?",
            self.base
        )
    }

    /// The answer of a request that does not stream, as JSON; an error status is a refusal.
    fn answer(mut response: ureq::http::Response<ureq::Body>) -> Result<Value, Failure> {
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Unreachable(format!("the answer broke off: {e}")))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let message = match &answer {
                Value::String(s) if status == 401 => format!("not authorized: {s}"),
                Value::String(s) => s.clone(),
                a => a["message"]
                    .as_str()
                    .unwrap_or("request failed")
                    .to_string(),
            };
            return Err(Failure::Refused { message, answer });
        }
        Ok(answer)
    }

    /// The server's `/info`.
    pub fn info(&self) -> Result<Value, Failure> {
        let mut request = self.requests.get(format!("{}/info", self.base));
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        let response = request
            .call()
            .map_err(|e| Failure::Unreachable(self.unreachable(&e)))?;
        Self::answer(response)
    }

    /// Runs statements that are not queries; their entities.
    pub fn ksql(
        &self,
        statements: &str,
        properties: &BTreeMap<String, String>,
        variables: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, Failure> {
        let body = json!({
            "ksql": statements,
            "streamsProperties": properties,
            "sessionVariables": variables,
        });
        let answer = Self::answer(self.post(&self.requests, "/ksql", &body)?)?;
        Ok(answer.as_array().cloned().unwrap_or_default())
    }

    /// Starts a query; its rows are read from the result as they come.
    pub fn query(
        &self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Streaming, Failure> {
        let body = json!({"sql": sql, "properties": properties});
        let response = self.post(&self.streams, "/query-stream", &body)?;
        if response.status().as_u16() >= 400 {
            return Err(Self::answer(response).err().unwrap_or(Failure::Unreachable(
                "the query failed without saying why".into(),
            )));
        }
        let mut rows: Box<dyn BufRead + Send> =
            Box::new(std::io::BufReader::new(response.into_body().into_reader()));
        let mut header = String::new();
        rows.read_line(&mut header)
            .map_err(|e| Failure::Unreachable(format!("the query's answer broke off: {e}")))?;
        let header: Value = serde_json::from_str(&header).map_err(|_| Failure::Refused {
            message: format!("unexpected answer: {header}"),
            answer: Value::Null,
        })?;
        let columns = header["columnNames"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Streaming {
            id: header["queryId"].as_str().unwrap_or_default().to_string(),
            columns,
            rows,
        })
    }

    /// Runs a query that ends by itself (a pull query): its column names and rows.
    pub fn query_rows(
        &self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<(Vec<String>, Vec<Value>), Failure> {
        let mut streaming = self.query(sql, properties)?;
        let mut rows = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let read = streaming
                .rows
                .read_line(&mut line)
                .map_err(|e| Failure::Unreachable(format!("the query's answer broke off: {e}")))?;
            if read == 0 {
                break;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(row) if row.is_array() => rows.push(row),
                Ok(other) => {
                    return Err(Failure::Refused {
                        message: other["message"].as_str().unwrap_or("query failed").into(),
                        answer: other,
                    })
                }
                Err(_) => {}
            }
        }
        Ok((streaming.columns, rows))
    }

    /// Ends a query another request streams.
    pub fn close_query(&self, id: &str) -> Result<(), Failure> {
        Self::answer(self.post(&self.requests, "/close-query", &json!({"queryId": id}))?)
            .map(|_| ())
    }
}
