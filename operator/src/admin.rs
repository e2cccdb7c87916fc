//! The admin HTTP server: `/metrics`, `/healthz` (liveness), `/readyz` (readiness).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What the probes report, updated by the run loop.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<HealthFlags>,
}

#[derive(Debug, Default)]
struct HealthFlags {
    api_reachable: AtomicBool,
    leading: AtomicBool,
    controller_running: AtomicBool,
}

impl Health {
    /// The API server answered (discovery of the OrderShop API worked).
    pub fn set_api_reachable(&self, v: bool) {
        self.inner.api_reachable.store(v, Ordering::Release);
    }
    pub fn set_leading(&self, v: bool) {
        self.inner.leading.store(v, Ordering::Release);
    }
    /// The controller's caches are synced and it is reconciling.
    pub fn set_controller_running(&self, v: bool) {
        self.inner.controller_running.store(v, Ordering::Release);
    }
    pub fn leading(&self) -> bool {
        self.inner.leading.load(Ordering::Acquire)
    }

    /// Ready: the API server is reachable and, when leading, the controller
    /// runs. A healthy standby is ready: it is what takes over.
    pub fn ready(&self) -> bool {
        let flags = &self.inner;
        flags.api_reachable.load(Ordering::Acquire)
            && (!flags.leading.load(Ordering::Acquire)
                || flags.controller_running.load(Ordering::Acquire))
    }

    fn describe(&self) -> String {
        let flags = &self.inner;
        format!(
            "api_reachable={} leading={} controller_running={}\n",
            flags.api_reachable.load(Ordering::Acquire),
            flags.leading.load(Ordering::Acquire),
            flags.controller_running.load(Ordering::Acquire),
        )
    }
}

#[derive(Debug, Clone)]
struct AdminState {
    health: Health,
    metrics: Metrics,
}

/// The admin routes.
pub fn router(health: Health, metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { health, metrics })
}

/// Serves the admin routes on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics_handler(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Liveness: the process and its async runtime answer.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let code = if state.health.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, state.health.describe())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_status(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_follows_api_reachability_and_controller_state() {
        let health = Health::default();
        let metrics = Metrics::new();
        let app = || router(health.clone(), metrics.clone());
        assert_eq!(get_status(app(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get_status(app(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_api_reachable(true);
        assert_eq!(
            get_status(app(), "/readyz").await.0,
            StatusCode::OK,
            "standby is ready"
        );
        health.set_leading(true);
        assert_eq!(
            get_status(app(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "a leader whose controller is not running yet is not"
        );
        health.set_controller_running(true);
        assert_eq!(get_status(app(), "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_served() {
        let metrics = Metrics::new();
        metrics.reconcile_started();
        let (status, body) = get_status(router(Health::default(), metrics), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("ordershop_operator_reconciles_total 1"));
    }
}
