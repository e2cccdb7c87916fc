//! A real redis-server plus in-process event store and queue servers on
//! free loopback ports, with timeouts shortened so redelivery tests are quick.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use ordershop_client::{EventStore, Queue};
use ordershop_event_store::StoreConfig;
use ordershop_message_queue::QueueConfig;
use ordershop_redis::Redis;
use ordershop_testkit::RedisServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const CLAIM_IDLE: Duration = Duration::from_millis(600);
pub const MAX_DELIVERIES: u32 = 3;

pub struct Infra {
    pub redis: RedisServer,
    pub event_store_url: String,
    pub queue_url: String,
    pub shutdown: CancellationToken,
}

impl Infra {
    pub async fn start() -> Self {
        let redis = RedisServer::start();
        let shutdown = CancellationToken::new();
        let es = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mq = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let event_store_url = format!("http://{}", es.local_addr().unwrap());
        let queue_url = format!("http://{}", mq.local_addr().unwrap());
        let store_config = StoreConfig {
            claim_idle: CLAIM_IDLE,
            claim_interval: Duration::from_millis(100),
            max_deliveries: MAX_DELIVERIES,
            block: Duration::from_millis(500),
        };
        let queue_config = QueueConfig {
            max_attempts: MAX_DELIVERIES,
            reap_interval: Duration::from_millis(50),
            orphan_grace: Duration::from_millis(500),
            ..QueueConfig::default()
        };
        let conn = Redis::open(redis.url()).unwrap();
        tokio::spawn(ordershop_event_store::server::run(
            es,
            conn.clone(),
            store_config,
            shutdown.clone(),
        ));
        tokio::spawn(ordershop_message_queue::server::run(
            mq,
            conn,
            queue_config,
            shutdown.clone(),
        ));
        Self {
            redis,
            event_store_url,
            queue_url,
            shutdown,
        }
    }

    pub fn event_store(&self) -> EventStore {
        EventStore::connect(&self.event_store_url).unwrap()
    }

    pub fn queue(&self, consumer: &str) -> Queue {
        Queue::connect(&self.queue_url, consumer).unwrap()
    }

    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Infra {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
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
