use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{process::Child, time::Instant};

/// The Redis that `ordershop local` runs for itself: loopback only, AOF on,
/// data in a folder it owns, so orders survive a restart of the shop.
#[derive(Debug)]
pub(crate) struct LocalRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    options: RedisOptions,
}

/// How the local Redis runs (see `ordershop local --help`).
#[derive(Debug, Clone)]
pub(crate) struct RedisOptions {
    /// 0 picks a free port.
    pub(crate) port: u16,
    pub(crate) maxmemory: String,
    pub(crate) appendfsync: AppendFsync,
    /// A config file of `user` lines Redis includes (see [`RoleUsers`]).
    pub(crate) acl_file: Option<PathBuf>,
}

/// One Redis user per role that uses Redis, with the rights of
/// `services/topology` and a password made for this run; the default user
/// (no password, loopback only) stays for `ordershop local` itself.
#[derive(Clone, Default)]
pub(crate) struct RoleUsers(std::collections::HashMap<ordershop_topology::Role, String>);

impl std::fmt::Debug for RoleUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl RoleUsers {
    pub(crate) fn generate() -> Self {
        use rand::{Rng, distr::Alphanumeric};
        Self(
            ordershop_topology::Role::ALL
                .into_iter()
                .filter(|role| role.uses_redis())
                .map(|role| {
                    let password: String = rand::rng()
                        .sample_iter(Alphanumeric)
                        .take(32)
                        .map(char::from)
                        .collect();
                    (role, password)
                })
                .collect(),
        )
    }

    /// Writes the `user` lines to `path`, readable by this user only.
    pub(crate) fn write(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let lines: String = self
            .0
            .iter()
            .filter_map(|(role, password)| role.redis_acl_line(password))
            .collect();
        let _ = std::fs::remove_file(path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(lines.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The user name and password `role` connects with, if it has a user.
    pub(crate) fn credentials(&self, role: ordershop_topology::Role) -> Option<(&str, &str)> {
        self.0
            .get(&role)
            .map(|password| (role.slug(), password.as_str()))
    }
}

/// Redis' `appendfsync`: when the append-only file is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AppendFsync {
    Always,
    Everysec,
}

impl AppendFsync {
    fn as_redis_arg(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
        }
    }
}

/// Redis's own log, in its data folder.
const LOG_FILE: &str = "redis.log";

const INSTALL_HINT: &str = "install it with `sudo apt-get install -y redis-server` \
     (Debian/Ubuntu), or pass --redis-url redis://HOST:PORT to use a Redis you already run";

impl LocalRedis {
    /// Starts Redis on `port`; 0 picks a free one, and another if some
    /// other process binds it before Redis does.
    pub(crate) async fn start(dir: &Path, options: &RedisOptions) -> anyhow::Result<Self> {
        let port = options.port;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let binary = find_or_install()?;
        let pidfile = dir.join("redis.pid");
        stop_stale(&pidfile).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let candidate = if port == 0 { free_port()? } else { port };
            let redis = Self::launch(&binary, dir, &pidfile, candidate, options)?;
            match redis.ready().await {
                Ok(redis) => return Ok(redis),
                Err(Start::PortTaken(_)) if port == 0 && attempt < 5 => {
                    tracing::info!(port = candidate, "port taken meanwhile; trying another");
                }
                Err(start) => return Err(start.into_error()),
            }
        }
    }

    /// Kills Redis without warning, as a crash would, and starts it again
    /// on the same port and folder: what it acknowledged comes back from
    /// the AOF (a killed process loses nothing the kernel already holds).
    pub(crate) async fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .context("cannot kill redis-server")?;
        let pidfile = self.dir.join("redis.pid");
        let restarted = Self::launch(&self.binary, &self.dir, &pidfile, self.port, &self.options)?;
        *self = restarted.ready().await.map_err(Start::into_error)?;
        Ok(())
    }

    fn launch(
        binary: &Path,
        dir: &Path,
        pidfile: &Path,
        port: u16,
        options: &RedisOptions,
    ) -> anyhow::Result<Self> {
        let fsync = options.appendfsync.as_redis_arg();
        tracing::info!(port, dir = %dir.display(), maxmemory = %options.maxmemory, appendfsync = fsync, "starting redis-server (AOF on)");
        let child = tokio::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"])
            .args(["--appendfsync", fsync])
            .args(["--maxmemory", &options.maxmemory])
            .args(["--maxmemory-policy", "noeviction"])
            .args(
                options
                    .acl_file
                    .iter()
                    .flat_map(|file| [std::ffi::OsStr::new("--include"), file.as_os_str()]),
            )
            .arg("--dir")
            .arg(dir)
            .arg("--pidfile")
            .arg(pidfile)
            .arg("--logfile")
            .arg(dir.join(LOG_FILE))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start redis-server")?;
        Ok(Self {
            child,
            port,
            dir: dir.to_path_buf(),
            binary: binary.to_path_buf(),
            options: options.clone(),
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Ready once the server on the port answers as our child: a PING alone
    /// could be answered by another Redis that owns the port.
    async fn ready(mut self) -> Result<Self, Start> {
        let client = redis::Client::open(self.url()).map_err(|e| Start::Failed(e.into()))?;
        let ours = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if ours.is_some() && answering_pid(&client).await == ours {
                return Ok(self);
            }
            if let Some(status) = self.child.try_wait().map_err(|e| Start::Failed(e.into()))? {
                let log = self.dir.join(LOG_FILE);
                let tail = log_tail(&log);
                if tail.contains("Address already in use") {
                    return Err(Start::PortTaken(self.port));
                }
                return Err(Start::Failed(anyhow::anyhow!(
                    "redis-server exited ({status}); its log ({}) ends:\n{tail}",
                    log.display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Start::Failed(anyhow::anyhow!(
                    "redis-server did not answer on port {} within 20 s",
                    self.port
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM lets Redis flush its AOF before it exits.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

enum Start {
    /// The server exited before answering: most likely its port was taken.
    PortTaken(u16),
    Failed(anyhow::Error),
}

impl Start {
    fn into_error(self) -> anyhow::Error {
        match self {
            Start::PortTaken(port) => anyhow::anyhow!(
                "redis-server cannot listen on port {port} (taken); pick another with --redis-port (0 picks a free one)"
            ),
            Start::Failed(err) => err,
        }
    }
}

/// The last lines of Redis's log (it is appended to across runs).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// `process_id` from `INFO server` of whatever answers.
async fn answering_pid(client: &redis::Client) -> Option<u32> {
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// A loopback port outside the ephemeral range (see
/// `ordershop_redis::server_port`), so that no outgoing connection takes it
/// before Redis binds it — at the start, or when the chaos run restarts it.
fn free_port() -> anyhow::Result<u16> {
    Ok(ordershop_redis::free_server_port()?)
}

/// `redis-server` from PATH; when missing and we are root on Debian, the
/// package is installed (the quick start promises a fresh machine works).
fn find_or_install() -> anyhow::Result<PathBuf> {
    if let Some(path) = which("redis-server") {
        return Ok(path);
    }
    let root = nix::unistd::Uid::effective().is_root();
    if root && which("apt-get").is_some() {
        tracing::info!("redis-server not found; installing the Debian package redis-server");
        for args in [
            &["update", "-qq"][..],
            &["install", "-y", "-qq", "redis-server"][..],
        ] {
            let status = std::process::Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .context("cannot run apt-get")?;
            if !status.success() {
                bail!("apt-get {} failed; {INSTALL_HINT}", args.join(" "));
            }
        }
        if let Some(path) = which("redis-server") {
            return Ok(path);
        }
    }
    bail!("redis-server not found; {INSTALL_HINT}")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

/// A Redis left behind by a supervisor that was killed: stop it, so the
/// port and the AOF are ours again.
async fn stop_stale(pidfile: &Path) {
    let Ok(text) = std::fs::read_to_string(pidfile) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !cmdline.contains("redis-server") {
        return;
    }
    tracing::warn!(pid, "stopping a redis-server left over from an earlier run");
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && std::path::Path::new(&format!("/proc/{pid}")).exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
