//! The test broker: `noida-db`'s Kafka service, started once per test binary and stopped
//! when the test process exits.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Broker {
    pub bootstrap: String,
    pub data_dir: PathBuf,
}

/// The broker of this test binary, started on first use. A test that needs it and cannot
/// have it fails with the reason.
pub fn broker() -> &'static Broker {
    static BROKER: OnceLock<Result<Broker, String>> = OnceLock::new();
    match BROKER.get_or_init(start) {
        Ok(b) => b,
        Err(reason) => panic!("the test broker is not available: {reason}"),
    }
}

/// The broker binary: `$NOIDA_DB_BIN`, else the one inside the installed Python package
/// (the `noida-db` on PATH is a wrapper whose child would outlive it).
fn binary() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("NOIDA_DB_BIN") {
        return Ok(PathBuf::from(path));
    }
    let out = Command::new("python3")
        .args(["-c", "import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), 'noida-db'))"])
        .output()
        .map_err(|e| format!("cannot run python3 to find noida-db: {e}"))?;
    if !out.status.success() {
        return Err(
            "noida-db is not installed (pip install noida-db==0.2.3, or run scripts/test.sh)"
                .into(),
        );
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    Ok(path)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn start() -> Result<Broker, String> {
    let bin = binary()?;
    let port = free_port()?;
    let data_dir =
        std::env::temp_dir().join(format!("brook-test-broker-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let log = data_dir.join("broker.log");
    // A watchdog shell owns the broker and stops it once this test process is gone, since
    // statics are never dropped.
    let script = format!(
        "'{bin}' start --only kafka --kafka-port {port} --data-dir '{dir}' >'{log}' 2>&1 & b=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $b 2>/dev/null; do sleep 0.5; done; kill $b 2>/dev/null; \
         wait $b; rm -rf '{dir}'",
        bin = bin.display(),
        dir = data_dir.display(),
        log = log.display(),
        pid = std::process::id(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_listening(port, &log)?;
    Ok(Broker {
        bootstrap: format!("127.0.0.1:{port}"),
        data_dir,
    })
}

fn wait_listening(port: u16, log: &std::path::Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "the broker did not listen on port {port} within 30s; its output:\n{output}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A broker of one test's own, which the test stops and starts again (on the same port,
/// with the same data) to see how Brook lives through a broker restart.
pub struct OwnBroker {
    pub broker: Broker,
    bin: PathBuf,
    port: u16,
    child: std::sync::Mutex<Option<std::process::Child>>,
}

impl OwnBroker {
    pub fn start() -> Self {
        let bin = binary().unwrap_or_else(|e| panic!("the test broker is not available: {e}"));
        let port = free_port().expect("a free port");
        let data_dir =
            std::env::temp_dir().join(format!("brook-own-broker-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir).expect("broker data dir");
        let own = Self {
            broker: Broker {
                bootstrap: format!("127.0.0.1:{port}"),
                data_dir,
            },
            bin,
            port,
            child: std::sync::Mutex::new(None),
        };
        own.resume();
        own
    }

    /// Stops the broker cleanly (SIGTERM: its data is saved) and waits for its exit.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): its connections stay open and nothing answers, as
    /// when a broker stalls or the network to it drops packets.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen broker go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = child.as_ref() {
            let status = Command::new("kill")
                .args([signal, &c.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success(), "kill {signal} of the broker failed");
        }
    }

    /// Starts the broker (again) and waits until it listens.
    pub fn resume(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if child.is_some() {
            return;
        }
        let log = self.broker.data_dir.join("broker.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("broker log");
        let started = Command::new(&self.bin)
            .args(["start", "--only", "kafka", "--kafka-port"])
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(&self.broker.data_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start the broker");
        *child = Some(started);
        wait_listening(self.port, &log).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.broker.data_dir);
    }
}
