//! Prometheus metrics of an OrderShop role: one registry per process, the
//! metric families every role shares ([`families`]), and the tower layer
//! that counts the gRPC calls a server answers ([`GrpcMetricsLayer`]). Every
//! role serves the registry as text on `GET /metrics` of its gRPC port
//! (`ordershop_proto::serving`), so one scrape config finds them all.
//!
//! Labels are bounded: topics and channels outside `ordershop_topology`'s
//! tables are counted as `other`, gRPC methods outside OrderShop's services
//! as `unknown`, HTTP requests by route template (`/customer/{id}`), never by
//! a raw path a client chose.

pub mod families;
mod grpc;

use std::sync::{LazyLock, Mutex, PoisonError};

use prometheus_client::{encoding::text, registry::Registry};

pub use grpc::GrpcMetricsLayer;

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every family of this process, under the `ordershop_` prefix.
static REGISTRY: LazyLock<Mutex<Registry>> =
    LazyLock::new(|| Mutex::new(Registry::with_prefix("ordershop")));

/// Adds `metric` to the process' registry and returns it (families are
/// registered once, when first used: see [`families`]).
fn register<M>(name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .register(name, help, metric.clone());
    metric
}

/// The OpenMetrics text of every family registered so far.
pub fn encode() -> String {
    families::register_all();
    let mut out = String::new();
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    // Writing into a String cannot fail.
    let _ = text::encode(&mut out, &registry);
    out
}
