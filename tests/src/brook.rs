//! `brook` processes under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `brook` binary built beside this test binary (target/<profile>/brook, beside the
/// deps/ folder of test binaries or beside a binary such as the soak run).
pub fn brook_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let name = format!("brook{}", std::env::consts::EXE_SUFFIX);
    let dir = exe.parent().expect("target dir");
    let bin = match dir.join(&name) {
        beside if beside.exists() => beside,
        _ => dir.parent().unwrap_or(dir).join(&name),
    };
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p brook), as scripts/test.sh does",
        bin.display()
    );
    bin
}

/// Runs `brook ARGS` to its end: whether it succeeded, its stdout and its stderr.
pub fn run_brook<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String, String) {
    let out = Command::new(brook_binary())
        .args(args)
        .output()
        .expect("run brook");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `brook run`, its output going to files in a directory of its own.
pub struct BrookRun {
    child: Child,
    pub dir: PathBuf,
}

impl BrookRun {
    /// Starts `brook run` on `sql` (written to a file) with extra arguments.
    pub fn start(name: &str, sql: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(crate::unique(name));
        std::fs::create_dir_all(&dir).expect("run dir");
        let file = dir.join("statements.sql");
        std::fs::write(&file, sql).expect("write sql");
        Self::start_file(&dir, &file, args)
    }

    pub fn start_file(dir: &Path, file: &Path, args: &[&str]) -> Self {
        let file = file.display().to_string();
        let mut all = vec!["run", file.as_str()];
        all.extend_from_slice(args);
        Self::start_command(dir, &all)
    }

    /// Starts `brook server` with these arguments.
    pub fn start_server(name: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(crate::unique(name));
        std::fs::create_dir_all(&dir).expect("server dir");
        let mut all = vec!["server"];
        all.extend_from_slice(args);
        Self::start_command(&dir, &all)
    }

    /// Starts `brook server` for `service` on `listen` (host:port) with the broker at
    /// `bootstrap`, and waits until it answers `/info`.
    pub fn serve(
        name: &str,
        bootstrap: &str,
        listen: &str,
        service: &str,
        state_dir: &str,
    ) -> Self {
        Self::serve_with(name, bootstrap, listen, service, state_dir, &[])
    }

    /// `serve`, with more arguments.
    pub fn serve_with(
        name: &str,
        bootstrap: &str,
        listen: &str,
        service: &str,
        state_dir: &str,
        extra: &[&str],
    ) -> Self {
        let mut args = vec![
            "--listen",
            listen,
            "--bootstrap-servers",
            bootstrap,
            "--service-id",
            service,
            "--state-dir",
            state_dir,
        ];
        args.extend_from_slice(extra);
        let mut server = Self::start_server(name, &args);
        let info = format!("http://{listen}/info");
        let up = crate::wait_for(Duration::from_secs(60), || {
            if !server.is_running() {
                return Some(false);
            }
            ureq::get(&info).call().ok().map(|_| true)
        });
        assert!(
            up == Some(true),
            "{name} does not answer {info}; stderr:\n{}",
            server.stderr()
        );
        server
    }

    fn start_command(dir: &Path, args: &[&str]) -> Self {
        let stdout = std::fs::File::create(dir.join("stdout.log")).expect("stdout file");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr file");
        let child = Command::new(brook_binary())
            .args(args)
            // Info logs show what the process did (restores, rebalances) to assertions.
            .env(
                "BROOK_LOG",
                std::env::var("BROOK_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start brook");
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used so far (user + system), from /proc.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which is in parentheses and may hold spaces).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // Linux reports in clock ticks of 1/100 s (USER_HZ) on every mainstream platform.
        Some(Duration::from_millis(ticks * 10))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until stdout contains `text`; panics with both outputs if it does not in time
    /// or if the process exits first.
    pub fn wait_for_stdout(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stdout().contains(text) {
            if !self.is_running() || Instant::now() > deadline {
                panic!(
                    "brook did not print {text:?} (running: {})\nstdout:\n{}\nstderr:\n{}",
                    self.is_running(),
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "brook did not stop within 60s of SIGTERM\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.stdout(), self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "brook did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for BrookRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
