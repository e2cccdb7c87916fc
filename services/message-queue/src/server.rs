//! The message queue as a running gRPC server.

use std::sync::Arc;

use ordershop_grpc_auth::Authenticator;
use ordershop_proto::{serving, tls::ServerTls};
use ordershop_redis::Redis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{QueueConfig, QueueStore, grpc::MessageQueueService, reaper};

/// Serves, and reaps expired leases, until `shutdown` fires. Calls in
/// progress finish (a long-poll receive within its wait).
/// `auth` checks every API call's role token (no key: open to anyone);
/// with `tls`, API calls must come encrypted.
pub async fn run(
    listener: TcpListener,
    redis: Redis,
    config: QueueConfig,
    shutdown: CancellationToken,
    auth: Authenticator,
    tls: Option<ServerTls>,
) -> Result<(), serving::ServeError> {
    let store = Arc::new(QueueStore::new(redis.clone(), config));
    tokio::spawn(reaper::run(store.clone(), shutdown.clone()));
    let service = MessageQueueService::new(store, shutdown.clone());
    let routes = Routes::new(service.into_server(auth));
    serving::run(listener, Some(routes), tls, shutdown, move || {
        let redis = redis.clone();
        async move { redis.ping().await.is_ok() }
    })
    .await
}
