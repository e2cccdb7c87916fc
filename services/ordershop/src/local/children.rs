use std::{
    collections::HashMap,
    io::Write,
    net::{SocketAddr, TcpListener},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context;
use command_fds::{CommandFdExt, FdMapping};
use nix::{sys::signal::Signal, unistd::Pid};
use ordershop_grpc_auth::{
    CA_FILE_ENV, GrpcKey, KEY_ENV, ServerPki, TLS_CERT_ENV, TLS_KEY_ENV, TOKEN_ENV,
};
use ordershop_topology::Role;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::LocalArgs;
use super::redis_server::RoleUsers;
use crate::listeners;

/// One child process per role, restarted when it dies unexpectedly.
#[derive(Debug)]
pub(super) struct Supervisor {
    exe: PathBuf,
    env: Vec<(&'static str, String)>,
    /// This run's gRPC key: the event store and the queue get it, every
    /// other child only its own role's token, as on Kubernetes.
    grpc_key: GrpcKey,
    /// The Redis user of each role that uses Redis (the Redis started here).
    redis_users: RoleUsers,
    /// Every role's gRPC listener and the gateway's HTTP one, bound here and
    /// kept for the supervisor's lifetime: each child (and each restart of
    /// it) inherits its own (see `crate::listeners`).
    grpc: HashMap<Role, TcpListener>,
    http: TcpListener,
    run_dir: PathBuf,
    /// With `--trace`: where each role appends its spans.
    traces: Option<PathBuf>,
    children: HashMap<Role, Child>,
    /// When each child was (re)started, to tell a crash loop from the
    /// occasional crash.
    started: HashMap<Role, Instant>,
    /// Restarts in a row, each after less than [`STABLE_AFTER`] of running.
    restarts: HashMap<Role, u32>,
}

/// Where this run's gRPC TLS files are.
struct PkiFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A new CA and server certificate for the loopback addresses, written to
/// `run_dir` (the key readable by this user only). New on every run, like
/// the gRPC key: nothing outlives the processes that use it.
fn write_pki(run_dir: &Path) -> anyhow::Result<PkiFiles> {
    use std::os::unix::fs::OpenOptionsExt;
    let pki = ServerPki::generate(&["127.0.0.1", "localhost", "::1"])?;
    let files = PkiFiles {
        ca: run_dir.join("grpc-ca.pem"),
        cert: run_dir.join("grpc-tls.crt"),
        key: run_dir.join("grpc-tls.key"),
    };
    for (path, pem, mode) in [
        (&files.ca, &pki.ca_pem, 0o644),
        (&files.cert, &pki.cert_pem, 0o644),
        (&files.key, &pki.key_pem, 0o600),
    ] {
        // Replaced, not rewritten in place: an old file keeps its old mode.
        let _ = std::fs::remove_file(path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut file| file.write_all(pem.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(files)
}

/// A child that ran this long before it exited was not crash-looping: its
/// restart comes without a pause, however many times it died before.
const STABLE_AFTER: Duration = Duration::from_secs(10);

impl Supervisor {
    pub(super) fn new(
        args: &LocalArgs,
        redis_url: &str,
        data_dir: &Path,
        redis_users: RoleUsers,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the ordershop executable")?;
        let mut grpc = HashMap::new();
        for (offset, role) in Role::ALL.into_iter().enumerate() {
            let port = match args.base_port {
                0 => 0,
                base => base
                    .checked_add(offset as u16)
                    .context("--base-port leaves no room for every role")?,
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let listener = TcpListener::bind(addr).with_context(|| {
                format!(
                    "cannot listen on {addr} for {}; pick other ports with --base-port (0 picks free ones)",
                    role.slug()
                )
            })?;
            grpc.insert(role, listener);
        }
        let http = TcpListener::bind(args.http_listen).with_context(|| {
            format!(
                "cannot listen on {} for the UI and REST API; pick another address with --http-listen",
                args.http_listen
            )
        })?;
        let run_dir = data_dir.join("run");
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        // The API of the event store and the queue over TLS, as on
        // Kubernetes; probes and scrapes of the same ports stay plaintext.
        let url = |role: Role| -> anyhow::Result<String> {
            Ok(format!("https://{}", grpc[&role].local_addr()?))
        };
        let tls = write_pki(&run_dir)?;
        let env = vec![
            (TLS_CERT_ENV, tls.cert.display().to_string()),
            (TLS_KEY_ENV, tls.key.display().to_string()),
            (CA_FILE_ENV, tls.ca.display().to_string()),
            ("ORDERSHOP_REDIS_URL", redis_url.to_owned()),
            ("ORDERSHOP_EVENT_STORE_URL", url(Role::EventStore)?),
            ("ORDERSHOP_QUEUE_URL", url(Role::MessageQueue)?),
            ("ORDERSHOP_PARENT_PID", std::process::id().to_string()),
            ("ORDERSHOP_LEASE_MS", args.lease_ms.to_string()),
            ("ORDERSHOP_SNAPSHOT_EVERY", args.snapshot_every.to_string()),
            ("ORDERSHOP_CLAIM_IDLE_MS", args.claim_idle_ms.to_string()),
            (
                "ORDERSHOP_TRIM_STREAMS_EVERY",
                args.trim_streams_every.to_string(),
            ),
        ];
        let env = [env, args.redis_access.env()].concat();
        // An earlier run's address must not be mistaken for this one's.
        let _ = std::fs::remove_file(run_dir.join("http.addr"));
        let traces = if args.trace {
            let dir = super::traces_dir(data_dir);
            // This run's traces only: an earlier run's would mix in.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Some(dir)
        } else {
            None
        };
        Ok(Self {
            exe,
            env,
            grpc_key: GrpcKey::generate(),
            redis_users,
            grpc,
            http,
            run_dir,
            traces,
            children: HashMap::new(),
            started: HashMap::new(),
            restarts: HashMap::new(),
        })
    }

    pub(super) fn url_of(&self, role: Role) -> String {
        format!("http://{}", self.grpc_addr(role))
    }

    fn grpc_addr(&self, role: Role) -> SocketAddr {
        self.grpc[&role]
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the UI and REST API listen (the port `--http-listen …:0` got).
    pub(super) fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Writes the UI's address to `<data dir>/run/http.addr` (renamed into
    /// place, so a reader never sees half of it): how a script or test
    /// that asked for port 0 learns which one it got.
    ///
    /// Each role's gRPC address (where it also serves `GET /metrics`) goes
    /// to `<role>.grpc.addr` first, so once `http.addr` exists they all do.
    pub(super) fn publish_http_addr(&self) -> anyhow::Result<()> {
        for role in self.grpc.keys() {
            self.publish(&format!("{}.grpc.addr", role.slug()), self.grpc_addr(*role))?;
        }
        self.publish("http.addr", self.http_addr())
    }

    fn publish(&self, name: &str, addr: SocketAddr) -> anyhow::Result<()> {
        let path = self.run_dir.join(name);
        let partial = self.run_dir.join(format!("{name}.partial"));
        std::fs::write(&partial, addr.to_string())
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The descriptors `role` inherits, in `crate::listeners` order.
    fn inherited(&self, role: Role) -> anyhow::Result<Vec<FdMapping>> {
        let mut sockets = vec![&self.grpc[&role]];
        if role == Role::ApiGateway {
            sockets.push(&self.http);
        }
        sockets
            .into_iter()
            .enumerate()
            .map(|(index, listener)| {
                Ok(FdMapping {
                    parent_fd: OwnedFd::from(listener.try_clone()?),
                    child_fd: listeners::FIRST_FD + index as i32,
                })
            })
            .collect()
    }

    /// Starts `role`, forwarding its log lines prefixed with its name, and
    /// records its pid in `<data dir>/run/<role>.pid` (tests kill by it).
    pub(super) fn spawn(&mut self, role: Role) -> anyhow::Result<()> {
        let listen = self.grpc_addr(role).to_string();
        let inherited = self.inherited(role)?;
        let mut command = Command::new(&self.exe);
        command
            .arg(role.slug())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LISTEN_FDS", inherited.len().to_string())
            // Ours to set: a supervisor itself started by systemd must not
            // pass its own activation variables on (listenfd would then skip
            // ours for a pid mismatch).
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env("ORDERSHOP_LISTEN", &listen)
            .env("ORDERSHOP_HTTP_LISTEN", self.http_addr().to_string())
            // A stable name: after a crash the restarted process picks up
            // the events it had received but not acknowledged at once.
            .env("ORDERSHOP_INSTANCE", format!("local-{}", role.slug()))
            .env_remove(KEY_ENV)
            .env_remove(TOKEN_ENV)
            // One file per role, or none: never the supervisor's own.
            .env_remove("ORDERSHOP_TRACE_FILE");
        if let Some(dir) = &self.traces {
            command.env(
                "ORDERSHOP_TRACE_FILE",
                dir.join(format!("{}.jsonl", role.slug())),
            );
        }
        if let Some((username, password)) = self.redis_users.credentials(role) {
            command
                .env("ORDERSHOP_REDIS_USERNAME", username)
                .env("ORDERSHOP_REDIS_PASSWORD", password);
        }
        if role.is_infrastructure() {
            command.env(KEY_ENV, self.grpc_key.to_hex());
        } else {
            command.env(TOKEN_ENV, self.grpc_key.token(role).as_str());
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
            .fd_mappings(inherited)
            .context("inherited descriptors collide")?;
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", role.slug()))?;
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let prefix = role.slug();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    // Children log through tracing already; this only tags
                    // each line with the role it came from.
                    let _ = writeln!(std::io::stderr().lock(), "[{prefix:>13}] {line}");
                }
            });
        }
        if let Some(pid) = child.id() {
            let _ = std::fs::write(
                self.run_dir.join(format!("{}.pid", role.slug())),
                pid.to_string(),
            );
        }
        tracing::info!(role = role.slug(), %listen, "started");
        self.children.insert(role, child);
        self.started.insert(role, Instant::now());
        Ok(())
    }

    /// Restarts children that exit until `shutdown` fires.
    pub(super) async fn watch(&mut self, shutdown: &CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let exited: Vec<(Role, String)> = self
                .children
                .iter_mut()
                .filter_map(|(role, child)| match child.try_wait() {
                    Ok(Some(status)) => Some((*role, status.to_string())),
                    _ => None,
                })
                .collect();
            for (role, status) in exited {
                let stable = self
                    .started
                    .get(&role)
                    .is_some_and(|at| at.elapsed() >= STABLE_AFTER);
                let count = self.restarts.entry(role).or_default();
                *count = if stable { 1 } else { *count + 1 };
                // Back off a crash loop, but come back at once from a kill.
                let pause = Duration::from_millis(200 * u64::from((*count - 1).min(25)));
                tracing::warn!(role = role.slug(), %status, restarts = *count, ?pause, "exited; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                if let Err(err) = self.spawn(role) {
                    tracing::error!(role = role.slug(), error = %err, "restart failed");
                }
            }
        }
    }

    /// Stops the services first and the event store and queue last, so
    /// nothing loses its infrastructure while finishing work: SIGTERM to
    /// each group, SIGKILL to whatever still runs after `grace`.
    pub(super) async fn stop_all(&mut self, grace: Duration) {
        let (infra, services): (Vec<Role>, Vec<Role>) = Role::ALL
            .into_iter()
            .filter(|r| self.children.contains_key(r))
            .partition(|r| r.is_infrastructure());
        for group in [services, infra] {
            self.stop_group(&group, grace).await;
        }
    }

    async fn stop_group(&mut self, roles: &[Role], grace: Duration) {
        for role in roles {
            if let Some(pid) = self.children.get(role).and_then(Child::id) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        for role in roles {
            let Some(mut child) = self.children.remove(role) else {
                continue;
            };
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(role = role.slug(), "did not stop in time; killing");
                let _ = child.kill().await;
            }
            let _ = std::fs::remove_file(self.run_dir.join(format!("{}.pid", role.slug())));
        }
    }
}
