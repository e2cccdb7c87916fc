//! The read model's queue functions, answered from the Redis cache.
//!
//! Every query reads what it needs together with the checkpoints of its
//! `after` topics in one atomic Redis call, so the answer is a consistent
//! snapshot that includes every position asked for. When the cache is
//! behind, the query waits for the fold tasks (bounded by `wait`), then
//! answers `internal` "read model is behind".
//!
//! Lists are read in pages ([`super::pages`]). A request with `page:
//! {limit, cursor}` gets one page, `{items, next, total}`, and follows
//! `next` for the rest; a request without `page` (the v2 contract) gets the
//! whole list, as long as it stays under [`REPLY_BYTES`] — a larger answer
//! would exceed what the queue carries, so it is refused with a clear
//! error that says to ask for pages instead.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use ordershop_client::{HandlerError, Message};
use ordershop_core::query::{
    EntityMap, EntityQuery, EntitySnapshot, Selector, matches_props, orders_report,
};
use ordershop_core::{DomainError, EntityKind, ErrorKind, Topic};
use ordershop_redis::Redis;
use ordershop_topology::ReadModelKeys;
use redis::Script;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::envelope;
use crate::read_model::fold::FoldHandle;
use crate::read_model::pages::{Filter, MAX_LIMIT, Page, PageRead, page_script, read_page};
use crate::read_model::script::{DELIVERED_TAG, ORDER_TAG, order_tag};
use ordershop_topology::EntryId;

/// How long a behind query sleeps at most between two looks at the cache,
/// when no fold task reports progress (e.g. another replica is folding).
const RECHECK_EVERY: Duration = Duration::from_millis(50);

/// The most a whole-list answer (no `page`) may hold, in bytes of
/// documents: the queue refuses payloads over 1 MiB.
pub(crate) const REPLY_BYTES: usize = 768 * 1024;

/// Orders per page of the orders report, read before expanding them.
const ORDERS_REPORT_PAGE: usize = 250;

/// The most a page of the orders report holds once expanded, in bytes.
const EXPANDED_PAGE_BYTES: usize = 512 * 1024;

/// One entity read by id.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    One(Topic, String),
    Many(Topic, Vec<String>),
    /// For each tag of `Topic`, the JSON list of ids carrying it.
    Tagged(Topic, Vec<String>),
}

/// What a [`Read`] found.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    One(Option<Value>),
    Many(Vec<Option<Value>>),
}

/// One page of a list, read by [`Queries::page`].
#[derive(Debug)]
struct Listed {
    /// Key and item, in key order.
    items: Vec<(String, Value)>,
    /// The cursor of the next page; `None` when this one is the last.
    next: Option<String>,
    /// Entries in the listed topic (before any filter).
    total: u64,
    /// Size of the items as JSON.
    bytes: usize,
}

impl Listed {
    /// Ends the page before its items outgrow `budget` bytes (keeping at
    /// least one) and points `next` at the last item kept. Sizes the items
    /// as JSON, once: expanded orders are several times their own size.
    fn end_before(&mut self, budget: usize) {
        let mut bytes = 0;
        let mut keep = self.items.len();
        for (n, (_, item)) in self.items.iter().enumerate() {
            let size = item.to_string().len();
            if n > 0 && bytes + size > budget {
                keep = n;
                break;
            }
            bytes += size;
        }
        if keep < self.items.len() {
            self.items.truncate(keep);
            self.next = self.items.last().map(|(key, _)| key.clone());
        }
        self.bytes = bytes;
    }
}

impl Found {
    /// Every document found, in the order asked for.
    fn into_many(self) -> Vec<Option<Value>> {
        match self {
            Found::One(doc) => vec![doc],
            Found::Many(docs) => docs,
        }
    }
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0}")]
    Invalid(String),
    #[error("read model is behind")]
    Behind,
    #[error(
        "the answer is over {} KiB, more than a queue message carries: ask for it in pages, \
         e.g. \"page\": {{\"limit\": 500}}, and follow \"next\"",
        REPLY_BYTES / 1024
    )]
    TooLarge,
    #[error("cache: {0}")]
    Cache(#[from] redis::RedisError),
}

/// `page: {limit, cursor}` of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageRequest {
    limit: usize,
    cursor: Option<String>,
}

/// A list query: which topic, which entries, how each page becomes items.
#[derive(Debug, Clone, Copy, PartialEq)]
enum List {
    Entities(Topic),
    Mails,
    Unbilled,
    Unshipped,
    Delivered,
    OrdersReport,
}

impl List {
    fn topic(self) -> Topic {
        match self {
            List::Entities(topic) => topic,
            List::Mails => Topic::Mail,
            _ => Topic::Order,
        }
    }

    fn filter(self) -> Filter {
        match self {
            List::Unbilled => Filter::Without {
                topic: Topic::Billing,
                prefix: ORDER_TAG,
            },
            List::Unshipped => Filter::Without {
                topic: Topic::Shipping,
                prefix: ORDER_TAG,
            },
            List::Delivered => Filter::With {
                topic: Topic::Shipping,
                prefix: DELIVERED_TAG,
            },
            _ => Filter::All,
        }
    }

    /// Whether the v2 answer is a map id → entity rather than a list.
    fn as_map(self) -> bool {
        matches!(self, List::Unbilled | List::Unshipped)
    }
}

/// The query side of the read model.
#[derive(Debug)]
pub(crate) struct Queries {
    redis: Redis,
    folds: HashMap<Topic, FoldHandle>,
    wait: Duration,
    pages: Script,
}

impl Queries {
    pub(crate) fn new(redis: Redis, folds: HashMap<Topic, FoldHandle>, wait: Duration) -> Queries {
        Queries {
            redis,
            folds,
            wait,
            pages: page_script(),
        }
    }

    /// Answers `read-model.<function>`.
    pub(crate) async fn handle(
        &self,
        function: &str,
        message: &Message,
    ) -> Result<Option<String>, HandlerError> {
        let answer = self.answer(function, &message.payload).await;
        tracing::debug!(%function, id = %message.id, ok = answer.is_ok(), "query answered");
        Ok(Some(match answer {
            Ok(result) => envelope::plain_result(result),
            Err(QueryError::Domain(err)) => envelope::domain_error(&err),
            Err(err @ (QueryError::Invalid(_) | QueryError::TooLarge)) => {
                envelope::error(ErrorKind::Invalid, err)
            }
            Err(err @ QueryError::Behind) => {
                tracing::warn!(%function, "query gave up waiting for the read model");
                envelope::error(ErrorKind::Internal, err)
            }
            Err(err @ QueryError::Cache(_)) => {
                // Redis is away: let the queue redeliver the query rather
                // than answer wrongly.
                return Err(HandlerError::retry(err.to_string()));
            }
        }))
    }

    async fn answer(&self, function: &str, payload: &str) -> Result<Value, QueryError> {
        let request: Value = serde_json::from_str(payload)
            .map_err(|e| QueryError::Invalid(format!("the request is not JSON: {e}")))?;
        let after = positions(&request)?;
        let page = page_request(&request)?;
        let list = match function {
            "get_entity" | "get_entities" => {
                let query = EntityQuery::from_request(&request)?;
                return self
                    .entities(&after, query, function == "get_entity", page)
                    .await;
            }
            "get_mails" => List::Mails,
            "get_unbilled_orders" => List::Unbilled,
            "get_unshipped_orders" => List::Unshipped,
            "get_delivered_orders" => List::Delivered,
            "get_orders_report" => List::OrdersReport,
            other => return Err(QueryError::Invalid(format!("unknown query {other:?}"))),
        };
        self.list(&after, list, None, page).await
    }

    async fn entities(
        &self,
        after: &BTreeMap<Topic, EntryId>,
        query: EntityQuery,
        one: bool,
        page: Option<PageRequest>,
    ) -> Result<Value, QueryError> {
        let topic = query.kind.topic();
        let read = match query.selector {
            Selector::Id(id) => Read::One(topic, id),
            Selector::Ids(ids) => Read::Many(topic, ids),
            Selector::All if one => return Ok(Value::Null),
            Selector::All => return self.list(after, List::Entities(topic), None, page).await,
            Selector::Props(props) if one => return self.first_match(after, topic, &props).await,
            Selector::Props(props) => {
                return self
                    .list(after, List::Entities(topic), Some(&props), page)
                    .await;
            }
        };
        let found = self
            .consistent(after, || self.read(after, std::slice::from_ref(&read)))
            .await?;
        Ok(match (found.into_iter().next(), one) {
            (Some(Found::One(entity)), true) => entity.unwrap_or(Value::Null),
            (Some(Found::One(entity)), false) => Value::Array(entity.into_iter().collect()),
            // First existing of the ids, in the given order.
            (Some(Found::Many(entities)), true) => {
                entities.into_iter().flatten().next().unwrap_or(Value::Null)
            }
            // In the given order, repeats kept, unknown ids left out.
            (Some(Found::Many(entities)), false) => {
                Value::Array(entities.into_iter().flatten().collect())
            }
            (None, true) => Value::Null,
            (None, false) => Value::Array(Vec::new()),
        })
    }

    /// The first entity (in id order) matching `props`, read page by page.
    async fn first_match(
        &self,
        after: &BTreeMap<Topic, EntryId>,
        topic: Topic,
        props: &Map<String, Value>,
    ) -> Result<Value, QueryError> {
        let mut cursor = None;
        loop {
            let listed = self
                .page(after, List::Entities(topic), Some(props), MAX_LIMIT, cursor)
                .await?;
            if let Some((_, first)) = listed.items.into_iter().next() {
                return Ok(first);
            }
            match listed.next {
                Some(next) => cursor = Some(next),
                None => return Ok(Value::Null),
            }
        }
    }

    /// One page of `list` (with `page`), or all of it in the v2 shape.
    async fn list(
        &self,
        after: &BTreeMap<Topic, EntryId>,
        list: List,
        props: Option<&Map<String, Value>>,
        page: Option<PageRequest>,
    ) -> Result<Value, QueryError> {
        if let Some(page) = page {
            let listed = self
                .page(after, list, props, page.limit, page.cursor)
                .await?;
            let mut answer = json!({
                "items": listed.items.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
                "next": listed.next,
            });
            // A filtered list's length is only known by reading it all.
            if matches!(list, List::Entities(_) | List::Mails) && props.is_none() {
                answer["total"] = json!(listed.total);
            }
            return Ok(answer);
        }
        let mut all = Vec::new();
        let mut bytes = 0;
        let mut cursor = None;
        loop {
            let listed = self.page(after, list, props, MAX_LIMIT, cursor).await?;
            bytes += listed.bytes;
            if bytes > REPLY_BYTES {
                return Err(QueryError::TooLarge);
            }
            all.extend(listed.items);
            match listed.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(if list.as_map() {
            Value::Object(all.into_iter().collect())
        } else {
            Value::Array(all.into_iter().map(|(_, item)| item).collect())
        })
    }

    /// One page of `list` after `cursor`.
    async fn page(
        &self,
        after: &BTreeMap<Topic, EntryId>,
        list: List,
        props: Option<&Map<String, Value>>,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Listed, QueryError> {
        let limit = if list == List::OrdersReport {
            limit.min(ORDERS_REPORT_PAGE)
        } else {
            limit
        };
        let read = PageRead {
            topic: list.topic(),
            cursor,
            limit,
            filter: list.filter(),
        };
        let page: Page = self
            .consistent(after, || async {
                let mut conn = self.redis.conn();
                Ok(read_page(&self.pages, &mut conn, after, &read).await?)
            })
            .await?;
        let mut bytes = 0;
        let items: Vec<(String, Value)> = page
            .items
            .into_iter()
            .filter_map(|(key, doc)| Some((key, parse_doc(&doc)?, doc.len())))
            .filter(|(_, item, _)| props.is_none_or(|props| matches_props(item, props)))
            .map(|(key, item, size)| {
                bytes += size;
                (key, item)
            })
            .collect();
        let mut listed = Listed {
            items,
            next: page.next,
            total: page.total,
            bytes,
        };
        if list == List::OrdersReport {
            listed.items = self.expand_orders(listed.items).await?;
            listed.end_before(EXPANDED_PAGE_BYTES);
        }
        Ok(listed)
    }

    /// Orders with their cart (its customer and products), billings and
    /// shippings, as the core's orders report has them; two Redis calls
    /// for the page, whatever its size. The orders' page waited for every
    /// topic's position, so these reads see at least as much.
    async fn expand_orders(
        &self,
        orders: Vec<(String, Value)>,
    ) -> Result<Vec<(String, Value)>, QueryError> {
        let field = |item: &Value, name: &str| item.get(name)?.as_str().map(str::to_owned);
        let cart_ids: Vec<String> = orders
            .iter()
            .filter_map(|(_, order)| field(order, "cart_id"))
            .collect();
        let order_tags: Vec<String> = orders.iter().map(|(id, _)| order_tag(id)).collect();
        let no_wait = BTreeMap::new();
        let first = self
            .read(
                &no_wait,
                &[
                    Read::Many(Topic::Cart, cart_ids),
                    Read::Tagged(Topic::Billing, order_tags.clone()),
                    Read::Tagged(Topic::Shipping, order_tags),
                ],
            )
            .await?
            .1;
        let mut first = first.into_iter().map(Found::into_many);
        let (carts, billing_ids, shipping_ids) = (
            first.next().unwrap_or_default(),
            first.next().unwrap_or_default(),
            first.next().unwrap_or_default(),
        );
        let carts = docs_by_id(carts);
        let customer_ids: Vec<String> = carts
            .values()
            .filter_map(|cart| field(cart, "customer_id"))
            .collect();
        let product_ids: Vec<String> = carts
            .values()
            .filter_map(|cart| cart.get("product_ids")?.as_array().cloned())
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect();
        let second = self
            .read(
                &no_wait,
                &[
                    Read::Many(Topic::Customer, customer_ids),
                    Read::Many(Topic::Product, product_ids),
                    Read::Many(Topic::Billing, holders(billing_ids)),
                    Read::Many(Topic::Shipping, holders(shipping_ids)),
                ],
            )
            .await?
            .1;
        let mut snapshot = EntitySnapshot::new();
        snapshot.insert(EntityKind::Cart, carts);
        let kinds = [
            EntityKind::Customer,
            EntityKind::Product,
            EntityKind::Billing,
            EntityKind::Shipping,
        ];
        for (kind, found) in kinds.into_iter().zip(second) {
            snapshot.insert(kind, docs_by_id(found.into_many()));
        }
        let ids: Vec<String> = orders.iter().map(|(id, _)| id.clone()).collect();
        snapshot.insert(EntityKind::Order, orders.into_iter().collect());
        Ok(ids.into_iter().zip(orders_report(&snapshot)).collect())
    }

    /// Runs `read` once the cache has applied `after`, waiting for it up to
    /// the bound.
    async fn consistent<T, F, Fut>(
        &self,
        after: &BTreeMap<Topic, EntryId>,
        mut read: F,
    ) -> Result<T, QueryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Vec<EntryId>, T), QueryError>>,
    {
        let deadline = Instant::now() + self.wait;
        loop {
            let (checkpoints, found) = read().await?;
            let behind: Vec<Topic> = after
                .iter()
                .zip(&checkpoints)
                .filter(|((_, wanted), have)| have < wanted)
                .map(|((topic, _), _)| *topic)
                .collect();
            if behind.is_empty() {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(QueryError::Behind);
            }
            self.wait_for_progress(&behind, after, &checkpoints, deadline)
                .await;
        }
    }
    /// Waits until a fold task of a `behind` topic reports a checkpoint
    /// different from what the cache just said, or a short while passes.
    async fn wait_for_progress(
        &self,
        behind: &[Topic],
        after: &BTreeMap<Topic, EntryId>,
        checkpoints: &[EntryId],
        deadline: Instant,
    ) {
        let seen: BTreeMap<Topic, EntryId> = after
            .keys()
            .copied()
            .zip(checkpoints.iter().copied())
            .collect();
        let waits: Vec<_> = behind
            .iter()
            .filter_map(|topic| {
                let fold = self.folds.get(topic)?;
                let in_cache = seen[topic];
                if *fold.checkpoint.borrow() > in_cache {
                    // The task believes the cache is further than it is:
                    // the cache was flushed under it.
                    fold.recheck();
                }
                let mut rx = fold.checkpoint.clone();
                Some(Box::pin(async move {
                    let _ = rx.wait_for(|c| *c != in_cache).await;
                }))
            })
            .collect();
        let until = deadline.min(Instant::now() + RECHECK_EVERY);
        if waits.is_empty() {
            tokio::time::sleep_until(until).await;
        } else {
            let _ = tokio::time::timeout_at(until, futures::future::select_all(waits)).await;
        }
    }

    /// One atomic transaction: the checkpoints of `after`'s topics, then
    /// every read.
    async fn read(
        &self,
        after: &BTreeMap<Topic, EntryId>,
        reads: &[Read],
    ) -> Result<(Vec<EntryId>, Vec<Found>), QueryError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for topic in after.keys() {
            pipe.get(ReadModelKeys::new(topic.name()).checkpoint);
        }
        for read in reads {
            match read {
                Read::One(topic, id) => {
                    pipe.hget(ReadModelKeys::new(topic.name()).entities, id);
                }
                // HMGET needs at least one field.
                Read::Many(_, ids) | Read::Tagged(_, ids) if ids.is_empty() => {}
                Read::Many(topic, ids) => {
                    pipe.cmd("HMGET")
                        .arg(ReadModelKeys::new(topic.name()).entities)
                        .arg(ids);
                }
                Read::Tagged(topic, tags) => {
                    pipe.cmd("HMGET")
                        .arg(ReadModelKeys::new(topic.name()).tagged)
                        .arg(tags);
                }
            }
        }
        let mut conn = self.redis.conn();
        let values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut values = values.into_iter();
        let mut checkpoints = Vec::with_capacity(after.len());
        for _ in after {
            let stored: Option<String> = take(&mut values)?;
            checkpoints.push(
                stored
                    .as_deref()
                    .and_then(EntryId::parse)
                    .unwrap_or(EntryId::ZERO),
            );
        }
        let mut found = Vec::with_capacity(reads.len());
        for read in reads {
            found.push(match read {
                Read::One(_, _) => {
                    let raw: Option<String> = take(&mut values)?;
                    Found::One(raw.as_deref().and_then(parse_doc))
                }
                Read::Many(_, ids) | Read::Tagged(_, ids) if ids.is_empty() => {
                    Found::Many(Vec::new())
                }
                Read::Many(_, _) | Read::Tagged(_, _) => {
                    let raw: Vec<Option<String>> = take(&mut values)?;
                    Found::Many(
                        raw.iter()
                            .map(|d| d.as_deref().and_then(parse_doc))
                            .collect(),
                    )
                }
            });
        }
        Ok((checkpoints, found))
    }
}

/// Entity documents found, by their `entity_id`.
fn docs_by_id(docs: Vec<Option<Value>>) -> EntityMap {
    docs.into_iter()
        .flatten()
        .filter_map(|entity| Some((entity.get("entity_id")?.as_str()?.to_owned(), entity)))
        .collect()
}

/// Every id in tag lookups' lists, once.
fn holders(lists: Vec<Option<Value>>) -> Vec<String> {
    let mut ids: Vec<String> = lists
        .iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn take<T: redis::FromRedisValue>(
    values: &mut impl Iterator<Item = redis::Value>,
) -> Result<T, QueryError> {
    let value = values.next().unwrap_or(redis::Value::Nil);
    redis::from_redis_value(value).map_err(|e| QueryError::Cache(e.into()))
}

fn parse_doc(doc: &str) -> Option<Value> {
    serde_json::from_str(doc)
        .inspect_err(|err| tracing::error!(error = %err, "unreadable document in the cache"))
        .ok()
}

/// The request's `after`: `{topic: entry id}`.
fn positions(request: &Value) -> Result<BTreeMap<Topic, EntryId>, QueryError> {
    let Some(after) = request.get("after").filter(|a| !a.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let invalid = || QueryError::Invalid("after must map topics to entry ids".into());
    let after = after.as_object().ok_or_else(invalid)?;
    after
        .iter()
        .map(|(topic, entry)| {
            let topic = Topic::from_name(topic).ok_or_else(|| {
                QueryError::Invalid(format!("after names unknown topic {topic:?}"))
            })?;
            let entry = entry
                .as_str()
                .and_then(EntryId::parse)
                .ok_or_else(invalid)?;
            Ok((topic, entry))
        })
        .collect()
}

/// The request's `page`: `{limit, cursor}`, limit 1 to [`MAX_LIMIT`].
fn page_request(request: &Value) -> Result<Option<PageRequest>, QueryError> {
    let Some(page) = request.get("page").filter(|p| !p.is_null()) else {
        return Ok(None);
    };
    let invalid = |why: &str| QueryError::Invalid(format!("page: {why}"));
    let page = page
        .as_object()
        .ok_or_else(|| invalid("must be an object {limit, cursor}"))?;
    let limit = match page.get("limit") {
        None | Some(Value::Null) => MAX_LIMIT,
        Some(limit) => limit
            .as_u64()
            .filter(|l| (1..=MAX_LIMIT as u64).contains(l))
            .ok_or_else(|| invalid(&format!("limit must be an integer from 1 to {MAX_LIMIT}")))?
            as usize,
    };
    let cursor = match page.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) if !cursor.is_empty() => Some(cursor.clone()),
        Some(_) => return Err(invalid("cursor must be a non-empty string")),
    };
    Ok(Some(PageRequest { limit, cursor }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn after_positions_are_read() {
        let after = positions(&json!({"after": {"order": "12-3", "mail": "0-0"}})).unwrap();
        assert_eq!(after[&Topic::Order], "12-3".parse().unwrap());
        assert_eq!(after[&Topic::Mail], EntryId::ZERO);
        assert!(positions(&json!({})).unwrap().is_empty());
        assert!(positions(&json!({"after": null})).unwrap().is_empty());
        assert!(positions(&json!({"after": {"nope": "1-0"}})).is_err());
        assert!(positions(&json!({"after": {"order": 5}})).is_err());
        assert!(positions(&json!({"after": []})).is_err());
    }

    #[test]
    fn pages_are_read() {
        assert_eq!(page_request(&json!({})).unwrap(), None);
        assert_eq!(
            page_request(&json!({"page": {"limit": 5, "cursor": "c9"}})).unwrap(),
            Some(PageRequest {
                limit: 5,
                cursor: Some("c9".into())
            })
        );
        assert_eq!(
            page_request(&json!({"page": {}})).unwrap(),
            Some(PageRequest {
                limit: MAX_LIMIT,
                cursor: None
            })
        );
        for bad in [
            json!({"page": []}),
            json!({"page": {"limit": 0}}),
            json!({"page": {"limit": 1001}}),
            json!({"page": {"limit": "5"}}),
            json!({"page": {"cursor": ""}}),
            json!({"page": {"cursor": 3}}),
        ] {
            assert!(page_request(&bad).is_err(), "{bad}");
        }
    }
}
