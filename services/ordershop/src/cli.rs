//! Command line: one subcommand per role, every option with an environment
//! fallback so Kubernetes manifests configure it through `env:`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use ordershop_client::Connector;
use ordershop_proto::tls::ServerTls;

use clap::{Args, Parser, Subcommand};
use ordershop_grpc_auth::{Authenticator, Credentials, GrpcKey, KEY_ENV, RoleToken, TOKEN_ENV};
use ordershop_topology::Role;

use crate::telemetry::{self, LogFormat};
use ordershop_trace::ExportOptions;

#[derive(Debug, Parser)]
#[command(
    name = "ordershop",
    version,
    about = "OrderShop: an event-sourced shop on Redis Streams and Lists"
)]
pub(crate) struct Cli {
    #[arg(
        long,
        env = "ORDERSHOP_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    /// Export spans (one trace per order flow) to this OTLP/gRPC collector,
    /// e.g. http://otel-collector:4317. Off unless set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    otlp_endpoint: Option<String>,
    /// Append spans as JSON lines to this file (`ordershop local --trace`
    /// sets one per role; `ordershop trace` reads them). Off unless set.
    #[arg(long, env = "ORDERSHOP_TRACE_FILE", global = true)]
    trace_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The event store (gRPC over Redis Streams).
    EventStore(RoleArgs),
    /// The message queue (gRPC over Redis Lists).
    MessageQueue(RoleArgs),
    /// The read model: entities folded from events, answering queries.
    ReadModel(RoleArgs),
    /// The API gateway: REST API and live UI over HTTP.
    ApiGateway(RoleArgs),
    Customer(RoleArgs),
    Product(RoleArgs),
    Inventory(RoleArgs),
    Cart(RoleArgs),
    Order(RoleArgs),
    Billing(RoleArgs),
    Shipping(RoleArgs),
    /// Turns domain events into mails.
    Crm(RoleArgs),
    /// Sends mails (records them as `mail_sent` events).
    Mail(RoleArgs),
    /// Everything on this machine: a Redis of its own (unless --redis-url)
    /// and one process per service; the UI at http://localhost:5000.
    Local(crate::local::LocalArgs),
    /// What the event store and the queue gave up on: list, show, redrive.
    DeadLetters(crate::dead_letters::DeadLetterArgs),
    /// Order flows against a shop of its own while its parts are killed,
    /// paused and restarted; then checks that every flow and effect is
    /// accounted for. Loopback only; stops by itself.
    Chaos(crate::chaos::ChaosArgs),
    /// A flow's spans across every role as a tree, from the trace files of
    /// `ordershop local --trace`; without a trace id, the latest traces.
    Trace(crate::trace::TraceArgs),
}

/// What a Redis connection needs beyond its URL (`ordershop_redis::RedisOptions`).
#[derive(Clone, Args)]
pub(crate) struct RedisAccess {
    /// Redis ACL user; none: the default user.
    #[arg(long, env = "ORDERSHOP_REDIS_USERNAME")]
    pub(crate) redis_username: Option<String>,
    /// Redis AUTH password, kept out of the URL: no percent-encoding is
    /// needed and it never shows in a logged URL.
    #[arg(long, env = "ORDERSHOP_REDIS_PASSWORD", hide_env_values = true)]
    pub(crate) redis_password: Option<String>,
    /// PEM file of the CA that signed the Redis server's certificate, for
    /// `rediss://` URLs (without it the public web roots are trusted).
    #[arg(long, env = "ORDERSHOP_REDIS_CA_FILE")]
    pub(crate) redis_ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for RedisAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.options().fmt(f)
    }
}

impl RedisAccess {
    pub(crate) fn options(&self) -> ordershop_redis::RedisOptions {
        ordershop_redis::RedisOptions {
            username: self.redis_username.clone(),
            password: self.redis_password.clone(),
            ca_file: self.redis_ca_file.clone(),
        }
    }

    /// The environment that hands these to a child process.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(username) = &self.redis_username {
            env.push(("ORDERSHOP_REDIS_USERNAME", username.clone()));
        }
        if let Some(password) = &self.redis_password {
            env.push(("ORDERSHOP_REDIS_PASSWORD", password.clone()));
        }
        if let Some(ca_file) = &self.redis_ca_file {
            env.push(("ORDERSHOP_REDIS_CA_FILE", ca_file.display().to_string()));
        }
        env
    }
}

/// Options shared by every role; each role reads the ones it needs.
#[derive(Debug, Clone, Args)]
pub(crate) struct RoleArgs {
    /// gRPC address: the role's API (event store, queue) and its health.
    #[arg(long, env = "ORDERSHOP_LISTEN", default_value = "0.0.0.0:50051")]
    pub(crate) listen: SocketAddr,
    /// HTTP address of the API gateway.
    #[arg(long, env = "ORDERSHOP_HTTP_LISTEN", default_value = "0.0.0.0:5000")]
    pub(crate) http_listen: SocketAddr,
    /// Redis (event store, message queue, read model).
    #[arg(
        long,
        env = "ORDERSHOP_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub(crate) redis_url: String,
    #[command(flatten)]
    pub(crate) redis_access: RedisAccess,
    #[arg(
        long,
        env = "ORDERSHOP_EVENT_STORE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub(crate) event_store_url: String,
    #[arg(
        long,
        env = "ORDERSHOP_QUEUE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub(crate) queue_url: String,
    /// This instance's name in consumer groups and leases (the pod name);
    /// defaults to the host name.
    #[arg(long, env = "ORDERSHOP_INSTANCE")]
    pub(crate) instance: Option<String>,
    /// Event store: an entry unacked this long is handed to another consumer.
    #[arg(long, env = "ORDERSHOP_CLAIM_IDLE_MS", default_value_t = 15_000)]
    pub(crate) claim_idle_ms: u64,
    /// Event store: every this many seconds, trim each topic's stream
    /// behind every reader that still needs its entries (the snapshots of
    /// the views, the read model's checkpoint, the consumer groups). 0
    /// keeps every event forever. With it on, a view that cannot use its
    /// snapshot can no longer be rebuilt by replaying (README: Retention).
    #[arg(long, env = "ORDERSHOP_TRIM_STREAMS_EVERY", default_value_t = 0)]
    pub(crate) trim_streams_every: u64,
    /// Event store: an event id is stored once within at least this many
    /// seconds (at most twice that); the records of older ones expire.
    #[arg(
        long,
        env = "ORDERSHOP_EVENT_ID_WINDOW_SECS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(60..)
    )]
    pub(crate) event_id_window_secs: u64,
    /// Event store and queue: deliveries in a row without any answer (the
    /// consumer crashed each time) before a message is dead-lettered as
    /// poison. Refused messages are retried however often it takes.
    #[arg(
        long,
        env = "ORDERSHOP_MAX_DELIVERIES",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..1000)
    )]
    pub(crate) max_deliveries: u32,
    /// Services: how long a received queue message stays leased.
    #[arg(long, env = "ORDERSHOP_LEASE_MS", default_value_t = 10_000)]
    pub(crate) lease_ms: u64,
    /// Services with a view: store a snapshot of it in the event store once
    /// this many events, and at least a quarter as many as the view holds
    /// entries, were folded since the last, so a restart reads the snapshot and
    /// replays only the events after it. 0 turns snapshots off: every
    /// start replays every topic from the beginning.
    #[arg(long, env = "ORDERSHOP_SNAPSHOT_EVERY", default_value_t = 20_000)]
    pub(crate) snapshot_every: u64,
    /// API gateway: origins (`https://shop.example.com`, or `*`) whose pages
    /// may open the live push's WebSocket, besides the gateway's own pages.
    #[arg(
        long = "allowed-origin",
        env = "ORDERSHOP_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) allowed_origins: Vec<String>,
    /// API gateway: bearer tokens that may use the REST API and the live
    /// push (comma-separated in the env var); none: no authentication.
    #[arg(
        long = "api-token",
        env = "ORDERSHOP_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) api_tokens: Vec<String>,
    /// API gateway: requests per second each client (address) may make;
    /// beyond, 429 with Retry-After. 0: no limit per client.
    #[arg(long, env = "ORDERSHOP_RATE_LIMIT", default_value_t = 0)]
    pub(crate) rate_limit: u32,
    /// API gateway: requests a client may make at once after a pause
    /// (default: twice the rate).
    #[arg(long, env = "ORDERSHOP_RATE_LIMIT_BURST")]
    pub(crate) rate_limit_burst: Option<std::num::NonZeroU32>,
    /// API gateway: count a client by the last `X-Forwarded-For` address,
    /// which the proxy in front (an Ingress) appends; only behind one.
    #[arg(long, env = "ORDERSHOP_TRUST_FORWARDED_FOR")]
    pub(crate) trust_forwarded_for: bool,
    /// Event store and queue: the shop key every role token derives from
    /// (64 or more hex digits). Without it they serve any caller, which
    /// only suits a shop behind loopback.
    #[arg(long, env = ordershop_grpc_auth::KEY_ENV, hide_env_values = true)]
    pub(crate) grpc_key: Option<Hidden>,
    /// Every other role: its token for the event store and the queue.
    #[arg(long, env = ordershop_grpc_auth::TOKEN_ENV, hide_env_values = true)]
    pub(crate) grpc_token: Option<Hidden>,
    /// Event store and queue: PEM file of the server certificate for TLS
    /// on the gRPC port (probes and scrapes may stay plaintext; API calls
    /// must then come over TLS).
    #[arg(long, env = ordershop_grpc_auth::TLS_CERT_ENV, requires = "grpc_tls_key")]
    pub(crate) grpc_tls_cert: Option<PathBuf>,
    /// PEM file of that certificate's private key.
    #[arg(long, env = ordershop_grpc_auth::TLS_KEY_ENV, requires = "grpc_tls_cert")]
    pub(crate) grpc_tls_key: Option<PathBuf>,
    /// Every other role: PEM file of the CA that signed the event store's
    /// and the queue's certificate, for `https://` URLs.
    #[arg(long, env = ordershop_grpc_auth::CA_FILE_ENV)]
    pub(crate) grpc_ca_file: Option<PathBuf>,
    /// Offer gRPC server reflection (for grpcurl). Off by default: it
    /// describes the whole API to whoever connects.
    #[arg(long, env = "ORDERSHOP_GRPC_REFLECTION")]
    pub(crate) grpc_reflection: bool,
    /// Set by `ordershop local` for its children: stop when it is gone.
    #[arg(long, env = "ORDERSHOP_PARENT_PID", hide = true)]
    pub(crate) parent_pid: Option<u32>,
}

/// A secret from the command line or the environment, never printed.
#[derive(Clone)]
pub(crate) struct Hidden(String);

impl std::str::FromStr for Hidden {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_owned()))
    }
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl RoleArgs {
    /// Who may call this infrastructure role: holders of a token of the
    /// shop key, or anyone when no key is set.
    pub(crate) fn authenticator(&self) -> anyhow::Result<Authenticator> {
        match self.grpc_key.as_ref().filter(|key| !key.0.is_empty()) {
            Some(key) => Ok(Authenticator::with_key(GrpcKey::from_hex(&key.0)?)),
            None => {
                tracing::warn!(
                    "no {KEY_ENV}: the gRPC API serves any caller; set it wherever other hosts can connect"
                );
                Ok(Authenticator::open())
            }
        }
    }

    /// The gateway's per-client rate limit, if one is set.
    pub(crate) fn rate_limit(&self) -> Option<ordershop_gateway::RateLimit> {
        let per_second = std::num::NonZeroU32::new(self.rate_limit)?;
        Some(ordershop_gateway::RateLimit {
            per_second,
            burst: self
                .rate_limit_burst
                .or(std::num::NonZeroU32::new(
                    per_second.get().saturating_mul(2),
                ))
                .unwrap_or(per_second),
            trust_forwarded_for: self.trust_forwarded_for,
        })
    }

    /// The TLS of this infrastructure role's gRPC port, if configured.
    pub(crate) fn server_tls(&self) -> anyhow::Result<Option<ServerTls>> {
        match (&self.grpc_tls_cert, &self.grpc_tls_key) {
            (Some(cert), Some(key)) => Ok(Some(ServerTls::from_files(cert, key)?)),
            _ => {
                if self.grpc_key.is_some() {
                    tracing::warn!("no gRPC TLS: role tokens and events travel unencrypted");
                }
                Ok(None)
            }
        }
    }

    /// How this role connects to the event store and the queue: trusting
    /// the CA of `--grpc-ca-file` for `https://` URLs.
    pub(crate) fn connector(&self) -> anyhow::Result<Connector> {
        let connector = Connector::default();
        Ok(match &self.grpc_ca_file {
            Some(path) => connector.with_ca(
                std::fs::read(path)
                    .with_context(|| format!("cannot read the gRPC CA {}", path.display()))?,
            ),
            None => connector,
        })
    }

    /// The credentials `role` calls the event store and the queue with. A
    /// token made for another role is refused at start, not call by call.
    pub(crate) fn credentials(&self, role: Role) -> anyhow::Result<Credentials> {
        let Some(token) = self.grpc_token.as_ref().filter(|t| !t.0.is_empty()) else {
            return Ok(Credentials::none());
        };
        let token = RoleToken::new(token.0.clone());
        if let Some(named) = token.role().filter(|named| *named != role) {
            anyhow::bail!(
                "{TOKEN_ENV} holds the {} role's token, but this process runs {}",
                named.slug(),
                role.slug()
            );
        }
        Ok(Credentials::token(&token)?)
    }

    /// The role's Redis client (connecting lazily).
    pub(crate) fn redis(&self) -> anyhow::Result<ordershop_redis::Redis> {
        Ok(ordershop_redis::Redis::open_with(
            &self.redis_url,
            &self.redis_access.options(),
        )?)
    }

    pub(crate) fn instance(&self) -> String {
        self.instance.clone().unwrap_or_else(host_name)
    }

    pub(crate) fn claim_idle(&self) -> Duration {
        Duration::from_millis(self.claim_idle_ms)
    }

    /// How often the event store trims its streams; `None`: never.
    pub(crate) fn retention(&self) -> Option<Duration> {
        (self.trim_streams_every > 0).then(|| Duration::from_secs(self.trim_streams_every))
    }

    pub(crate) fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("ordershop-{}", std::process::id()))
}

impl Command {
    /// `service.name` of this process' spans: its role, or the command.
    fn service_name(&self) -> String {
        match self.role() {
            Some((role, _)) => role.slug().to_owned(),
            None => "ordershop".to_owned(),
        }
    }

    fn role(&self) -> Option<(Role, &RoleArgs)> {
        let pair = match self {
            Command::EventStore(a) => (Role::EventStore, a),
            Command::MessageQueue(a) => (Role::MessageQueue, a),
            Command::ReadModel(a) => (Role::ReadModel, a),
            Command::ApiGateway(a) => (Role::ApiGateway, a),
            Command::Customer(a) => (Role::Customer, a),
            Command::Product(a) => (Role::Product, a),
            Command::Inventory(a) => (Role::Inventory, a),
            Command::Cart(a) => (Role::Cart, a),
            Command::Order(a) => (Role::Order, a),
            Command::Billing(a) => (Role::Billing, a),
            Command::Shipping(a) => (Role::Shipping, a),
            Command::Crm(a) => (Role::Crm, a),
            Command::Mail(a) => (Role::Mail, a),
            Command::Local(_) | Command::DeadLetters(_) | Command::Chaos(_) | Command::Trace(_) => {
                return None;
            }
        };
        Some(pair)
    }
}

/// Parses the command line and runs; errors are logged and turned into a
/// failing exit code (anyhow lives only at this edge).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any other thread exists: taking them edits the environment.
    let listeners = crate::listeners::Listeners::from_env();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            let _ = telemetry::init(cli.log_format, &ExportOptions::default());
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let export = ExportOptions {
        service: cli.command.service_name(),
        otlp_endpoint: cli.otlp_endpoint.clone(),
        file: cli.trace_file.clone(),
    };
    // Held to the end: dropping it flushes the last spans. Started inside
    // the runtime, as the OTLP exporter's channel needs one.
    let _exporting = {
        let _entered = runtime.enter();
        match telemetry::init(cli.log_format, &export) {
            Ok(exporting) => exporting,
            Err(err) => {
                tracing::error!("{err}");
                return ExitCode::FAILURE;
            }
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.role() {
            Some((role, args)) => crate::roles::run(role, args.clone(), listeners).await,
            None => match cli.command {
                Command::Local(args) => crate::local::run(args).await,
                Command::DeadLetters(args) => crate::dead_letters::run(args).await,
                Command::Chaos(args) => crate::chaos::run(args).await,
                Command::Trace(args) => crate::trace::run(&args),
                _ => unreachable!("every other command is a role"),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
