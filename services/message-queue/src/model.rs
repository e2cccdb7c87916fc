use serde::{Deserialize, Serialize};

/// A request as delivered to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub payload: String,
    pub attempt: u32,
    pub idempotency_key: String,
    pub enqueued_at_ms: i64,
}

/// Result of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub message_id: String,
    /// The idempotency key was seen before: nothing was enqueued.
    pub duplicate: bool,
}

/// What the messages hash stores per message id.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) payload: String,
    #[serde(default)]
    pub(crate) idempotency_key: String,
    pub(crate) enqueued_at_ms: i64,
}
