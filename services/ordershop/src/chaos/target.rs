//! The shop a chaos run hurts: a Redis of its own (so the run can crash
//! and restart it) and `ordershop local` on free loopback ports, both in
//! one folder that nothing else uses.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use ordershop_topology::Role;
use tokio::{process::Child, time::Instant};

use crate::local::redis_server::{AppendFsync, LocalRedis, RedisOptions};

/// How long `ordershop local` may take to answer HTTP.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The supervisor's own log (the roles' lines, tagged), in the run's folder.
const LOCAL_LOG: &str = "local.log";

#[derive(Debug)]
pub(super) struct ShopUnderTest {
    dir: PathBuf,
    pub(super) redis: LocalRedis,
    local: Child,
    /// `http://127.0.0.1:<port>`.
    pub(super) http_url: String,
}

/// Leases and claim times of the shop under test: short, so that pausing
/// the event store or the queue for longer than one takes seconds, not
/// minutes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leases {
    pub(super) lease: Duration,
    pub(super) claim_idle: Duration,
}

impl ShopUnderTest {
    pub(super) async fn start(
        dir: &Path,
        leases: Leases,
        appendfsync: AppendFsync,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let redis = LocalRedis::start(
            &dir.join("redis"),
            &RedisOptions {
                port: 0,
                maxmemory: "1gb".into(),
                appendfsync,
                // It restarts this Redis and drops its connections; the
                // shop uses it as a --redis-url one (the default user).
                acl_file: None,
            },
        )
        .await?;
        let log = std::fs::File::create(dir.join(LOCAL_LOG))
            .with_context(|| format!("cannot create {}", dir.join(LOCAL_LOG).display()))?;
        let exe = std::env::current_exe().context("cannot find the ordershop executable")?;
        let local = tokio::process::Command::new(exe)
            .arg("local")
            .args(["--redis-url", &redis.url()])
            .args(["--base-port", "0", "--http-listen", "127.0.0.1:0"])
            .args(["--lease-ms", &leases.lease.as_millis().to_string()])
            .args([
                "--claim-idle-ms",
                &leases.claim_idle.as_millis().to_string(),
            ])
            .arg("--data-dir")
            .arg(dir)
            .arg("--watch-parent")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start ordershop local")?;
        let mut shop = Self {
            dir: dir.to_path_buf(),
            redis,
            local,
            http_url: String::new(),
        };
        shop.http_url = format!("http://{}", shop.wait_http_addr().await?);
        Ok(shop)
    }

    /// The address `ordershop local` publishes once its UI answers.
    async fn wait_http_addr(&mut self) -> anyhow::Result<String> {
        let path = self.dir.join("run/http.addr");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(addr) = std::fs::read_to_string(&path) {
                return Ok(addr.trim().to_owned());
            }
            if let Some(status) = self.local.try_wait()? {
                bail!(
                    "ordershop local exited ({status}) before it answered; see {}",
                    self.dir.join(LOCAL_LOG).display()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "ordershop local did not answer within {START_TIMEOUT:?}; see {}",
                    self.dir.join(LOCAL_LOG).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The pid of `role`'s current process, as its supervisor recorded it.
    pub(super) fn pid(&self, role: Role) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("run/{}.pid", role.slug())))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(super) fn redis_client(&self) -> anyhow::Result<redis::Client> {
        Ok(redis::Client::open(self.redis.url())?)
    }

    /// SIGTERM to the supervisor (it stops every role), then Redis.
    pub(super) async fn stop(mut self) {
        if let Some(pid) = self.local.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(15), self.local.wait())
            .await
            .is_err()
        {
            let _ = self.local.kill().await;
        }
        self.redis.stop().await;
    }
}
