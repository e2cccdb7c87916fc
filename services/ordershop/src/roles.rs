//! Runs one role: its work plus the gRPC health server probes talk to.

use std::sync::Arc;
use std::time::Duration;

use ordershop_event_store::StoreConfig;
use ordershop_message_queue::QueueConfig;
use ordershop_proto::serving;
use ordershop_topology::Role;
use tokio::net::TcpListener;

use crate::listeners::{self, Listeners};
use crate::{backlog_metrics, cli::RoleArgs, parent_watch, shutdown};

/// `listeners` are taken from the environment before the runtime starts
/// (listenfd edits the environment, which is unsound next to other threads).
pub(crate) async fn run(
    role: Role,
    args: RoleArgs,
    mut listeners: Listeners,
) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signals();
    if let Some(parent) = args.parent_pid {
        parent_watch::stop_when_parent_dies(parent, shutdown.clone());
    }
    ordershop_metrics::families::preset(role);
    if args.grpc_reflection {
        serving::enable_reflection();
    }
    let listener = listeners.take(listeners::GRPC, args.listen).await?;
    tracing::info!(role = role.slug(), listen = %listener.local_addr()?, "starting");
    match role {
        Role::EventStore | Role::MessageQueue => {
            let redis = args.redis()?;
            tokio::spawn(backlog_metrics::run(redis.clone(), role, shutdown.clone()));
            let (auth, tls) = (args.authenticator()?, args.server_tls()?);
            if role == Role::EventStore {
                let config = StoreConfig {
                    claim_idle: args.claim_idle(),
                    max_deliveries: args.max_deliveries,
                    retention: args.retention(),
                    event_id_window: Duration::from_secs(args.event_id_window_secs),
                    ..StoreConfig::default()
                };
                ordershop_event_store::server::run(listener, redis, config, shutdown, auth, tls)
                    .await?;
            } else {
                let config = QueueConfig {
                    max_attempts: args.max_deliveries,
                    ..QueueConfig::default()
                };
                ordershop_message_queue::server::run(listener, redis, config, shutdown, auth, tls)
                    .await?;
            }
        }
        Role::ApiGateway => {
            let http = listeners.take(listeners::HTTP, args.http_listen).await?;
            run_service(role, &args, listener, Some(http), shutdown).await?;
        }
        _ => run_service(role, &args, listener, None, shutdown).await?,
    }
    tracing::info!(role = role.slug(), "stopped");
    Ok(())
}

/// A role that is a client of the event store and the queue: its work runs
/// beside a health-only gRPC server that reports ready once the role has
/// caught up (its view replayed, the read model's cache current) and while
/// both answer.
async fn run_service(
    role: Role,
    args: &RoleArgs,
    listener: TcpListener,
    http: Option<TcpListener>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let clients = Arc::new(
        ordershop_client::Clients::connect_with(
            &args.connector()?,
            &args.event_store_url,
            &args.queue_url,
            args.instance(),
        )?
        .with_credentials(args.credentials(role)?),
    );
    let readiness = ordershop_app::Readiness::default();
    let probe = clients.clone();
    let caught_up = readiness.clone();
    let health = tokio::spawn(serving::run(
        listener,
        None,
        None,
        shutdown.clone(),
        move || {
            let clients = probe.clone();
            // The gateway has nothing to catch up with.
            let caught_up = role == Role::ApiGateway || caught_up.is_ready();
            async move {
                caught_up && clients.event_store.healthy().await && clients.queue.healthy().await
            }
        },
    ));
    let work = work(
        role,
        args,
        http,
        (*clients).clone(),
        readiness,
        shutdown.clone(),
    )
    .await;
    // Whatever ended the work, the health server goes down with it.
    shutdown.cancel();
    health.await??;
    work
}

/// The role's own work, until `shutdown`; `http` is the gateway's listener.
async fn work(
    role: Role,
    args: &RoleArgs,
    http: Option<TcpListener>,
    clients: ordershop_client::Clients,
    readiness: ordershop_app::Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    if let Some(listener) = http {
        tracing::info!(http = %listener.local_addr()?, "API gateway listening");
        let config = ordershop_gateway::GatewayConfig {
            allowed_origins: args.allowed_origins.clone(),
            api_tokens: args
                .api_tokens
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            rate_limit: args.rate_limit(),
            ..ordershop_gateway::GatewayConfig::default()
        };
        ordershop_gateway::run(listener, clients, config, shutdown).await?;
        return Ok(());
    }
    let redis = if role == Role::ReadModel {
        Some(args.redis()?)
    } else {
        None
    };
    let defaults = ordershop_app::Settings::default();
    let settings = ordershop_app::Settings {
        lease: args.lease(),
        readiness,
        view: ordershop_app::ViewSettings {
            snapshot_every: args.snapshot_every,
            ..defaults.view.clone()
        },
        ..defaults
    };
    ordershop_app::run(role, clients, redis, settings, shutdown).await?;
    Ok(())
}
