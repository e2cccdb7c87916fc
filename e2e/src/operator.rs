//! The operator under test, as a child process running out of cluster.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::install;

/// The operator binary: `$ORDERSHOP_OPERATOR_BIN`, else the workspace's
/// debug build (`$CARGO_TARGET_DIR` or `target/`).
pub fn binary() -> PathBuf {
    let path = std::env::var_os("ORDERSHOP_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::repo_root().join("target"));
            target.join("debug/ordershop-operator")
        });
    assert!(
        path.is_file(),
        "operator binary {} not found: run `cargo build -p ordershop-operator` first, or set ORDERSHOP_OPERATOR_BIN",
        path.display()
    );
    path
}

/// How to start one operator process.
#[derive(Debug, Clone)]
pub struct Options {
    /// Identity in the election and in Events; also names the log file.
    pub identity: String,
    /// Only OrderShops of this namespace (one test's) are reconciled.
    pub watch_namespace: String,
    /// The test's own Lease, so tests never compete with each other.
    pub lease_name: String,
    pub lease_duration: Duration,
    pub lease_grace: Duration,
}

impl Options {
    /// One operator for the test namespace `namespace`.
    pub fn for_namespace(namespace: &str) -> Self {
        Self {
            identity: format!("{namespace}-a"),
            watch_namespace: namespace.to_string(),
            lease_name: format!("e2e-{namespace}"),
            // Short, so takeover tests finish quickly; the grace (renewal
            // ahead of expiry) leaves room for a slow API server on a busy
            // machine, so the leader never lapses by accident.
            lease_duration: Duration::from_secs(8),
            lease_grace: Duration::from_secs(4),
        }
    }

    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }
}

/// A running operator; killed when dropped.
#[derive(Debug)]
pub struct Operator {
    child: Child,
    pub options: Options,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Operator {
    /// Starts the operator with the chart's ServiceAccount identity.
    pub fn start(options: Options) -> Self {
        let installed = install::chart();
        let admin: SocketAddr = format!("127.0.0.1:{}", ordershop_testkit::free_port())
            .parse()
            .expect("socket address");
        let log = crate::work_dir().join(format!("operator-{}.log", options.identity));
        let log_file = File::create(&log).expect("creating the operator log");
        let child = Command::new(binary())
            .arg("run")
            .arg(format!("--admin-listen={admin}"))
            .arg(format!("--watch-namespace={}", options.watch_namespace))
            .arg(format!("--operator-namespace={}", install::NAMESPACE))
            .arg(format!("--lease-name={}", options.lease_name))
            .arg(format!(
                "--lease-duration-seconds={}",
                options.lease_duration.as_secs()
            ))
            .arg(format!(
                "--lease-grace-seconds={}",
                options.lease_grace.as_secs()
            ))
            .arg(format!("--identity={}", options.identity))
            .arg("--log-format=text")
            .env("KUBECONFIG", &installed.operator_kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("ORDERSHOP_E2E_OPERATOR_LOG")
                    .unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary().display()));
        Self {
            child,
            options,
            admin,
            log,
        }
    }

    /// The last lines of the operator's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::Client::new()
            .get(format!("http://{}{path}", self.admin))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// The operator's Prometheus exposition, if it answers.
    pub async fn metrics(&self) -> Option<String> {
        self.admin_get("/metrics").await.map(|(_, body)| body)
    }

    /// The value of an unlabelled metric (e.g. `ordershop_operator_leader`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await?;
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        matches!(self.admin_get("/readyz").await, Some((200, _)))
    }

    /// The process id (for resource measurements).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no cleanup, the Lease stays held until it lapses.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `grace` for the exit; returns whether it
    /// exited on its own with status 0 (it is killed otherwise).
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- operator {} log tail ({}):\n{}",
                self.options.identity,
                self.log.display(),
                self.log_tail()
            );
        }
        if self.running() {
            self.kill();
        }
    }
}
