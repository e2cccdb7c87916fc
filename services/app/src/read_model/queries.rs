//! The read model's queue functions, answered from the Redis cache.
//!
//! Every query reads what it needs together with the checkpoints of its
//! `after` topics in one atomic Redis transaction, so the answer is a
//! consistent snapshot that includes every position asked for. When the
//! cache is behind, the query waits for the fold tasks (bounded by
//! `wait`), then answers `internal` "read model is behind".

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ordershop_client::{HandlerError, Message};
use ordershop_core::query::{
    EntityMap, EntityQuery, Selector, delivered_orders, get_entities, get_entity, unbilled_orders,
    unshipped_orders,
};
use ordershop_core::{DomainError, ErrorKind, Topic};
use ordershop_redis::Redis;
use ordershop_topology::ReadModelKeys;
use serde_json::Value;
use tokio::time::Instant;

use crate::envelope;
use crate::read_model::fold::FoldHandle;
use ordershop_topology::EntryId;

/// How long a behind query sleeps at most between two looks at the cache,
/// when no fold task reports progress (e.g. another replica is folding).
const RECHECK_EVERY: Duration = Duration::from_millis(50);

/// One thing a query reads from the cache.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    /// Every entity of a topic (or every mail).
    All(Topic),
    One(Topic, String),
    Many(Topic, Vec<String>),
}

/// What a [`Read`] found.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    All(BTreeMap<String, Value>),
    One(Option<Value>),
    Many(Vec<Option<Value>>),
}

impl Found {
    fn into_map(self) -> EntityMap {
        match self {
            Found::All(map) => map,
            Found::One(_) | Found::Many(_) => EntityMap::new(),
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
    #[error("cache: {0}")]
    Cache(#[from] redis::RedisError),
}

/// The query side of the read model.
#[derive(Debug)]
pub(crate) struct Queries {
    redis: Redis,
    folds: HashMap<Topic, FoldHandle>,
    wait: Duration,
}

impl Queries {
    pub(crate) fn new(redis: Redis, folds: HashMap<Topic, FoldHandle>, wait: Duration) -> Queries {
        Queries { redis, folds, wait }
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
            Err(QueryError::Invalid(why)) => envelope::error(ErrorKind::Invalid, why),
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
        match function {
            "get_entity" | "get_entities" => {
                let query = EntityQuery::from_request(&request)?;
                let one = function == "get_entity";
                let topic = query.kind.topic();
                let read = match &query.selector {
                    Selector::Id(id) => Read::One(topic, id.clone()),
                    Selector::Ids(ids) => Read::Many(topic, ids.clone()),
                    Selector::All | Selector::Props(_) => Read::All(topic),
                };
                let found = self.snapshot(&after, vec![read]).await?;
                let found = found.into_iter().next().unwrap_or(Found::One(None));
                Ok(match (found, one) {
                    (Found::One(entity), true) => entity.unwrap_or(Value::Null),
                    (Found::One(entity), false) => Value::Array(entity.into_iter().collect()),
                    // First existing of the ids, in the given order.
                    (Found::Many(entities), true) => {
                        entities.into_iter().flatten().next().unwrap_or(Value::Null)
                    }
                    // In the given order, repeats kept, unknown ids left out.
                    (Found::Many(entities), false) => {
                        Value::Array(entities.into_iter().flatten().collect())
                    }
                    (Found::All(map), true) => {
                        get_entity(&map, &query.selector).unwrap_or(Value::Null)
                    }
                    (Found::All(map), false) => Value::Array(get_entities(&map, &query.selector)),
                })
            }
            "get_mails" => {
                let found = self.snapshot(&after, vec![Read::All(Topic::Mail)]).await?;
                let mut mails: Vec<(EntryId, Value)> = found
                    .into_iter()
                    .flat_map(Found::into_map)
                    .map(|(entry, mail)| (EntryId::parse(&entry).unwrap_or(EntryId::ZERO), mail))
                    .collect();
                mails.sort_by_key(|(entry, _)| *entry);
                Ok(Value::Array(mails.into_iter().map(|(_, m)| m).collect()))
            }
            "get_unbilled_orders" | "get_unshipped_orders" | "get_delivered_orders" => {
                let other = if function == "get_unbilled_orders" {
                    Topic::Billing
                } else {
                    Topic::Shipping
                };
                let reads = vec![Read::All(Topic::Order), Read::All(other)];
                let mut found = self.snapshot(&after, reads).await?.into_iter();
                let orders = found.next().map(Found::into_map).unwrap_or_default();
                let others = found.next().map(Found::into_map).unwrap_or_default();
                Ok(match function {
                    "get_unbilled_orders" => Value::Object(unbilled_orders(&orders, &others)),
                    "get_unshipped_orders" => Value::Object(unshipped_orders(&orders, &others)),
                    _ => Value::Array(delivered_orders(&orders, &others)),
                })
            }
            other => Err(QueryError::Invalid(format!("unknown query {other:?}"))),
        }
    }

    /// Reads `reads` once the cache has applied `after`, waiting for it up
    /// to the bound.
    async fn snapshot(
        &self,
        after: &BTreeMap<Topic, EntryId>,
        reads: Vec<Read>,
    ) -> Result<Vec<Found>, QueryError> {
        let deadline = Instant::now() + self.wait;
        loop {
            let (checkpoints, found) = self.read(after, &reads).await?;
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
                Read::All(topic) => {
                    pipe.hgetall(ReadModelKeys::new(topic.name()).entities);
                }
                Read::One(topic, id) => {
                    pipe.hget(ReadModelKeys::new(topic.name()).entities, id);
                }
                // HMGET needs at least one field.
                Read::Many(_, ids) if ids.is_empty() => {}
                Read::Many(topic, ids) => {
                    pipe.cmd("HMGET")
                        .arg(ReadModelKeys::new(topic.name()).entities)
                        .arg(ids);
                }
            }
        }
        let mut conn = self.redis.conn();
        let values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut values = values.into_iter();
        let mut checkpoints = Vec::with_capacity(after.len());
        for _ in after {
            let text: Option<String> = take(&mut values)?;
            checkpoints.push(
                text.as_deref()
                    .and_then(EntryId::parse)
                    .unwrap_or(EntryId::ZERO),
            );
        }
        let mut found = Vec::with_capacity(reads.len());
        for read in reads {
            found.push(match read {
                Read::All(_) => {
                    let raw: HashMap<String, String> = take(&mut values)?;
                    Found::All(
                        raw.into_iter()
                            .filter_map(|(id, doc)| Some((id, parse_doc(&doc)?)))
                            .collect(),
                    )
                }
                Read::One(_, _) => {
                    let raw: Option<String> = take(&mut values)?;
                    Found::One(raw.as_deref().and_then(parse_doc))
                }
                Read::Many(_, ids) if ids.is_empty() => Found::Many(Vec::new()),
                Read::Many(_, _) => {
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
}
