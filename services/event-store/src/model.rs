/// An event to append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: String,
    pub event_action: String,
    pub event_data: String,
    pub entity_id: String,
    pub causation_id: String,
    /// Append only if the entity's version is exactly this (0 = new entity).
    pub expected_version: Option<u64>,
    /// W3C trace context stored with the event; empty when untraced.
    pub traceparent: String,
}

/// Where an appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub entry_id: String,
    pub version: u64,
    pub duplicate: bool,
}

/// An event as read back from a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub topic: String,
    pub entry_id: String,
    pub event_id: String,
    pub event_action: String,
    pub event_data: String,
    pub entity_id: String,
    pub causation_id: String,
    pub version: u64,
    pub traceparent: String,
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The whole history: a service's first start must not miss what
    /// happened before it (the reference started at `$` and lost events).
    #[default]
    Beginning,
    /// Only what is published after the group is created.
    End,
}

impl Recorded {
    /// Builds a record from a stream entry's fields.
    pub(crate) fn from_entry(topic: &str, entry: &redis::streams::StreamId) -> Self {
        let field = |name: &str| entry.get::<String>(name).unwrap_or_default();
        Self {
            topic: topic.to_owned(),
            entry_id: entry.id.clone(),
            event_id: field("event_id"),
            event_action: field("event_action"),
            event_data: field("event_data"),
            entity_id: field("entity_id"),
            causation_id: field("causation_id"),
            version: field("version").parse().unwrap_or(0),
            traceparent: field("traceparent"),
        }
    }
}
