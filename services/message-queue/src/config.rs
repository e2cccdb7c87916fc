use std::time::Duration;

/// Tunables of the message queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Leases in a row without any answer (the consumer crashed or hung
    /// each time) after which a message is dead-lettered as poison; a
    /// refused message is retried however often that takes.
    pub max_attempts: u32,
    /// How long an idempotency key remembers its message.
    pub idempotency_window: Duration,
    /// How long a response waits for its caller.
    pub reply_ttl: Duration,
    /// How often expired leases and due retries are moved back to waiting.
    pub reap_interval: Duration,
    /// How often housekeeping looks for what is left of earlier releases'
    /// attempts hashes: they only ever shrink, so a look on every pass
    /// would be a command per channel four times a second for nothing.
    pub sweep_interval: Duration,
    /// Lease given to an in-flight message found without one (the queue
    /// process died between taking it and leasing it).
    pub orphan_grace: Duration,
    /// Which channels may be used: a deployment serves only the channels of
    /// `ordershop_topology`, so no client can make the queue (and Redis)
    /// hold keys for channels nobody serves.
    pub channels: Channels,
    /// Most messages waiting on one channel; a send beyond is refused
    /// (ResourceExhausted) rather than letting a channel nobody drains fill
    /// Redis. 0: no bound.
    pub max_waiting: u64,
}

/// Which channel names the queue accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// The channels some role of `ordershop_topology` serves.
    Topology,
    /// Any well-formed name (tests and tools with channels of their own).
    Any,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            idempotency_window: Duration::from_secs(600),
            reply_ttl: Duration::from_secs(300),
            reap_interval: Duration::from_millis(250),
            sweep_interval: Duration::from_secs(10),
            orphan_grace: Duration::from_secs(5),
            channels: Channels::Topology,
            max_waiting: 100_000,
        }
    }
}
