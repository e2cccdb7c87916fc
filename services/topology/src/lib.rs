//! The shape of an OrderShop deployment, declared once.
//!
//! The services use it to know which queue channels to serve and which event
//! topics to subscribe to; the operator uses the very same tables to create
//! consumer groups before consumers start and to measure each consumer's
//! backlog. Nothing here does I/O.
#![deny(warnings)]

mod entry_id;
mod keys;
mod redis_acl;
mod roles;

pub use entry_id::{EntryId, InvalidEntryId};
pub use keys::{
    ATTEMPTS_FIELD_SUFFIX, CHANNELS_SET, QueueKeys, READ_MODEL_KEY_PATTERN, READ_MODEL_LAYOUT,
    ReadModelKeys, StreamKeys, channel_name, dead_letter_stream, event_id_bucket, mail_sort_key,
    snapshot_key, stream_key,
};
pub use roles::{Role, Subscription};

/// Every event topic, in the order the contract lists them.
pub const TOPICS: &[&str] = &[
    "customer",
    "product",
    "inventory",
    "cart",
    "order",
    "billing",
    "shipping",
    "mail",
];

/// The entity topics (every topic but `mail`, whose events are not entities).
pub const ENTITY_TOPICS: &[&str] = &[
    "customer",
    "product",
    "inventory",
    "cart",
    "order",
    "billing",
    "shipping",
];

/// The most events one append takes (atomically, in one script call). A
/// create command makes one event per entity, so this is also the most
/// entities one create takes: the gateway refuses a bigger batch before it
/// enqueues it, the domain services refuse it, the event store refuses it.
pub const MAX_APPEND_BATCH: usize = 1000;

/// The gRPC health service name (`grpc.health.v1.Health`) every role reports
/// SERVING for as long as its process runs, whatever its dependencies do.
///
/// Kubernetes' liveness and startup probes ask for this name; readiness asks
/// for the overall health (service name `""`), which follows Redis, the event
/// store and the queue and whether the role has caught up. Were liveness the
/// readiness check, a Redis outage or a long view replay would restart every
/// pod in waves instead of only taking them out of their Services.
pub const LIVENESS_SERVICE: &str = "liveness";
