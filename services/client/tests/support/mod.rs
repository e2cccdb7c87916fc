//! A real redis-server plus in-process event store and queue servers on
//! free loopback ports, with timeouts shortened so redelivery tests are quick.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use ordershop_event_store::StoreConfig;
use ordershop_message_queue::{Channels, QueueConfig};

pub const CLAIM_IDLE: Duration = Duration::from_millis(600);
pub const MAX_DELIVERIES: u32 = 3;

pub use ordershop_testkit::Infra;

/// The infrastructure with redelivery timeouts short enough for tests.
pub async fn infra() -> Infra {
    let store = StoreConfig {
        claim_idle: CLAIM_IDLE,
        claim_interval: Duration::from_millis(100),
        max_deliveries: MAX_DELIVERIES,
        block: Duration::from_millis(500),
        ..StoreConfig::default()
    };
    let queue = QueueConfig {
        max_attempts: MAX_DELIVERIES,
        reap_interval: Duration::from_millis(50),
        sweep_interval: Duration::from_millis(200),
        orphan_grace: Duration::from_millis(500),
        // These tests use channels of their own.
        channels: Channels::Any,
        ..QueueConfig::default()
    };
    Infra::start_with(store, queue).await
}

/// A topic name no other test uses, so tests can share one Redis.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn event(entity: &str, data: serde_json::Value) -> ordershop_client::Append {
    ordershop_client::Append {
        event_action: "entity_created".into(),
        event_data: data.to_string(),
        entity_id: entity.into(),
        ..Default::default()
    }
}
