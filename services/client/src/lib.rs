//! The client library every OrderShop service uses to reach the event store
//! and the message queue.
//!
//! - Connections are lazy and reconnect by themselves: a service can start
//!   before the infrastructure and survives its restarts.
//! - A host name is resolved every few seconds and calls are spread over
//!   all its addresses ([`Connector`]): behind a headless Service, every
//!   replica of the event store or queue gets a share, new ones included.
//! - Every call has a deadline; calls that are safe to repeat are retried
//!   on `Unavailable` with backoff until that deadline (publishes carry
//!   client-made event ids, sends carry idempotency keys, so a retry never
//!   duplicates).
//! - [`EventStore::subscribe`] and [`Queue::serve`] run a handler closure
//!   in a loop that acks on success, nacks on failure and resubscribes after
//!   a broken stream, until their cancellation token fires.
//! - [`EventStore::follow_forever`] keeps a view or cache current from
//!   pushed pages, reconnecting after its own positions.
#![deny(warnings)]

mod acks;
mod backoff;
mod clients;
mod connect;
mod consume;
mod error;
mod event_store;
mod follow;
mod health;
mod queue;
mod shared_heads;
mod snapshots;

pub use backoff::{Backoff, retry_until_cancelled};
pub use clients::Clients;
pub use connect::Transport;
pub use connect::{Connector, Resolve, SystemResolver, connect};
pub use error::{ClientError, HandlerError};
pub use event_store::{Append, Delivery, EventStore, Recorded, Stored, SubscribeOptions};
pub use follow::Follow;
pub use ordershop_grpc_auth::Credentials;
pub use ordershop_proto::eventstore::v1::StartPosition;
pub use queue::{Message, Queue, ServeOptions};
pub use shared_heads::{Heads, SharedHeads};
pub use snapshots::ViewSnapshot;
