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
pub(super) struct LocalRedis {
    child: Child,
    port: u16,
}

const INSTALL_HINT: &str = "install it with `sudo apt-get install -y redis-server` \
     (Debian/Ubuntu), or pass --redis-url redis://HOST:PORT to use a Redis you already run";

impl LocalRedis {
    pub(super) async fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let binary = find_or_install()?;
        let pidfile = dir.join("redis.pid");
        stop_stale(&pidfile).await;
        tracing::info!(port, dir = %dir.display(), "starting redis-server (AOF on)");
        let child = tokio::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--pidfile")
            .arg(&pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start redis-server")?;
        let mut redis = Self { child, port };
        redis.wait_ready().await?;
        Ok(redis)
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "redis-server exited ({status}); is port {} taken? Try --redis-port",
                    self.port
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "redis-server did not answer on port {} within 20 s",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM lets Redis flush its AOF before it exits.
    pub(super) async fn stop(mut self) {
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
