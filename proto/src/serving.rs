//! The gRPC server every OrderShop role runs: its own services (if any),
//! plus `grpc.health.v1.Health` for Kubernetes probes, server reflection
//! for grpcurl when asked for ([`enable_reflection`]) and `GET /metrics` (Prometheus text, HTTP/1.1) on the same
//! port, with graceful shutdown. Every call is counted and timed
//! ([`ordershop_metrics::GrpcMetricsLayer`]).
//!
//! Health answers two questions under two service names: `""` (the overall
//! health) is readiness, set by the role from its dependencies;
//! [`LIVENESS_SERVICE`] is liveness, SERVING from the server's start to the
//! process' end, so only a process that no longer answers at all is
//! restarted.

use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::{ServingStatus, server::HealthReporter};

pub use ordershop_topology::LIVENESS_SERVICE;

use crate::tls::ServerTls;

/// Whether servers started from now on offer gRPC server reflection.
static REFLECTION: AtomicBool = AtomicBool::new(false);

/// Offers gRPC server reflection (grpcurl without the `.proto` files) on the
/// servers this process starts from now on. Off unless asked for: it hands
/// every method and message of the API to whoever connects.
pub fn enable_reflection() {
    REFLECTION.store(true, Ordering::Relaxed);
}

/// Reports the overall health (service name "") that readiness probes and
/// clients ask for.
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

/// Serves `routes` with health (and reflection, if enabled) on `listener` until
/// `shutdown` resolves; in-flight calls finish first. The overall health
/// starts as NOT_SERVING: the caller flips it once its dependencies answer.
/// [`LIVENESS_SERVICE`] is SERVING from the start and never changes.
pub async fn serve(
    listener: TcpListener,
    routes: Option<Routes>,
    tls: Option<ServerTls>,
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
    reporter
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    let mut all = routes.unwrap_or_default();
    all = all.add_service(health_service);
    if REFLECTION.load(Ordering::Relaxed) {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        all = all.add_service(reflection);
    }
    // Prometheus scrapes `GET /metrics` over HTTP/1.1 on the same port, so
    // every role is scraped the same way, with no second listener.
    let all = Routes::from(
        all.into_axum_router()
            .route("/metrics", axum::routing::get(metrics))
            .layer(axum::middleware::from_fn(crate::tls::plaintext_guard)),
    );
    let incoming = crate::tls::incoming(listener, tls);
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(ordershop_metrics::GrpcMetricsLayer)
        // A span per API call, its caller's span as parent; nothing logged
        // (failures are the handlers' to log, at a level that fits them).
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(call_span)
                .on_request(())
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .add_routes(all)
        .serve_with_incoming_shutdown(incoming, shutdown);
    Ok((Health(reporter), server))
}

/// The span of one API call, named `Service/Method` (`MessageQueue/Send`),
/// child of the span named by the caller's `traceparent`. Only calls made
/// within a traced flow get one: a consumer's idle long poll, a probe, a
/// scrape or reflection would otherwise start a trace of its own every
/// few seconds, burying the flows. Flows start at the gateway.
fn call_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let Some(traceparent) = ordershop_trace::traceparent_header(request.headers()) else {
        return tracing::Span::none();
    };
    let Some(name) = request
        .uri()
        .path()
        .strip_prefix("/ordershop.")
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(_, rest)| rest.split_once('.'))
        .map(|(_, method)| method)
    else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!("grpc", otel.name = name, otel.kind = "server");
    ordershop_trace::set_parent(&span, traceparent);
    span
}

/// `GET /metrics`: the process' Prometheus metrics.
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            ordershop_metrics::CONTENT_TYPE,
        )],
        ordershop_metrics::encode(),
    )
}

/// Flips `health` with the outcome of `check` every `every` (ten times as
/// often while not ready, so a (re)started role is in service as soon as
/// it has caught up, not up to `every` later), until `shutdown` resolves;
/// then reports NOT_SERVING so load balancers drain.
/// Liveness is left alone: a stopping process is still alive.
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
        let pause = if ok { every } else { every / 10 };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(pause) => {}
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
/// says the role's dependencies answer (checked every second). With `tls`,
/// API calls must come over TLS (see [`crate::tls`]).
pub async fn run<F, Fut>(
    listener: TcpListener,
    routes: Option<Routes>,
    tls: Option<ServerTls>,
    shutdown: CancellationToken,
    ready: F,
) -> Result<(), ServeError>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let (health, server) = serve(listener, routes, tls, shutdown.clone().cancelled_owned()).await?;
    tokio::spawn(track_readiness(
        health,
        std::time::Duration::from_secs(1),
        shutdown.cancelled_owned(),
        ready,
    ));
    server.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus as Status,
        health_client::HealthClient,
    };

    use super::*;

    async fn check(client: &mut HealthClient<tonic::transport::Channel>, service: &str) -> Status {
        client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status()
    }

    #[tokio::test]
    async fn liveness_serves_from_the_start_whatever_readiness_says() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (health, server) = serve(listener, None, None, stop.clone().cancelled_owned())
            .await
            .unwrap();
        let server = tokio::spawn(server);
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);

        // Not ready yet (dependencies unchecked), but alive.
        assert_eq!(check(&mut client, "").await, Status::NotServing);
        assert_eq!(check(&mut client, LIVENESS_SERVICE).await, Status::Serving);
        health.set(true).await;
        assert_eq!(check(&mut client, "").await, Status::Serving);
        // A dependency went away: out of the Service, not restarted.
        health.set(false).await;
        assert_eq!(check(&mut client, "").await, Status::NotServing);
        assert_eq!(check(&mut client, LIVENESS_SERVICE).await, Status::Serving);

        stop.cancel();
        server.await.unwrap().unwrap();
    }
}
