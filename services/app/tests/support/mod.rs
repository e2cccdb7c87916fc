//! A private shop for one test: a real redis-server, in-process event store
//! and queue servers on free loopback ports (timeouts shortened so
//! redelivery is quick), and the roles of `ordershop-app` started and
//! stopped at will. Each test gets its own Redis, since the services use
//! the contract's fixed topic and channel names.
#![allow(dead_code, unreachable_pub, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Duration;

use ordershop_app::{AppError, Settings, ViewSettings};
use ordershop_client::{EventStore, Queue};
use ordershop_event_store::StoreConfig;
use ordershop_message_queue::QueueConfig;
use ordershop_redis::Redis;
use ordershop_testkit::eventually_async;
use ordershop_topology::{Role, TOPICS, channel_name};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const CLAIM_IDLE: Duration = Duration::from_millis(600);
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The shared in-process infrastructure, plus the roles of this crate.
pub struct Infra(ordershop_testkit::Infra);

impl std::ops::Deref for Infra {
    type Target = ordershop_testkit::Infra;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Infra {
    /// Servers with timeouts shortened for tests.
    pub async fn start() -> Self {
        let store_config = StoreConfig {
            claim_idle: CLAIM_IDLE,
            claim_interval: Duration::from_millis(100),
            max_deliveries: 8,
            block: Duration::from_millis(500),
            ..StoreConfig::default()
        };
        let queue_config = QueueConfig {
            max_attempts: 8,
            reap_interval: Duration::from_millis(50),
            orphan_grace: Duration::from_millis(500),
            ..QueueConfig::default()
        };
        Self::start_with(store_config, queue_config).await
    }

    pub async fn start_with(store_config: StoreConfig, queue_config: QueueConfig) -> Self {
        // Secured as in production, so every test also checks that each
        // role stays within what the topology lets it do.
        Self(ordershop_testkit::Infra::start_secured_with(store_config, queue_config).await)
    }

    pub fn cache(&self) -> Redis {
        Redis::open(self.redis.url()).unwrap()
    }

    /// Starts `role` as instance `instance`.
    pub fn spawn(&self, role: Role, instance: &str) -> Running {
        self.spawn_with(role, instance, settings())
    }

    pub fn spawn_with(&self, role: Role, instance: &str, settings: Settings) -> Running {
        let cancel = CancellationToken::new();
        let redis = (role == Role::ReadModel).then(|| self.cache());
        let readiness = settings.readiness.clone();
        let handle = tokio::spawn(ordershop_app::run(
            role,
            self.clients_as(role, instance),
            redis,
            settings,
            cancel.clone(),
        ));
        Running {
            role,
            cancel,
            handle,
            readiness,
        }
    }

    /// Every worker role, one instance each.
    pub fn spawn_all(&self) -> Vec<Running> {
        workers().map(|role| self.spawn(role, "a")).collect()
    }

    pub fn api(&self) -> Api {
        Api {
            queue: Queue::connect(&self.queue_url, "test")
                .unwrap()
                .with_credentials(self.credentials(Role::ApiGateway)),
            store: EventStore::connect(&self.event_store_url)
                .unwrap()
                .with_credentials(self.credentials(Role::ApiGateway)),
        }
    }
}

/// The roles this crate runs: everything but the event store, the queue
/// and the gateway.
pub fn workers() -> impl Iterator<Item = Role> {
    Role::ALL
        .into_iter()
        .filter(|r| !r.is_infrastructure() && *r != Role::ApiGateway)
}

/// Short waits, so stops and redeliveries are quick.
pub fn settings() -> Settings {
    Settings {
        concurrency: 2,
        receive_wait: Duration::from_millis(300),
        lease: Duration::from_secs(5),
        view: ViewSettings {
            idle_check: Duration::from_millis(300),
            ..ViewSettings::default()
        },
        ..Settings::default()
    }
}

/// A running role.
pub struct Running {
    pub role: Role,
    cancel: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
    pub readiness: ordershop_app::Readiness,
}

impl Running {
    pub async fn ready(&self) {
        tokio::time::timeout(DEADLINE, self.readiness.wait())
            .await
            .unwrap_or_else(|_| panic!("{:?} did not become ready", self.role));
    }

    /// Stops the role and checks it stopped cleanly and quickly.
    pub async fn stop(self) {
        self.cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .unwrap_or_else(|_| panic!("{:?} did not stop within 5 s", self.role))
            .unwrap();
        result.unwrap();
    }
}

impl Running {
    /// Waits for the role to end by itself (not stopped) and returns how.
    pub async fn ended(self) -> Result<(), AppError> {
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .unwrap_or_else(|_| panic!("{:?} did not end", self.role))
            .unwrap()
    }
}

pub async fn all_ready(roles: &[Running]) {
    for role in roles {
        role.ready().await;
    }
}

/// What the gateway does, in a few lines: calls over the queue, reads
/// that wait for the read model to include every write so far.
#[derive(Clone)]
pub struct Api {
    pub queue: Queue,
    pub store: EventStore,
}

impl Api {
    /// A sync call; returns the whole envelope.
    pub async fn call(&self, channel: &str, payload: Value) -> Value {
        let reply = self
            .queue
            .call(channel, &payload.to_string(), "", Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{channel}: {e}"));
        serde_json::from_str(&reply).unwrap()
    }

    /// `<service>.<function>` of a role, expecting success; returns `result`.
    pub async fn ok(&self, role: Role, function: &str, payload: Value) -> Value {
        let reply = self
            .call(&channel_name(role.service_name(), function), payload)
            .await;
        assert!(reply.get("error").is_none(), "{function} failed: {reply}");
        assert!(reply["positions"].is_object(), "no positions in {reply}");
        reply["result"].clone()
    }

    /// Creates one entity, returns its id.
    pub async fn create(&self, role: Role, plural: &str, payload: Value) -> String {
        let ids = self.ok(role, &format!("create_{plural}"), payload).await;
        ids[0].as_str().unwrap().to_string()
    }

    /// A read-model query that sees every write completed before it.
    pub async fn query(&self, function: &str, mut payload: Value) -> Value {
        let heads = self.store.heads(TOPICS).await.unwrap();
        payload["after"] = json!(heads);
        let reply = self
            .call(
                &channel_name(Role::ReadModel.service_name(), function),
                payload,
            )
            .await;
        assert!(reply.get("error").is_none(), "{function} failed: {reply}");
        reply["result"].clone()
    }

    pub async fn entity(&self, name: &str, id: &str) -> Value {
        self.query("get_entity", json!({"name": name, "id": id}))
            .await
    }

    pub async fn entities(&self, name: &str) -> Vec<Value> {
        let all = self.query("get_entities", json!({ "name": name })).await;
        all.as_array().unwrap().clone()
    }

    pub async fn mails(&self) -> Vec<Value> {
        self.query("get_mails", json!({}))
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    /// Polls the read model until the order has `status`.
    pub async fn order_reaches(&self, order: &str, status: &str) {
        eventually_async(&format!("order {order} {status}"), DEADLINE, || async {
            let found = self.entity("order", order).await;
            (found["status"] == json!(status)).then_some(())
        })
        .await;
    }

    /// Orders `cart` and waits until the stock verdict is IN_STOCK.
    pub async fn order_in_stock(&self, cart: &str) -> String {
        let order = self
            .create(Role::Order, "orders", json!({"cart_id": cart}))
            .await;
        self.order_reaches(&order, "IN_STOCK").await;
        order
    }

    /// Every entity of every kind and the mails: the read model's state.
    pub async fn everything(&self) -> BTreeMap<String, Value> {
        let mut state = BTreeMap::new();
        for name in ordershop_topology::ENTITY_TOPICS.iter().copied() {
            state.insert(name.to_string(), json!(self.entities(name).await));
        }
        state.insert("mails".to_string(), json!(self.mails().await));
        state
    }
}

/// A customer, a product at `price` with `stock` pieces, and a cart of
/// `pieces` of it. Returns (customer, product, inventory, cart).
pub async fn stocked_cart(
    api: &Api,
    stock: i64,
    pieces: usize,
) -> (String, String, String, String) {
    let customer = api
        .create(
            Role::Customer,
            "customers",
            json!({"name": "Ann", "email": "ann@example.org"}),
        )
        .await;
    let product = api
        .create(
            Role::Product,
            "products",
            json!({"name": "Pen", "price": 2.5}),
        )
        .await;
    let inventory = api
        .create(
            Role::Inventory,
            "inventories",
            json!({"product_id": product, "amount": stock}),
        )
        .await;
    let cart = api
        .create(
            Role::Cart,
            "carts",
            json!({"customer_id": customer, "product_ids": vec![product.clone(); pieces]}),
        )
        .await;
    (customer, product, inventory, cart)
}
