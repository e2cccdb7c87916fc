//! `ordershop local`: the whole shop on one machine, for developers and the
//! client test suite. A supervisor starts a Redis of its own (data and AOF
//! under a folder it owns) unless `--redis-url` names one, then one child
//! process per role (the same binary), restarts a child that crashes, and
//! on Ctrl-C or SIGTERM stops them all — children also stop by themselves
//! if the supervisor is killed, so nothing is orphaned.

mod children;
mod readiness;
pub(crate) mod redis_server;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use ordershop_topology::Role;

use self::{
    children::Supervisor,
    redis_server::{AppendFsync, LocalRedis, RedisOptions, RoleUsers},
};
use crate::shutdown;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LocalArgs {
    /// Use this Redis instead of starting one (`rediss://` for TLS).
    #[arg(long)]
    redis_url: Option<String>,
    /// With --redis-url: its password and CA, handed to every service.
    #[command(flatten)]
    pub(crate) redis_access: crate::cli::RedisAccess,
    /// Port of the Redis started here (not 6379, to leave a system Redis
    /// be); 0 picks a free one.
    #[arg(long, default_value_t = 6399)]
    redis_port: u16,
    /// Memory cap of the Redis started here. It evicts nothing: when full,
    /// writes are refused with a clear error and nothing stored is lost.
    #[arg(long, default_value = "1gb")]
    redis_maxmemory: String,
    /// When the Redis started here forces its append-only file to disk:
    /// `everysec` (a crash of the machine may lose the last second of
    /// acknowledged writes) or `always` (none, at a throughput cost; see the
    /// README's figures).
    #[arg(long, value_enum, default_value_t = AppendFsync::Everysec)]
    redis_appendfsync: AppendFsync,
    /// Where the local Redis keeps its data and the supervisor its pid files.
    #[arg(long, env = "ORDERSHOP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The UI and REST API. Loopback by default: a developer run is not
    /// meant to be reachable from the network. Port 0 picks a free one; the
    /// address taken is logged and written to `<data dir>/run/http.addr`.
    #[arg(long, default_value = "127.0.0.1:5000")]
    http_listen: SocketAddr,
    /// First gRPC port; each role takes the next one. 0 picks free ports.
    #[arg(long, default_value_t = 50051)]
    base_port: u16,
    /// Passed to every service (see `ordershop customer --help`).
    #[arg(long, default_value_t = 10_000)]
    lease_ms: u64,
    /// Passed to every service with a view (see `ordershop order --help`);
    /// 0 turns snapshots off.
    #[arg(long, env = "ORDERSHOP_SNAPSHOT_EVERY", default_value_t = 20_000)]
    snapshot_every: u64,
    /// Passed to the event store.
    #[arg(long, default_value_t = 15_000)]
    claim_idle_ms: u64,
    /// Passed to the event store (see `ordershop event-store --help`); 0
    /// keeps every event.
    #[arg(long, env = "ORDERSHOP_TRIM_STREAMS_EVERY", default_value_t = 0)]
    trim_streams_every: u64,
    /// Stop when the process that started this one exits (test harnesses
    /// use it, so a crashed test run leaves no shop behind).
    #[arg(long)]
    watch_parent: bool,
    /// Record every role's spans in `<data dir>/run/traces` (emptied at
    /// start), for `ordershop trace`: one trace per order flow. Costs CPU;
    /// off by default. An OTLP collector (`--otlp-endpoint`) works alike.
    #[arg(long, env = "ORDERSHOP_LOCAL_TRACE")]
    pub(crate) trace: bool,
}

impl LocalArgs {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

/// Where `ordershop local` keeps its data unless told otherwise.
pub(crate) fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ordershop")
}

/// The directory of a run's trace files (`--trace`): one per role.
pub(crate) fn traces_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("run").join("traces")
}

pub(crate) async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signals();
    if args.watch_parent {
        let parent = nix::unistd::getppid().as_raw() as u32;
        crate::parent_watch::stop_when_parent_dies(parent, shutdown.clone());
    }
    let data_dir = args.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;

    let mut local_redis = None;
    // Only for the Redis started here; one of --redis-url is the user's.
    let mut role_users = RoleUsers::default();
    let redis_url = match &args.redis_url {
        Some(url) => {
            tracing::info!(%url, "using the given Redis");
            // Refused here, once, rather than by every service in a loop.
            ordershop_redis::client(url, &args.redis_access.options())?;
            url.clone()
        }
        None if args.redis_access.redis_password.is_some()
            || args.redis_access.redis_username.is_some()
            || args.redis_access.redis_ca_file.is_some() =>
        {
            anyhow::bail!(
                "--redis-username, --redis-password and --redis-ca-file (ORDERSHOP_REDIS_USERNAME, ORDERSHOP_REDIS_PASSWORD, ORDERSHOP_REDIS_CA_FILE) are for the Redis of --redis-url; the Redis started here needs none"
            );
        }
        None => {
            let redis_dir = data_dir.join("redis");
            std::fs::create_dir_all(&redis_dir)
                .with_context(|| format!("cannot create {}", redis_dir.display()))?;
            let acl_file = redis_dir.join("users.acl.conf");
            role_users = RoleUsers::generate();
            role_users.write(&acl_file)?;
            let options = RedisOptions {
                port: args.redis_port,
                maxmemory: args.redis_maxmemory.clone(),
                appendfsync: args.redis_appendfsync,
                acl_file: Some(acl_file),
            };
            let redis = LocalRedis::start(&redis_dir, &options).await?;
            let url = redis.url();
            local_redis = Some(redis);
            url
        }
    };

    let mut supervisor = Supervisor::new(&args, &redis_url, &data_dir, role_users)?;
    let result = bring_up(&mut supervisor, &shutdown).await;
    if result.is_ok() {
        tracing::info!(
            "OrderShop is running: UI at http://{} (Ctrl-C to stop)",
            display_addr(supervisor.http_addr())
        );
        supervisor.watch(&shutdown).await;
    }
    // Long enough for a service to store the snapshot it takes at
    // shutdown (`ViewSettings::shutdown_snapshot_budget`, 15 s); a service
    // with nothing to store stops at once.
    supervisor.stop_all(Duration::from_secs(20)).await;
    if let Some(redis) = local_redis {
        redis.stop().await;
    }
    tracing::info!("stopped");
    result
}

/// Infrastructure first (the others retry until it answers anyway, but
/// starting in order keeps the first minute's logs quiet), then the rest.
async fn bring_up(
    supervisor: &mut Supervisor,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    for role in [Role::EventStore, Role::MessageQueue] {
        supervisor.spawn(role)?;
    }
    readiness::wait_grpc_infra(supervisor, shutdown).await?;
    for role in Role::ALL.into_iter().filter(|r| !r.is_infrastructure()) {
        supervisor.spawn(role)?;
    }
    readiness::wait_http(supervisor.http_addr(), shutdown).await?;
    supervisor.publish_http_addr()
}

fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}
