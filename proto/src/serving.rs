//! The gRPC server every OrderShop role runs: its own services (if any),
//! plus `grpc.health.v1.Health` for Kubernetes probes and server reflection
//! for grpcurl, with graceful shutdown.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::{ServingStatus, server::HealthReporter};

/// Reports the overall health (service name "") that probes ask for.
#[derive(Clone)]
pub struct Health(HealthReporter);

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Health")
    }
}

impl Health {
    pub async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.0.set_service_status("", status).await;
    }
}

/// Serves `routes` with health and reflection on `listener` until
/// `shutdown` resolves; in-flight calls finish first. Health starts as
/// NOT_SERVING: the caller flips it once its dependencies answer.
pub async fn serve(
    listener: TcpListener,
    routes: Option<Routes>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<
    (
        Health,
        impl Future<Output = Result<(), tonic::transport::Error>>,
    ),
    tonic_reflection::server::Error,
> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let mut all = routes.unwrap_or_default();
    all = all.add_service(health_service).add_service(reflection);
    // Without TCP_NODELAY small replies wait for the client's delayed ACK
    // (~40 ms per call); tonic's own `tcp_nodelay` default does not apply
    // to an incoming stream we hand it, so set it on the accepted sockets.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .add_routes(all)
        .serve_with_incoming_shutdown(incoming, shutdown);
    Ok((Health(reporter), server))
}

/// Flips `health` with the outcome of `check` every `every`, until
/// `shutdown` resolves; then reports NOT_SERVING so load balancers drain.
pub async fn track_readiness<F, Fut>(
    health: Health,
    every: std::time::Duration,
    shutdown: impl Future<Output = ()>,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut last = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let ok = check().await;
        if last != Some(ok) {
            if ok {
                tracing::info!("ready");
            } else {
                tracing::warn!("not ready: a dependency does not answer");
            }
            health.set(ok).await;
            last = Some(ok);
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    health.set(false).await;
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `routes` until `shutdown` fires, reporting healthy while `ready`
/// says the role's dependencies answer (checked every second).
pub async fn run<F, Fut>(
    listener: TcpListener,
    routes: Option<Routes>,
    shutdown: CancellationToken,
    ready: F,
) -> Result<(), ServeError>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let (health, server) = serve(listener, routes, shutdown.clone().cancelled_owned()).await?;
    tokio::spawn(track_readiness(
        health,
        std::time::Duration::from_secs(1),
        shutdown.cancelled_owned(),
        ready,
    ));
    server.await?;
    Ok(())
}
