//! The gateway's side of the wire contract: commands to the domain
//! services and queries to the read model, both over the message queue.
//!
//! Reads are read-your-writes across replicas: each query carries, as
//! `after`, the event store's current heads of the topics it touches, and
//! the read model answers only once it has applied them. So a read sees
//! every write that completed before it started, whichever replica took it.

use std::{sync::Arc, time::Duration};

use ordershop_client::{Clients, EventStore, SharedHeads};
use ordershop_core::{CommandOp, EntityKind, Topic, commands::check_input};
use ordershop_topology::{Role, channel_name};
use serde_json::{Map, Value, json};

use crate::reply::{ApiError, Dependency, read_reply};

/// Topic → entry id, as the read model's `after` expects it.
pub(crate) type Heads = Map<String, Value>;

/// A read-model query (functions of [`Role::ReadModel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    Entity {
        kind: EntityKind,
        id: String,
    },
    Entities {
        kind: EntityKind,
    },
    Mails,
    UnbilledOrders,
    UnshippedOrders,
    DeliveredOrders,
    /// Orders with their cart, customer, products, billings, shippings.
    OrdersReport,
}

/// One page of a list, as the read model answers it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Page {
    pub(crate) items: Vec<Value>,
    /// The cursor of the next page; `None` on the last one.
    pub(crate) next: Option<String>,
    /// Entries of the whole list, where the read model knows it without
    /// reading them all (unfiltered lists).
    pub(crate) total: Option<u64>,
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
            Query::OrdersReport => "get_orders_report",
        }
    }

    /// Whether the v2 answer is a map id → entity rather than a list.
    pub(crate) fn is_map(&self) -> bool {
        matches!(self, Query::UnbilledOrders | Query::UnshippedOrders)
    }

    /// The topics whose events decide the answer: the read must have seen
    /// their heads.
    pub(crate) fn topics(&self) -> Vec<Topic> {
        match self {
            Query::Entity { kind, .. } | Query::Entities { kind } => vec![kind.topic()],
            Query::Mails => vec![Topic::Mail],
            Query::UnbilledOrders => vec![Topic::Order, Topic::Billing],
            Query::UnshippedOrders | Query::DeliveredOrders => vec![Topic::Order, Topic::Shipping],
            Query::OrdersReport => vec![
                Topic::Order,
                Topic::Cart,
                Topic::Customer,
                Topic::Product,
                Topic::Billing,
                Topic::Shipping,
            ],
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

/// The command's payload, once it passes the domain's input rules: malformed
/// input is refused here, before anything is enqueued, with the domain's own
/// message — an async create has no other chance to tell its caller.
fn checked(kind: EntityKind, op: CommandOp, payload: &Value) -> Result<String, ApiError> {
    check_input(kind, op, payload).map_err(|err| ApiError::Refused {
        kind: err.kind(),
        message: err.to_string(),
    })?;
    Ok(payload.to_string())
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
        let payload = checked(kind, op, payload)?;
        let channel = command_channel(kind, op);
        self.call(&channel, &payload, idempotency_key).await
    }

    /// An async create: enqueues and returns the message id at once.
    pub(crate) async fn enqueue_create(
        &self,
        kind: EntityKind,
        payload: &Value,
        idempotency_key: &str,
    ) -> Result<String, ApiError> {
        let payload = checked(kind, CommandOp::Create, payload)?;
        let channel = command_channel(kind, CommandOp::Create);
        self.clients
            .queue
            .send(&channel, &payload, idempotency_key)
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

    /// One page of a list query: at most `limit` entries after `cursor`
    /// (the `next` of the previous page), as of `heads`.
    pub(crate) async fn page(
        &self,
        query: &Query,
        heads: &Heads,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, ApiError> {
        let page = json!({"limit": limit, "cursor": cursor});
        let answer = self.query_with(query, heads, Some(page)).await?;
        let broken = |detail: &str| ApiError::BadGateway {
            upstream: query_channel(query),
            detail: detail.to_owned(),
        };
        let Value::Object(mut fields) = answer else {
            return Err(broken("expected a page as the result"));
        };
        let items = match fields.remove("items") {
            Some(Value::Array(items)) => items,
            _ => return Err(broken("a page without items")),
        };
        let next = match fields.remove("next") {
            None | Some(Value::Null) => None,
            Some(Value::String(next)) => Some(next),
            Some(_) => return Err(broken("a page whose next is not a string")),
        };
        Ok(Page {
            items,
            next,
            total: fields.get("total").and_then(Value::as_u64),
        })
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
    pub(crate) async fn heads(&self) -> Result<Heads, ApiError> {
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
        self.query_with(query, heads, None).await
    }

    /// Runs `query` after `heads`, for one `page` when given.
    async fn query_with(
        &self,
        query: &Query,
        heads: &Heads,
        page: Option<Value>,
    ) -> Result<Value, ApiError> {
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
        if let Some(page) = page {
            request.insert("page".to_owned(), page);
        }
        let channel = query_channel(query);
        self.call(&channel, &Value::Object(request).to_string(), "")
            .await
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
            Query::OrdersReport,
        ];
        for query in queries {
            assert!(
                Role::ReadModel.channels().contains(&query_channel(&query)),
                "{query:?}"
            );
        }
    }
}
