//! OrderShop's API gateway: the REST API of the OrderShop v2 contract, the
//! live UI and its WebSocket push, the OpenAPI document and the probes.
//!
//! The gateway owns no state. Commands go through the message queue to the
//! domain services (`<service>.<function>`), queries go through the queue to
//! the read model, and every read carries the event store's current heads of
//! the topics it touches as `after`, so it sees every write that completed
//! before it, whichever gateway replica took that write.
//!
//! | module | does |
//! |---|---|
//! | `routes` | the router and its thin handlers |
//! | `upstream` | commands and queries over the queue, read-your-writes heads |
//! | `lists` | list routes in bounded pages: one page (`?limit=&after=`) or the whole list streamed |
//! | `reply` | reply envelopes and client errors → HTTP status + `{"error"}` |
//! | `body` | request extractors whose rejections are JSON errors too |
//! | `push` | one follow stream of every topic, fanned out to browsers over WebSockets |
//! | `ui` | the embedded page, script and stylesheet |
//! | `openapi` | the OpenAPI 3 document, built from the same tables as the router |
//! | `serve` | the accept loop: HTTP/1 and 2, WebSocket upgrades, a header-read timeout, graceful stop |
//! | `health` | `/healthz` (process up) and `/readyz` (event store and queue answer) |
//! | `auth` | optional bearer tokens for the API and the live push |
//! | `limits` | requests in progress and the time one may take, bounded |
//! | `metrics` | requests counted and timed per route template, for Prometheus |

mod auth;
mod body;
mod config;
mod error;
mod health;
mod limits;
mod lists;
mod metrics;
mod openapi;
mod push;
mod rate;
mod reply;
mod routes;
mod serve;
mod state;
mod ui;
mod upstream;

use ordershop_client::Clients;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::GatewayConfig;
pub use error::GatewayError;
pub use rate::RateLimit;
pub use routes::router;
pub use state::GatewayState;

/// Serves the gateway on `listener` until `shutdown` fires: requests in
/// progress finish, WebSocket clients get a close frame, the event feed of the
/// event store stops.
pub async fn run(
    listener: TcpListener,
    clients: Clients,
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let header_read_timeout = config.header_read_timeout;
    let grace = config.shutdown_grace;
    let state = GatewayState::new(clients, config, shutdown.clone());
    let push_feed = state.spawn_push_feed();
    if let Some(limiter) = &state.rate {
        tokio::spawn(limiter.clone().forget_idle(shutdown.clone()));
    }
    let address = listener.local_addr().map_err(GatewayError::Listener)?;
    tracing::info!(%address, "api gateway listening");
    let served = serve::run(
        listener,
        router(state.clone()),
        header_read_timeout,
        grace,
        &shutdown,
    )
    .await;
    // Reached on a stop or a failing listener: either way the push ends.
    shutdown.cancel();
    state.drain_push_clients().await;
    if let Err(err) = push_feed.await {
        tracing::warn!(error = %err, "push feed task failed");
    }
    tracing::info!("api gateway stopped");
    served
}
