//! OrderShop's workers: the domain services (customer, product, inventory,
//! cart, order, billing, shipping) with their sagas, the CRM, the mail
//! service and the read model. The binary calls [`run`] with the role to
//! play; the API gateway and the two infrastructure servers live in their
//! own crates.
//!
//! # How a domain service works
//!
//! - It keeps a [`View`](ordershop_core::View) of the topics its decisions
//!   read: loaded from its latest snapshot and the events after it (or
//!   replayed whole without one) at start, then read forward
//!   (`live_view`); a snapshot is stored every so many events
//!   (`view_snapshot`).
//! - Before each decision it brings the view up to the event store's heads
//!   (one `heads` call plus a read per topic that moved, shared by
//!   concurrent handlers), decides with the core, and appends with
//!   expected versions; on a conflict it catches up and decides again, a
//!   bounded number of times (`decide`).
//! - Ids and event ids derive from the queue message id, so a redelivered
//!   command answers the same and writes nothing new.
//! - Sagas run on durable consumer-group subscriptions (group = the
//!   service name) and are idempotent through the core's causation ids.
//!
//! # Replies (the wire contract)
//!
//! `{"result": ..., "positions": {topic: entry id}}` or
//! `{"error": "...", "kind": "invalid|not_found|conflict|internal"}`; see
//! `envelope`.
#![deny(warnings)]

mod codec;
mod commands;
mod crm;
mod decide;
mod envelope;
mod error;
mod live_view;
mod mail;
mod metrics;
mod read_model;
mod sagas;
mod settings;
mod view_snapshot;
mod workers;

use ordershop_client::Clients;
use ordershop_redis::Redis;
use ordershop_topology::Role;
use tokio_util::sync::CancellationToken;

pub use codec::{DecodeError, decode as decode_event};
pub use error::AppError;
pub use live_view::ViewSettings;
pub use settings::{Readiness, Settings};

/// Runs `role` until `shutdown` fires, then stops within a few seconds:
/// handlers in progress finish, unacknowledged work stays pending and is
/// redelivered to the next instance. `redis` is the read model's cache and
/// is needed only by [`Role::ReadModel`]. `settings.readiness` is set once
/// the role has caught up with the event store.
pub async fn run(
    role: Role,
    clients: Clients,
    redis: Option<Redis>,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    tracing::info!(role = role.slug(), instance = %clients.instance, "starting");
    match role {
        Role::ReadModel => {
            let redis = redis.ok_or(AppError::MissingRedis)?;
            read_model::run(clients, redis, settings, shutdown).await;
            tracing::info!(role = role.slug(), "stopped");
            Ok(())
        }
        Role::EventStore | Role::MessageQueue | Role::ApiGateway => {
            Err(AppError::UnsupportedRole(role.slug()))
        }
        Role::Customer
        | Role::Product
        | Role::Inventory
        | Role::Cart
        | Role::Order
        | Role::Billing
        | Role::Shipping
        | Role::Crm
        | Role::Mail => workers::run(role, clients, settings, shutdown).await,
    }
}
