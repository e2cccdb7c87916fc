use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::ports::free_port;

/// How to get the server when it is missing: said in every failure.
const INSTALL_HINT: &str = "install it with `apt-get install -y redis-server` (Debian/Ubuntu), \
     or point REDIS_URL at a running Redis 7";

#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    #[error("redis-server could not be started: {source}; {INSTALL_HINT}")]
    Spawn { source: std::io::Error },
    #[error("redis-server on port {port} did not accept connections within {waited:?}: {log}")]
    NotReady {
        port: u16,
        waited: Duration,
        log: String,
    },
    #[error("temporary folder: {0}")]
    TempDir(std::io::Error),
}

/// A real `redis-server` for tests, stopped (and its data removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    port: u16,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts a private server, or reuses `REDIS_URL` when it is set.
    ///
    /// Panics with an install hint when no server can be had: a test that
    /// needs Redis must fail loudly, not skip.
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Self {
                port: port_of(&url),
                url,
                child: None,
                dir: None,
            };
        }
        Self::spawn(&[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a private server with extra `redis-server` arguments
    /// (e.g. `["--appendonly", "yes"]`), ignoring `REDIS_URL`.
    pub fn spawn(extra_args: &[&str]) -> Result<Self, RedisServerError> {
        let dir = tempfile::Builder::new()
            .prefix("ordershop-redis-")
            .tempdir()
            .map_err(RedisServerError::TempDir)?;
        // Another process may bind the picked port first (an explicit bind:
        // see `free_port`); then this server exits and another port is tried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let child = Self::launch(port, dir.path().to_path_buf(), extra_args)?;
            let mut server = Self {
                url: format!("redis://127.0.0.1:{port}/"),
                port,
                child: Some(child),
                dir: None,
            };
            match server.wait_ready(extra_args) {
                Ok(()) => {
                    server.dir = Some(dir);
                    return Ok(server);
                }
                Err(RedisServerError::NotReady { ref log, .. })
                    if attempt < 5 && log.contains("Address already in use") =>
                {
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn launch(port: u16, dir: PathBuf, extra_args: &[&str]) -> Result<Child, RedisServerError> {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
            // As everywhere OrderShop starts Redis: full means refusing
            // writes, never evicting data.
            .args(["--maxmemory", "1gb", "--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&dir)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RedisServerError::Spawn { source })
    }

    /// Ready when the server on our port answers and is our child: a
    /// connection alone could reach another process that owns the port.
    fn wait_ready(&mut self, extra_args: &[&str]) -> Result<(), RedisServerError> {
        let waited = Duration::from_secs(10);
        let start = Instant::now();
        let ours = self.child.as_ref().map(Child::id);
        while start.elapsed() < waited {
            if let Some(pid) = self.answering_pid(extra_args)
                && (ours.is_none() || ours == Some(pid))
            {
                return Ok(());
            }
            // A server that exited (bad argument, port taken) says why on stdout.
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                let log = child
                    .stdout
                    .take()
                    .map(|out| {
                        BufReader::new(out)
                            .lines()
                            .map_while(Result::ok)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                return Err(RedisServerError::NotReady {
                    port: self.port,
                    waited: start.elapsed(),
                    log,
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err(RedisServerError::NotReady {
            port: self.port,
            waited,
            log: "still not listening".into(),
        })
    }

    /// `process_id` from `INFO server` of whatever answers on the port.
    fn answering_pid(&self, extra_args: &[&str]) -> Option<u32> {
        let password = extra_args
            .windows(2)
            .find(|pair| pair[0] == "--requirepass")
            .map(|pair| pair[1]);
        // Given apart from the URL, so any password works unescaped.
        let mut info = redis::IntoConnectionInfo::into_connection_info(self.url.as_str()).ok()?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server abruptly (SIGKILL), keeping its data folder, to
    /// test what clients do while Redis is down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(out) = child.stdout.take() {
                // Drain so the pipe does not hold the process table entry.
                let _ = BufReader::new(out).lines().count();
            }
        }
    }

    /// Starts the server again on the same port and folder after [`kill`].
    ///
    /// [`kill`]: RedisServer::kill
    pub fn restart(&mut self, extra_args: &[&str]) -> Result<(), RedisServerError> {
        self.kill();
        let dir = self
            .dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_else(std::env::temp_dir);
        self.child = Some(Self::launch(self.port, dir, extra_args)?);
        self.wait_ready(extra_args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|tail| tail.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(6379)
}
