use std::time::Duration;

/// Tunables of the event store. Defaults suit production; tests shorten the
/// timeouts to exercise redelivery quickly.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// An entry delivered to a consumer and not acked for this long is
    /// considered abandoned (the consumer died) and handed to another one.
    /// Must exceed the slowest handler, or work is done twice.
    pub claim_idle: Duration,
    /// How often a subscription looks for abandoned entries.
    pub claim_interval: Duration,
    /// Deliveries in a row without any answer (the consumer crashed or hung
    /// each time) after which an entry goes to the dead-letter stream; a
    /// refused entry is retried however often that takes.
    pub max_deliveries: u32,
    /// Longest single blocking read; bounds how late a cancelled
    /// subscription notices.
    pub block: Duration,
    /// A consumer with nothing pending that has not read for this long is
    /// removed from its group (see `housekeeping`).
    pub forget_idle_consumers: Duration,
    /// How often streams are trimmed behind their readers (see
    /// `retention`); `None` keeps every event forever.
    pub retention: Option<Duration>,
    /// An event id is stored once within at least this long (and at most
    /// twice that): a publish retried later is appended again. Views also
    /// remember which events created which entities, so a command handled
    /// twice still changes nothing twice.
    pub event_id_window: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            claim_idle: Duration::from_secs(15),
            claim_interval: Duration::from_millis(500),
            max_deliveries: 5,
            block: Duration::from_secs(2),
            forget_idle_consumers: Duration::from_secs(3600),
            retention: None,
            event_id_window: Duration::from_secs(24 * 3600),
        }
    }
}
