//! The OrderShop message queue: reliable queues on Redis Lists behind gRPC.
//!
//! A channel (`<service>.<function>`) is a waiting list and an in-flight
//! list of message ids, moved atomically by `BLMOVE`. A received message is
//! leased; an expired lease (the consumer died) puts it back in front of the
//! waiting list, and a message whose leases ran out too often goes to a
//! dead-letter list. Every multi-key step is one Lua script over keys that
//! share the channel's hash tag. Sync calls wait on a per-message list that
//! the response is pushed onto, with a TTL.
#![deny(warnings)]

pub mod config;
pub mod consume;
pub mod error;
pub mod grpc;
mod model;
pub mod reaper;
mod scripts;
pub mod server;
mod store;
pub mod validate;

pub use config::{Channels, QueueConfig};
pub use error::QueueError;
pub use model::{Message, SendOutcome};
pub use ordershop_redis::Refusal;
pub use store::{QueueStore, Reaped};
