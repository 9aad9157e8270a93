//! A sink connector's config, read from its WITH properties with the Confluent plugins'
//! names and defaults (`../shared/reference/connectors.md`), and checked before any task
//! starts, so that a bad config is the CREATE statement's error.

use brook_sql::ast::ConnectorKind;
use std::collections::BTreeMap;
use std::time::Duration;

/// The classes this process runs: short name, full name, kind.
pub const NATIVE_CLASSES: &[(&str, &str, ConnectorKind)] = &[
    (
        "AzureFunctionsSink",
        "io.confluent.connect.azure.functions.AzureFunctionsSinkConnector",
        ConnectorKind::Sink,
    ),
    (
        "HttpSink",
        "io.confluent.connect.http.HttpSinkConnector",
        ConnectorKind::Sink,
    ),
    (
        "DatagenSource",
        "io.confluent.kafka.connect.datagen.DatagenConnector",
        ConnectorKind::Source,
    ),
];

/// The native class `connector.class` names, by its short or its full name: (short,
/// full, kind).
pub fn native_class(class: &str) -> Option<(&'static str, &'static str, ConnectorKind)> {
    NATIVE_CLASSES
        .iter()
        .find(|(short, full, _)| class == *short || class == *full)
        .copied()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkClass {
    AzureFunctions,
    Http,
}

impl SinkClass {
    /// The class named by `connector.class`, by its short or its full name.
    pub fn named(class: &str) -> Option<(SinkClass, &'static str)> {
        match native_class(class)? {
            ("AzureFunctionsSink", full, _) => Some((SinkClass::AzureFunctions, full)),
            ("HttpSink", full, _) => Some((SinkClass::Http, full)),
            _ => None,
        }
    }
}

/// What the sink reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Topics {
    List(Vec<String>),
    Regex(String),
}

/// What happens to a record whose delivery failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The task fails (`behavior.on.error=fail`, the default).
    Fail,
    /// The record is skipped and the error logged.
    Log,
    /// The record is skipped.
    Ignore,
}

/// Which failures are sent again, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryLimit {
    /// For this long after the first failure (the Azure Functions sink's `retry.timeout.ms`);
    /// `None` is forever.
    Deadline(Option<Duration>),
    /// This many times (the HTTP sink's `max.retries`).
    Count(u32),
}

/// How a batch becomes a request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON array of `{key, value, topic, partition, offset, timestamp}`.
    AzureRecords,
    /// The values as a JSON array (`batch.json.as.array`).
    JsonArray,
    /// The values as text between `prefix` and `suffix`, separated by `separator`.
    Joined {
        prefix: String,
        suffix: String,
        separator: String,
    },
}

/// What a tombstone (a record with no value) does in the HTTP sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnNull {
    Ignore,
    Log,
    Fail,
    /// Sent as a DELETE to the record's URL.
    Delete,
}

/// How the HTTP sink authenticates its requests (`auth.type`).
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    OAuth2(OAuth2),
}

/// OAuth2 client credentials (`oauth2.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Headers sent with token requests (`oauth2.client.headers`).
    pub headers: Vec<(String, String)>,
    /// The field of the token answer that holds the token.
    pub token_property: String,
    /// Sent as `scope` when not empty.
    pub scope: String,
    pub client_auth: OAuth2ClientAuth,
}

/// `oauth2.client.auth.mode`: the client's id and secret in a Basic `Authorization`
/// header, or as form parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OAuth2ClientAuth {
    Header,
    Url,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    pub class: SinkClass,
    pub tasks: u32,
    pub topics: Topics,
    /// Records per request.
    pub batch_size: usize,
    /// Requests a task has in flight at most.
    pub pending: usize,
    /// The target, with `${topic}` and `${key}` to be filled per batch.
    pub url: String,
    pub method: reqwest::Method,
    pub headers: Vec<(String, String)>,
    pub auth: Auth,
    pub body: Body,
    pub retry: RetryLimit,
    /// The first wait before a retry; each next one doubles, with jitter.
    pub retry_backoff: Duration,
    /// HTTP statuses that are retried (besides connection failures and timeouts).
    pub retry_statuses: StatusRanges,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub on_error: OnError,
    pub on_null: OnNull,
    /// `errors.tolerance=all`: failed records are skipped (to the dead-letter topic if
    /// one is named) whatever `behavior.on.error` says.
    pub tolerate_all: bool,
    pub dead_letter_topic: Option<String>,
    /// `errors.deadletterqueue.context.headers.enable`.
    pub dead_letter_headers: bool,
    /// How often acknowledged offsets are committed (`offset.flush.interval.ms`).
    pub commit_interval: Duration,
    /// The most of an answer's body that is read (`response.max.bytes`, Brook's own): an
    /// endpoint that answers with a flood cannot fill memory.
    pub response_max_bytes: usize,
    /// Result and error reporting (`reporter.*`).
    pub reporter: ReporterConfig,
}

/// Where delivered and failed records are reported (Confluent's `reporter.*`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReporterConfig {
    /// `reporter.bootstrap.servers`: another cluster than the connector's own.
    pub bootstrap: Option<String>,
    /// `reporter.result.topic.*`: a record per delivered record (off when the name is blank).
    pub result: Option<ReportTopic>,
    /// `reporter.error.topic.*`: a record per failed record (off when the name is blank).
    pub error: Option<ReportTopic>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportTopic {
    pub name: String,
    pub partitions: i32,
    /// At most the cluster's broker count: a one-broker cluster gets one copy.
    pub replicas: i32,
}

/// HTTP status ranges as the HTTP sink writes them: `404,408,500-` (a bare `N-` is N and
/// above, `N-M` a closed range).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRanges(Vec<(u16, u16)>);

impl StatusRanges {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("retry.on.status.codes: '{part}' is not a status or range");
            let number = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
            let range = match part.split_once('-') {
                Some((from, "")) => (number(from)?, u16::MAX),
                Some((from, to)) => (number(from)?, number(to)?),
                None => (number(part)?, number(part)?),
            };
            ranges.push(range);
        }
        Ok(Self(ranges))
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&status))
    }
}

/// Reads a config; `config` has its secrets resolved already.
pub fn sink_config(name: &str, config: &BTreeMap<String, String>) -> Result<SinkConfig, String> {
    let get = |key: &str| config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let class_name = get("connector.class")
        .ok_or_else(|| format!("Connector config {config:?} contains no connector type"))?;
    let (class, _) = SinkClass::named(class_name).ok_or_else(|| unknown_class(class_name))?;
    let number = |key: &str, default: i64| -> Result<i64, String> {
        match get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| format!("Invalid value {v} for configuration {key}: not a number")),
        }
    };
    let positive = |key: &str, default: i64| -> Result<i64, String> {
        let n = number(key, default)?;
        if n < 1 {
            return Err(format!(
                "Invalid value {n} for configuration {key}: Value must be at least 1"
            ));
        }
        Ok(n)
    };
    let millis = |key: &str, default: i64| -> Result<Duration, String> {
        Ok(Duration::from_millis(number(key, default)?.max(0) as u64))
    };
    let choice = |key: &str, default: &str, allowed: &[&str]| -> Result<String, String> {
        let v = get(key).unwrap_or(default).to_lowercase();
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(format!(
                "Invalid value {v} for configuration {key}: must be one of {}",
                allowed.join(", ")
            ))
        }
    };
    let topics = match (get("topics"), get("topics.regex")) {
        (Some(_), Some(_)) => {
            return Err("Must configure only one of topics or topics.regex".into());
        }
        (Some(list), None) => Topics::List(
            list.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
        ),
        (None, Some(regex)) => Topics::Regex(regex.to_string()),
        (None, None) => {
            return Err("Must configure one of topics or topics.regex".into());
        }
    };
    let on_error = match choice("behavior.on.error", "fail", &["fail", "log", "ignore"])?.as_str() {
        "log" => OnError::Log,
        "ignore" => OnError::Ignore,
        _ => OnError::Fail,
    };
    let tolerate_all = choice("errors.tolerance", "none", &["none", "all"])? == "all";
    let dead_letter_topic = get("errors.deadletterqueue.topic.name").map(str::to_string);
    let mut headers = Vec::new();
    let mut auth = Auth::None;
    let common = |url: String, method, body, retry, retry_backoff, retry_statuses| SinkConfig {
        class,
        tasks: 1,
        topics: topics.clone(),
        batch_size: 1,
        pending: 1,
        url,
        method,
        headers: Vec::new(),
        auth: Auth::None,
        body,
        retry,
        retry_backoff,
        retry_statuses,
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(30),
        on_error,
        on_null: OnNull::Ignore,
        tolerate_all,
        dead_letter_topic: dead_letter_topic.clone(),
        dead_letter_headers: false,
        commit_interval: Duration::from_secs(5),
        response_max_bytes: DEFAULT_RESPONSE_MAX_BYTES,
        reporter: ReporterConfig::default(),
    };
    let mut sink = match class {
        SinkClass::AzureFunctions => {
            let url = get("function.url").ok_or(
                "Missing required configuration \"function.url\" which has no default value.",
            )?;
            let key = get("function.key").ok_or(
                "Missing required configuration \"function.key\" which has no default value.",
            )?;
            headers.push(("x-functions-key".to_string(), key.to_string()));
            let retry = match number("retry.timeout.ms", 600_000)? {
                n if n < 0 => RetryLimit::Deadline(None),
                n => RetryLimit::Deadline(Some(Duration::from_millis(n as u64))),
            };
            let mut sink = common(
                url.to_string(),
                reqwest::Method::POST,
                Body::AzureRecords,
                retry,
                millis("retry.backoff.ms", 100)?,
                StatusRanges(vec![(429, 429), (500, u16::MAX)]),
            );
            sink.batch_size = positive("max.batch.size", 1)? as usize;
            sink.request_timeout = millis("request.timeout.ms", 300_000)?;
            sink
        }
        SinkClass::Http => {
            let url = get("http.api.url").ok_or(
                "Missing required configuration \"http.api.url\" which has no default value.",
            )?;
            let method = match choice("request.method", "post", &["post", "put", "patch"])?.as_str()
            {
                "put" => reqwest::Method::PUT,
                "patch" => reqwest::Method::PATCH,
                _ => reqwest::Method::POST,
            };
            let as_array = choice("batch.json.as.array", "true", &["true", "false"])? == "true";
            let json = choice("request.body.format", "string", &["string", "json"])? == "json";
            let body = if as_array && json {
                Body::JsonArray
            } else {
                Body::Joined {
                    prefix: config.get("batch.prefix").cloned().unwrap_or_default(),
                    suffix: config.get("batch.suffix").cloned().unwrap_or_default(),
                    separator: config
                        .get("batch.separator")
                        .cloned()
                        .unwrap_or_else(|| ",".into()),
                }
            };
            let separator = get("header.separator").unwrap_or("|");
            // `Name: value` pairs between separators, as `headers` and
            // `oauth2.client.headers` are written.
            let header_list = |key: &str| -> Result<Vec<(String, String)>, String> {
                let mut list = Vec::new();
                for header in get(key).unwrap_or("").split(separator) {
                    if header.trim().is_empty() {
                        continue;
                    }
                    let (k, v) = header
                        .split_once(':')
                        .ok_or_else(|| format!("{key}: '{header}' is not 'Name: value'"))?;
                    list.push((k.trim().to_string(), v.trim().to_string()));
                }
                Ok(list)
            };
            headers.extend(header_list("headers")?);
            match choice("auth.type", "none", &["none", "basic", "oauth2"])?.as_str() {
                "basic" => {
                    auth = Auth::Basic {
                        user: get("connection.user")
                            .ok_or("auth.type BASIC needs connection.user")?
                            .to_string(),
                        password: config
                            .get("connection.password")
                            .cloned()
                            .unwrap_or_default(),
                    };
                }
                "oauth2" => {
                    let token_url =
                        get("oauth2.token.url").ok_or("auth.type OAUTH2 needs oauth2.token.url")?;
                    if !(token_url.starts_with("http://") || token_url.starts_with("https://")) {
                        return Err(format!(
                            "oauth2.token.url must be an http:// or https:// URL, not '{token_url}'"
                        ));
                    }
                    auth = Auth::OAuth2(OAuth2 {
                        token_url: token_url.to_string(),
                        client_id: get("oauth2.client.id")
                            .ok_or("auth.type OAUTH2 needs oauth2.client.id")?
                            .to_string(),
                        client_secret: config
                            .get("oauth2.client.secret")
                            .cloned()
                            .unwrap_or_default(),
                        headers: header_list("oauth2.client.headers")?,
                        token_property: get("oauth2.token.property")
                            .unwrap_or("access_token")
                            .to_string(),
                        scope: config
                            .get("oauth2.client.scope")
                            .cloned()
                            .unwrap_or_else(|| "any".into()),
                        client_auth: match choice(
                            "oauth2.client.auth.mode",
                            "header",
                            &["header", "url"],
                        )?
                        .as_str()
                        {
                            "url" => OAuth2ClientAuth::Url,
                            _ => OAuth2ClientAuth::Header,
                        },
                    });
                }
                _ => {}
            }
            let mut sink = common(
                url.to_string(),
                method,
                body,
                RetryLimit::Count(number("max.retries", 5)?.max(0) as u32),
                millis("retry.backoff.ms", 3000)?,
                StatusRanges::parse(get("retry.on.status.codes").unwrap_or("400-"))?,
            );
            sink.batch_size = positive("batch.max.size", 1)? as usize;
            sink.request_timeout = millis("http.request.timeout.ms", 30_000)?;
            sink.connect_timeout = millis("http.connect.timeout.ms", 30_000)?;
            sink.on_null = match choice(
                "behavior.on.null.values",
                "ignore",
                &["ignore", "delete", "log", "fail"],
            )?
            .as_str()
            {
                "delete" => OnNull::Delete,
                "log" => OnNull::Log,
                "fail" => OnNull::Fail,
                _ => OnNull::Ignore,
            };
            sink
        }
    };
    sink.headers = headers;
    sink.auth = auth;
    sink.tasks = positive("tasks.max", 1)? as u32;
    sink.pending = positive("max.pending.requests", 1)? as usize;
    sink.dead_letter_headers = choice(
        "errors.deadletterqueue.context.headers.enable",
        "false",
        &["true", "false"],
    )? == "true";
    sink.commit_interval =
        millis("offset.flush.interval.ms", 5_000)?.max(Duration::from_millis(10));
    sink.response_max_bytes =
        positive("response.max.bytes", DEFAULT_RESPONSE_MAX_BYTES as i64)? as usize;
    let report_topic = |kind: &str, suffix: &str| -> Result<Option<ReportTopic>, String> {
        let prefix = format!("reporter.{kind}.topic");
        // A blank name turns the report off; no name at all takes the default.
        let topic = match config.get(&format!("{prefix}.name")).map(|v| v.trim()) {
            Some("") => return Ok(None),
            Some(topic) => topic.to_string(),
            None => format!("{name}-{suffix}"),
        };
        Ok(Some(ReportTopic {
            name: topic,
            partitions: positive(&format!("{prefix}.partitions"), 1)? as i32,
            replicas: positive(&format!("{prefix}.replication.factor"), 3)? as i32,
        }))
    };
    sink.reporter = ReporterConfig {
        bootstrap: get("reporter.bootstrap.servers").map(str::to_string),
        result: report_topic("result", "success")?,
        error: report_topic("error", "error")?,
    };
    if let Some(format) = get("value.converter").or(get("input.data.format")) {
        let lower = format.to_lowercase();
        if !(lower.contains("json") || lower.contains("string") || lower.contains("bytearray")) {
            return Err(format!(
                "{name}: input format {format} is not supported yet (JSON, string and bytes are)"
            ));
        }
    }
    Ok(sink)
}

/// What `response.max.bytes` is when not set: answers are acknowledgements, and only their
/// start is kept (in a failure's message).
pub const DEFAULT_RESPONSE_MAX_BYTES: usize = 64 * 1024;

/// The error for a class this process does not run.
pub fn unknown_class(class: &str) -> String {
    let natives: Vec<String> = NATIVE_CLASSES
        .iter()
        .map(|(short, full, _)| format!("{short} ({full})"))
        .collect();
    format!(
        "connector class {class} is not run by Brook and no Kafka Connect cluster is configured (ksql.connect.url); the native classes are: {}",
        natives.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn azure_functions_defaults_and_limits() {
        let sink = sink_config(
            "c",
            &config(&[
                ("connector.class", "AzureFunctionsSink"),
                ("function.url", "http://localhost:7071/api/f"),
                ("function.key", "k"),
                ("topics", "a, b"),
                ("max.batch.size", "500"),
                ("max.pending.requests", "4"),
                ("tasks.max", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(sink.class, SinkClass::AzureFunctions);
        assert_eq!(sink.topics, Topics::List(vec!["a".into(), "b".into()]));
        assert_eq!((sink.batch_size, sink.pending, sink.tasks), (500, 4, 2));
        assert_eq!(
            sink.retry,
            RetryLimit::Deadline(Some(Duration::from_secs(600)))
        );
        assert!(sink.retry_statuses.contains(503) && sink.retry_statuses.contains(429));
        assert!(!sink.retry_statuses.contains(400));
        assert_eq!(sink.headers, vec![("x-functions-key".into(), "k".into())]);
        assert_eq!(sink.on_error, OnError::Fail);
        assert_eq!(sink.response_max_bytes, 64 * 1024);
        let base = [
            ("connector.class", "AzureFunctionsSink"),
            ("function.url", "http://localhost:7071/api/f"),
            ("function.key", "k"),
            ("topics", "a"),
        ];
        let with = |value: &str| {
            let mut pairs = base.to_vec();
            pairs.push(("response.max.bytes", value));
            sink_config("c", &config(&pairs))
        };
        assert_eq!(with("4096").map(|s| s.response_max_bytes), Ok(4096));
        let reports = |pairs: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(pairs);
            sink_config("c", &config(&all)).map(|s| s.reporter)
        };
        let defaults = reports(&[]).unwrap();
        let topic = |name: &str, partitions, replicas| {
            Some(ReportTopic {
                name: name.into(),
                partitions,
                replicas,
            })
        };
        assert_eq!(defaults.result, topic("c-success", 1, 3));
        assert_eq!(defaults.error, topic("c-error", 1, 3));
        assert_eq!(defaults.bootstrap, None);
        let set = reports(&[
            ("reporter.result.topic.name", ""),
            ("reporter.error.topic.name", "failures"),
            ("reporter.error.topic.partitions", "3"),
            ("reporter.error.topic.replication.factor", "1"),
            ("reporter.bootstrap.servers", "other:9092"),
        ])
        .unwrap();
        assert_eq!(set.result, None, "a blank name turns the report off");
        assert_eq!(set.error, topic("failures", 3, 1));
        assert_eq!(set.bootstrap.as_deref(), Some("other:9092"));
        assert!(reports(&[("reporter.result.topic.partitions", "0")]).is_err());
        assert_eq!(
            with("0").map(|s| s.response_max_bytes),
            Err(
                "Invalid value 0 for configuration response.max.bytes: Value must be at least 1"
                    .into()
            )
        );
    }

    #[test]
    fn http_sink_headers_auth_and_statuses() {
        let sink = sink_config(
            "c",
            &config(&[
                (
                    "connector.class",
                    "io.confluent.connect.http.HttpSinkConnector",
                ),
                ("http.api.url", "http://h/${topic}"),
                ("topics.regex", "orders.*"),
                ("headers", "A: 1|B: two"),
                ("auth.type", "BASIC"),
                ("connection.user", "u"),
                ("connection.password", "p"),
                ("retry.on.status.codes", "404,500-599"),
                ("request.body.format", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(sink.topics, Topics::Regex("orders.*".into()));
        assert_eq!(sink.headers.len(), 2);
        assert_eq!(
            sink.auth,
            Auth::Basic {
                user: "u".into(),
                password: "p".into()
            }
        );
        assert!(sink.retry_statuses.contains(404) && sink.retry_statuses.contains(503));
        assert!(!sink.retry_statuses.contains(400) && !sink.retry_statuses.contains(600));
        assert_eq!(sink.body, Body::JsonArray);
        assert_eq!(sink.retry, RetryLimit::Count(5));
    }

    #[test]
    fn http_sink_oauth2_client_credentials() {
        let http = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![
                ("connector.class", "HttpSink"),
                ("http.api.url", "http://h"),
                ("topics", "t"),
                ("auth.type", "OAUTH2"),
            ];
            pairs.extend_from_slice(extra);
            sink_config("c", &config(&pairs))
        };
        let sink = http(&[
            ("oauth2.token.url", "http://auth/token"),
            ("oauth2.client.id", "id"),
            ("oauth2.client.secret", "secret"),
            ("oauth2.client.auth.mode", "URL"),
            ("oauth2.client.headers", "X-Tenant: t1|X-Trace:on"),
        ])
        .unwrap();
        assert_eq!(
            sink.auth,
            Auth::OAuth2(OAuth2 {
                token_url: "http://auth/token".into(),
                client_id: "id".into(),
                client_secret: "secret".into(),
                headers: vec![
                    ("X-Tenant".into(), "t1".into()),
                    ("X-Trace".into(), "on".into())
                ],
                token_property: "access_token".into(),
                scope: "any".into(),
                client_auth: OAuth2ClientAuth::Url,
            })
        );
        assert!(http(&[("oauth2.client.id", "id")])
            .unwrap_err()
            .contains("oauth2.token.url"));
        assert!(http(&[("oauth2.token.url", "http://auth/token")])
            .unwrap_err()
            .contains("oauth2.client.id"));
        assert!(http(&[
            ("oauth2.token.url", "auth/token"),
            ("oauth2.client.id", "id")
        ])
        .unwrap_err()
        .contains("http:// or https://"));
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let err = |pairs: &[(&str, &str)]| sink_config("c", &config(pairs)).unwrap_err();
        assert!(err(&[("topics", "a")]).contains("contains no connector type"));
        assert!(
            err(&[("connector.class", "com.example.Jdbc"), ("topics", "a")])
                .contains("AzureFunctionsSink")
        );
        assert!(
            err(&[("connector.class", "AzureFunctionsSink"), ("topics", "a")])
                .contains("function.url")
        );
        assert!(err(&[
            ("connector.class", "HttpSink"),
            ("http.api.url", "http://h"),
            ("topics", "a"),
            ("batch.max.size", "0"),
        ])
        .contains("at least 1"));
        assert!(err(&[
            ("connector.class", "HttpSink"),
            ("http.api.url", "http://h")
        ])
        .contains("topics"));
    }
}
