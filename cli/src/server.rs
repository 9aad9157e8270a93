//! `brook server`: the ksqlDB-compatible REST API over one engine.

use crate::engine_args::{start_engine, EngineArgs};
use crate::run::wait_for_signal;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where to listen for HTTP requests (default 0.0.0.0:8088, or the config file's
    /// `listeners`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A server config file (Java properties, as ksqlDB's ksql-server.properties):
    /// `listeners`, `bootstrap.servers`, `ksql.service.id`, `ksql.streams.state.dir`,
    /// `ksql.schema.registry.url`, Kafka client settings (`security.protocol`, `sasl.*`,
    /// `ssl.*`, and any `ksql.streams.*`), `authentication.method=BASIC` with
    /// `authentication.basic.users.file` and `authentication.realm`, and
    /// `listener.tls.certificate.location` / `listener.tls.key.location` (PEM) for HTTPS,
    /// and the server's limits (`ksql.max.push.queries`, `ksql.query.pull.max.*`,
    /// `ksql.idle.connection.timeout.seconds`, `brook.server.request.*`).
    /// Command-line options win over the file.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Headless mode: run this file's statements at start; /ksql then takes none.
    #[arg(long)]
    queries_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

pub async fn run(mut args: ServerArgs) -> ExitCode {
    let listener = match listener(&mut args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (engine, embedded) = match start_engine(&args.engine).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut session = brook_engine::Session::new(engine.clone());
    if let Some(file) = &args.queries_file {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let statements = match brook_sql::parse_statements(&text, &mut Default::default()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}:{}:{}: {e}", e.position.line, e.position.column);
                return ExitCode::FAILURE;
            }
        };
        let code = crate::run::run_statements(&name, &statements, &mut session).await;
        if code != ExitCode::SUCCESS {
            engine.shutdown().await;
            return code;
        }
    }
    let mode = if args.queries_file.is_some() {
        brook_server::Mode::Headless
    } else {
        brook_server::Mode::Interactive
    };
    let served = brook_server::serve(engine.clone(), listener, mode, wait_for_signal()).await;
    drop(session);
    eprintln!("Stopping: committing processed offsets and leaving consumer groups.");
    engine.shutdown().await;
    drop(engine);
    drop(embedded);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the config file into the arguments not given on the command line; the listener.
fn listener(args: &mut ServerArgs) -> Result<brook_server::Listener, String> {
    let mut config = std::collections::HashMap::new();
    if let Some(path) = &args.config {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        config = java_properties::read(std::io::BufReader::new(file))
            .map_err(|e| format!("{} is not a properties file: {e}", path.display()))?;
    }
    args.engine.fill_from(&config);
    let get = |k: &str| {
        config
            .get(k)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim())
    };
    let (address, https) = match (args.listen, get("listeners")) {
        (Some(address), _) => (address, None),
        (None, Some(listeners)) => {
            let first = listeners.split(',').next().unwrap_or_default().trim();
            let (scheme, rest) = first.split_once("://").ok_or_else(|| {
                format!("listeners must be http://host:port or https://host:port, not {first}")
            })?;
            let address: SocketAddr = rest
                .trim_end_matches('/')
                .parse()
                .map_err(|e| format!("listeners: {rest} is not host:port ({e})"))?;
            match scheme {
                "http" => (address, Some(false)),
                "https" => (address, Some(true)),
                other => return Err(format!("listeners: unknown scheme {other}")),
            }
        }
        (None, None) => (SocketAddr::from(([0, 0, 0, 0], 8088)), None),
    };
    let tls = match (
        get("listener.tls.certificate.location"),
        get("listener.tls.key.location"),
    ) {
        (Some(c), Some(k)) => Some((c.into(), k.into())),
        (None, None) if https == Some(true) => {
            return Err("an https listener needs listener.tls.certificate.location and listener.tls.key.location".into())
        }
        (None, None) => None,
        _ => {
            return Err(
                "listener.tls.certificate.location and listener.tls.key.location go together"
                    .into(),
            )
        }
    };
    if tls.is_some() && https == Some(false) {
        return Err("listeners says http, but TLS files are configured: use https://".into());
    }
    let basic_auth = match get("authentication.method") {
        None | Some("NONE") => None,
        Some("BASIC") => {
            let users = get("authentication.basic.users.file")
                .ok_or("authentication.method=BASIC needs authentication.basic.users.file")?;
            let realm = get("authentication.realm").unwrap_or("Brook");
            Some(brook_server::BasicAuth::from_file(
                std::path::Path::new(users),
                realm,
            )?)
        }
        Some(other) => {
            return Err(format!(
                "authentication.method {other} is not supported: BASIC or NONE"
            ))
        }
    };
    Ok(brook_server::Listener {
        address,
        tls,
        basic_auth,
    })
}
