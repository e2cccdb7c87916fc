//! The gateway's side of the wire contract: commands to the domain
//! services and queries to the read model, both over the message queue.
//!
//! Reads are read-your-writes across replicas: each query carries, as
//! `after`, the event store's current heads of the topics it touches, and
//! the read model answers only once it has applied them. So a read sees
//! every write that completed before it started, whichever replica took it.

use std::{sync::Arc, time::Duration};

use futures::future::{try_join, try_join_all};
use ordershop_client::{Clients, EventStore, SharedHeads};
use ordershop_core::{
    CommandOp, EntityKind, Topic,
    query::{EntityMap, EntitySnapshot, orders_report, report},
};
use ordershop_topology::{Role, channel_name};
use serde_json::{Map, Value, json};

use crate::reply::{ApiError, Dependency, read_reply};

/// Topic → entry id, as the read model's `after` expects it.
pub(crate) type Heads = Map<String, Value>;

/// A read-model query (functions of [`Role::ReadModel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    Entity { kind: EntityKind, id: String },
    Entities { kind: EntityKind },
    Mails,
    UnbilledOrders,
    UnshippedOrders,
    DeliveredOrders,
}

impl Query {
    pub(crate) fn function(&self) -> &'static str {
        match self {
            Query::Entity { .. } => "get_entity",
            Query::Entities { .. } => "get_entities",
            Query::Mails => "get_mails",
            Query::UnbilledOrders => "get_unbilled_orders",
            Query::UnshippedOrders => "get_unshipped_orders",
            Query::DeliveredOrders => "get_delivered_orders",
        }
    }

    /// The topics whose events decide the answer: the read must have seen
    /// their heads.
    pub(crate) fn topics(&self) -> Vec<Topic> {
        match self {
            Query::Entity { kind, .. } | Query::Entities { kind } => vec![kind.topic()],
            Query::Mails => vec![Topic::Mail],
            Query::UnbilledOrders => vec![Topic::Order, Topic::Billing],
            Query::UnshippedOrders | Query::DeliveredOrders => vec![Topic::Order, Topic::Shipping],
        }
    }

    /// The request without `after`.
    fn request(&self) -> Map<String, Value> {
        let request = match self {
            Query::Entity { kind, id } => json!({ "name": kind.singular(), "id": id }),
            Query::Entities { kind } => json!({ "name": kind.singular() }),
            _ => json!({}),
        };
        match request {
            Value::Object(fields) => fields,
            _ => Map::new(),
        }
    }
}

/// The domain service that owns `kind` (and serves its commands).
pub(crate) fn owner(kind: EntityKind) -> Role {
    Role::ALL
        .into_iter()
        .find(|role| role.owned_topic() == Some(kind.singular()))
        .expect("the topology names an owner for every entity kind (tested)")
}

/// `<service>.<function>` of a command, e.g. `cart-service.create_carts`.
pub(crate) fn command_channel(kind: EntityKind, op: CommandOp) -> String {
    channel_name(owner(kind).service_name(), &op.function_name(kind))
}

/// `read-model.<function>`.
pub(crate) fn query_channel(query: &Query) -> String {
    channel_name(Role::ReadModel.service_name(), query.function())
}

/// Calls to the event store and the queue on behalf of requests.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    clients: Clients,
    call_timeout: Duration,
    /// Every topic's head, one request shared by the reads waiting for it.
    heads: Arc<SharedHeads>,
}

impl Upstream {
    pub(crate) fn new(clients: Clients, call_timeout: Duration) -> Self {
        let topics: Vec<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
        Self {
            heads: Arc::new(SharedHeads::new(clients.event_store.clone(), &topics)),
            clients,
            call_timeout,
        }
    }

    pub(crate) fn event_store(&self) -> &EventStore {
        &self.clients.event_store
    }

    /// A sync command: waits for the domain service's reply and returns its
    /// result (ids for a create, `true` for an update or delete).
    pub(crate) async fn command(
        &self,
        kind: EntityKind,
        op: CommandOp,
        payload: &Value,
        idempotency_key: &str,
    ) -> Result<Value, ApiError> {
        let channel = command_channel(kind, op);
        self.call(&channel, &payload.to_string(), idempotency_key)
            .await
    }

    /// An async create: enqueues and returns the message id at once.
    pub(crate) async fn enqueue_create(
        &self,
        kind: EntityKind,
        payload: &Value,
        idempotency_key: &str,
    ) -> Result<String, ApiError> {
        let channel = command_channel(kind, CommandOp::Create);
        self.clients
            .queue
            .send(&channel, &payload.to_string(), idempotency_key)
            .await
            .map_err(|err| {
                ApiError::from_client(Dependency::Queue, &channel, self.call_timeout, &err)
            })
    }

    /// A read-model query that sees every write completed before it.
    pub(crate) async fn query(&self, query: &Query) -> Result<Value, ApiError> {
        let heads = self.heads().await?;
        self.query_after(query, &heads).await
    }

    /// The `/report` object: every entity list and the mails.
    pub(crate) async fn report(&self) -> Result<Value, ApiError> {
        let heads = self.heads().await?;
        let (snapshot, mails) = try_join(
            self.snapshot(&EntityKind::ALL, &heads),
            self.query_after(&Query::Mails, &heads),
        )
        .await?;
        let Value::Array(mails) = mails else {
            return Err(not_a_list(&Query::Mails));
        };
        Ok(report(&snapshot, mails))
    }

    /// The `/report/orders` list: orders with their cart, customer,
    /// products, billings and shippings expanded.
    pub(crate) async fn orders_report(&self) -> Result<Value, ApiError> {
        const KINDS: [EntityKind; 6] = [
            EntityKind::Order,
            EntityKind::Cart,
            EntityKind::Customer,
            EntityKind::Product,
            EntityKind::Billing,
            EntityKind::Shipping,
        ];
        let heads = self.heads().await?;
        let snapshot = self.snapshot(&KINDS, &heads).await?;
        Ok(Value::Array(orders_report(&snapshot)))
    }

    /// Whether the event store answers its standard gRPC health check as
    /// SERVING (it reports that only while it reaches Redis).
    pub(crate) async fn probe_event_store(&self, within: Duration) -> Result<(), ApiError> {
        probe(
            Dependency::EventStore,
            within,
            self.clients.event_store.healthy(),
        )
        .await
    }

    /// Whether the queue answers its health check as SERVING (likewise).
    pub(crate) async fn probe_queue(&self, within: Duration) -> Result<(), ApiError> {
        probe(Dependency::Queue, within, self.clients.queue.healthy()).await
    }

    /// The current heads of every topic ("0-0" for an empty topic), read
    /// after this call began; concurrent reads share one request.
    async fn heads(&self) -> Result<Heads, ApiError> {
        let heads = tokio::time::timeout(self.call_timeout, self.heads.current())
            .await
            .map_err(|_| {
                unavailable(
                    Dependency::EventStore,
                    format!("heads: no answer within {:?}", self.call_timeout),
                )
            })?
            .map_err(|err| {
                ApiError::from_client(
                    Dependency::EventStore,
                    "the event store",
                    self.call_timeout,
                    &err,
                )
            })?;
        Ok(heads
            .iter()
            .map(|(topic, head)| (topic.clone(), Value::String(head.clone())))
            .collect())
    }

    /// Runs `query` with `after` = the entries of `heads` for its topics.
    async fn query_after(&self, query: &Query, heads: &Heads) -> Result<Value, ApiError> {
        let after: Map<String, Value> = query
            .topics()
            .into_iter()
            .filter_map(|topic| {
                let head = heads.get(topic.name())?;
                Some((topic.name().to_owned(), head.clone()))
            })
            .collect();
        let mut request = query.request();
        request.insert("after".to_owned(), Value::Object(after));
        let channel = query_channel(query);
        self.call(&channel, &Value::Object(request).to_string(), "")
            .await
    }

    /// Every entity of `kinds`, queried at once.
    async fn snapshot(
        &self,
        kinds: &[EntityKind],
        heads: &Heads,
    ) -> Result<EntitySnapshot, ApiError> {
        let lists = try_join_all(kinds.iter().map(|&kind| async move {
            let query = Query::Entities { kind };
            match self.query_after(&query, heads).await? {
                Value::Array(list) => Ok((kind, list)),
                _ => Err(not_a_list(&query)),
            }
        }))
        .await?;
        let mut snapshot = EntitySnapshot::new();
        for (kind, list) in lists {
            snapshot.insert(kind, by_id(kind, list));
        }
        Ok(snapshot)
    }

    async fn call(
        &self,
        channel: &str,
        payload: &str,
        idempotency_key: &str,
    ) -> Result<Value, ApiError> {
        let reply = self
            .clients
            .queue
            .call(channel, payload, idempotency_key, self.call_timeout)
            .await
            .map_err(|err| {
                ApiError::from_client(Dependency::Queue, channel, self.call_timeout, &err)
            })?;
        read_reply(channel, &reply)
    }
}

fn unavailable(dependency: Dependency, detail: String) -> ApiError {
    ApiError::Unavailable { dependency, detail }
}

fn not_a_list(query: &Query) -> ApiError {
    ApiError::BadGateway {
        upstream: query_channel(query),
        detail: "expected a list as the result".to_owned(),
    }
}

/// Entities keyed by `entity_id`, the shape the core's reports take.
fn by_id(kind: EntityKind, list: Vec<Value>) -> EntityMap {
    list.into_iter()
        .filter_map(|entity| {
            let id = entity.get("entity_id").and_then(Value::as_str);
            match id {
                Some(id) => Some((id.to_owned(), entity.clone())),
                None => {
                    tracing::warn!(%kind, %entity, "read model returned an entity without entity_id");
                    None
                }
            }
        })
        .collect()
}

/// A dependency's health check, bounded by `within`.
async fn probe(
    dependency: Dependency,
    within: Duration,
    serving: impl Future<Output = bool>,
) -> Result<(), ApiError> {
    match tokio::time::timeout(within, serving).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(unavailable(dependency, "not serving".to_owned())),
        Err(_) => Err(unavailable(
            dependency,
            format!("no answer within {within:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_channel_is_served_by_its_owner() {
        for kind in EntityKind::ALL {
            for op in [CommandOp::Create, CommandOp::Update, CommandOp::Delete] {
                let channel = command_channel(kind, op);
                assert!(owner(kind).channels().contains(&channel), "{channel}");
            }
        }
        assert_eq!(
            command_channel(EntityKind::Inventory, CommandOp::Create),
            "inventory-service.create_inventories"
        );
    }

    #[test]
    fn every_query_is_a_read_model_function() {
        let queries = [
            Query::Entity {
                kind: EntityKind::Cart,
                id: "c1".into(),
            },
            Query::Entities {
                kind: EntityKind::Cart,
            },
            Query::Mails,
            Query::UnbilledOrders,
            Query::UnshippedOrders,
            Query::DeliveredOrders,
        ];
        for query in queries {
            assert!(
                Role::ReadModel.channels().contains(&query_channel(&query)),
                "{query:?}"
            );
        }
    }
}
