use crate::{ClientError, EventStore, Queue};

/// The two infrastructure clients a service needs, plus its instance name
/// (consumer name inside groups, lease holder name).
#[derive(Debug, Clone)]
pub struct Clients {
    pub event_store: EventStore,
    pub queue: Queue,
    pub instance: String,
}

impl Clients {
    pub fn connect(
        event_store_url: &str,
        queue_url: &str,
        instance: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let instance = instance.into();
        Ok(Self {
            event_store: EventStore::connect(event_store_url)?,
            queue: Queue::connect(queue_url, instance.clone())?,
            instance,
        })
    }
}
