//! The event store as a running gRPC server.

use std::sync::Arc;

use ordershop_grpc_auth::Authenticator;
use ordershop_proto::{serving, tls::ServerTls};
use ordershop_redis::Redis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{StoreConfig, StreamStore, grpc::EventStoreService};

/// Serves until `shutdown` fires. Open subscriptions end at once (their
/// unacked entries stay pending for redelivery); unary calls finish.
/// `auth` checks every API call's role token (no key: open to anyone);
/// with `tls`, API calls must come encrypted.
pub async fn run(
    listener: TcpListener,
    redis: Redis,
    config: StoreConfig,
    shutdown: CancellationToken,
    auth: Authenticator,
    tls: Option<ServerTls>,
) -> Result<(), serving::ServeError> {
    tokio::spawn(crate::housekeeping::run(
        redis.clone(),
        config.forget_idle_consumers,
        config.event_id_window,
        shutdown.clone(),
    ));
    if let Some(every) = config.retention {
        tokio::spawn(crate::retention::run(
            redis.clone(),
            every,
            shutdown.clone(),
        ));
    }
    let store = Arc::new(StreamStore::new(redis.clone(), config));
    let service = EventStoreService::new(store, shutdown.clone());
    let routes = Routes::new(service.into_server(auth));
    serving::run(listener, Some(routes), tls, shutdown, move || {
        let redis = redis.clone();
        async move { redis.ping().await.is_ok() }
    })
    .await
}
