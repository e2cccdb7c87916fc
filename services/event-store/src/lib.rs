//! The OrderShop event store: Redis Streams behind gRPC.
//!
//! - [`StreamStore`] holds every Redis operation: atomic batch appends with
//!   optional expected versions and event-id deduplication (one Lua script),
//!   paged replay, heads, acks, nacks with dead-lettering, and the consumer
//!   group primitives a subscription is built from.
//! - [`subscription`] turns those primitives into a durable delivery loop:
//!   own pending entries first, then entries dead consumers left behind, then
//!   new ones.
//! - [`follow`] fans each topic's new entries out to every follower (views,
//!   caches, live push) from one shared read per topic.
//! - snapshots of the services' views ([`Snapshot`]), newest kept, so a
//!   restarting service replays only what came after one.
//! - [`retention`] (when asked for) trims each stream behind every reader
//!   that still needs its entries: snapshots, the read model, groups.
//! - [`grpc`] only translates between protobuf messages and the store.
#![deny(warnings)]

pub mod config;
pub mod error;
pub mod follow;
pub mod grpc;
pub mod housekeeping;
mod model;
mod publish_script;
pub mod retention;
pub mod server;
mod snapshot;
mod store;
pub mod subscription;
pub mod validate;

pub use config::StoreConfig;
pub use error::StoreError;
pub use model::{NewEvent, Recorded, StartAt, Stored};
pub use ordershop_redis::Refusal;
pub use snapshot::{MAX_SNAPSHOT_BYTES, Snapshot};
pub use store::StreamStore;
