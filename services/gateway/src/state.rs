use std::sync::Arc;

use ordershop_client::Clients;
use tokio::{sync::Semaphore, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{GatewayConfig, push::PushHub, upstream::Upstream};

/// What every handler shares: the upstream clients, the push hub and the
/// configuration. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayState {
    pub(crate) upstream: Upstream,
    pub(crate) push: PushHub,
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) shutdown: CancellationToken,
    /// One permit per request being handled ([`GatewayConfig::max_in_flight`]).
    pub(crate) in_flight: Arc<Semaphore>,
    /// Per-client rate limits ([`GatewayConfig::rate_limit`]), if any.
    pub(crate) rate: Option<Arc<crate::rate::Limiter>>,
}

impl GatewayState {
    /// `shutdown` also closes the WebSocket connections. Starts no task:
    /// [`GatewayState::spawn_push_feed`] starts the event feed of the push.
    pub fn new(clients: Clients, config: GatewayConfig, shutdown: CancellationToken) -> Self {
        Self {
            upstream: Upstream::new(clients, config.call_timeout),
            push: PushHub::new(config.push_buffer, config.max_push_clients),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            rate: config.rate_limit.map(crate::rate::Limiter::new),
            config: Arc::new(config),
            shutdown,
        }
    }

    /// Follows every topic from its current head and feeds the push, until
    /// `shutdown` fires.
    pub fn spawn_push_feed(&self) -> JoinHandle<()> {
        tokio::spawn(crate::push::follow_all(
            self.upstream.event_store().clone(),
            self.push.clone(),
            self.shutdown.clone(),
        ))
    }

    /// Waits (up to the grace time) until every WebSocket client has ended.
    pub(crate) async fn drain_push_clients(&self) {
        if !self.push.drained(self.config.shutdown_grace).await {
            tracing::warn!(
                grace = ?self.config.shutdown_grace,
                "some WebSocket clients had not ended when the grace time ran out"
            );
        }
    }
}
