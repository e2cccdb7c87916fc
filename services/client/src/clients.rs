use crate::{ClientError, Connector, Credentials, EventStore, Queue};

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
        Self::connect_with(&Connector::default(), event_store_url, queue_url, instance)
    }

    /// [`Clients::connect`] through `connector` (its TLS trust, its resolver).
    pub fn connect_with(
        connector: &Connector,
        event_store_url: &str,
        queue_url: &str,
        instance: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let instance = instance.into();
        Ok(Self {
            event_store: EventStore::new(connector.connect(event_store_url)?),
            queue: Queue::new(connector.connect(queue_url)?, instance.clone()),
            instance,
        })
    }

    /// Both clients with every call carrying `credentials`.
    pub fn with_credentials(self, credentials: Credentials) -> Self {
        Self {
            event_store: self.event_store.with_credentials(credentials.clone()),
            queue: self.queue.with_credentials(credentials),
            instance: self.instance,
        }
    }
}
