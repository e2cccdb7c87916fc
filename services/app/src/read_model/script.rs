//! Writing a page of events into the cache: one Lua call per page, so the
//! entity writes, the index, the tags and the topic's checkpoint change
//! together (a restart resumes exactly after the last page applied, never
//! half a page).
//!
//! What an event does is decided here, in Rust, with the core's
//! [`fold_step`]: put the entity, remove it, or nothing, and which tags the
//! entity carries ([`tags_of`]). The script then applies it only when the
//! event's version is newer than the version the cache holds for the
//! entity — the other half of the same rule, checked inside Redis so that
//! two read-model replicas folding the same topic cannot undo each other's
//! work or bring back a deleted entity.
//!
//! The script also guards the checkpoint: a page read after position `P`
//! is refused when the cache's checkpoint is behind `P` (the cache was
//! flushed meanwhile: the fold must restart from the checkpoint), and events at or before the
//! checkpoint (another replica applied them) are skipped.

use ordershop_client::Recorded;
use ordershop_core::{Entity, FoldStep, RecordedEvent, Topic, fold_step};
use ordershop_topology::{ReadModelKeys, mail_sort_key};
use redis::Script;
use serde_json::Value;

use crate::codec::decode;
use ordershop_topology::EntryId;

/// KEYS: entities, index, versions, tags, tagged, checkpoint.
/// ARGV: after, count, whether the topic has tags (1/0), then per event:
/// entry id, op, sort key, version, doc, tag count, tags.
const SOURCE: &str = r#"
local E, I, V, T, G, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function pos(id)
  if id == nil or id == '' then return 0, 0 end
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if ms == nil then return 0, 0 end
  return tonumber(ms), tonumber(seq)
end
local function before(a, b)
  local am, as = pos(a)
  local bm, bs = pos(b)
  if am ~= bm then return am < bm end
  return as < bs
end
local function untag(id)
  local old = redis.call('HGET', T, id)
  if not old then return end
  for _, tag in ipairs(cjson.decode(old)) do
    local holders = redis.call('HGET', G, tag)
    if holders then
      local kept = {}
      for _, holder in ipairs(cjson.decode(holders)) do
        if holder ~= id then kept[#kept + 1] = holder end
      end
      if #kept == 0 then
        redis.call('HDEL', G, tag)
      else
        redis.call('HSET', G, tag, cjson.encode(kept))
      end
    end
  end
  redis.call('HDEL', T, id)
end
local function tag(id, tags)
  if #tags == 0 then return end
  redis.call('HSET', T, id, cjson.encode(tags))
  for _, t in ipairs(tags) do
    local holders = redis.call('HGET', G, t)
    local list = {}
    if holders then list = cjson.decode(holders) end
    list[#list + 1] = id
    redis.call('HSET', G, t, cjson.encode(list))
  end
end
local stored = redis.call('GET', C) or ''
if before(stored, ARGV[1]) then
  return {0, stored}
end
local tagged = ARGV[3] == '1'
local moved = false
local n = tonumber(ARGV[2])
local b = 4
for _ = 1, n do
  local entry, op, key, ver, doc = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local ntags = tonumber(ARGV[b + 5])
  local tags = {}
  for t = 1, ntags do tags[t] = ARGV[b + 5 + t] end
  b = b + 6 + ntags
  if before(stored, entry) then
    if op == 'put' or op == 'remove' then
      local current = tonumber(redis.call('HGET', V, key) or '0')
      if tonumber(ver) > current then
        redis.call('HSET', V, key, ver)
        if tagged then untag(key) end
        if op == 'put' then
          -- HSET answers 1 for a new field: only then is the key new to
          -- the index (an update needs no ZADD).
          if redis.call('HSET', E, key, doc) == 1 then
            redis.call('ZADD', I, 0, key)
          end
          if tagged then tag(key, tags) end
        else
          redis.call('HDEL', E, key)
          redis.call('ZREM', I, key)
        end
      end
    elseif op == 'mail' then
      redis.call('HSET', E, key, doc)
      redis.call('ZADD', I, 0, key)
    end
    stored = entry
    moved = true
  end
end
if moved then
  redis.call('SET', C, stored)
end
return {1, stored}
"#;

pub(crate) fn fold_script() -> Script {
    Script::new(SOURCE)
}

/// One event's effect on the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoldOp {
    pub(crate) entry: EntryId,
    pub(crate) op: &'static str,
    /// The entity id, or a mail's [`mail_sort_key`].
    pub(crate) key: String,
    pub(crate) version: u64,
    /// The entity JSON (put), the mail entry JSON (mail), or empty.
    pub(crate) doc: String,
    /// What the entity refers to, for queries that would otherwise read
    /// every entity of the topic ([`tags_of`]).
    pub(crate) tags: Vec<String>,
}

/// Whether entities of `topic` carry tags.
pub(crate) fn has_tags(topic: Topic) -> bool {
    matches!(topic, Topic::Billing | Topic::Shipping)
}

/// Tags an order's billings and shippings carry: this, then its id.
pub(crate) const ORDER_TAG: &str = "order:";

/// Tag a delivered shipping carries: this, then its order's id.
pub(crate) const DELIVERED_TAG: &str = "delivered:";

/// The tag of the order a billing or shipping belongs to.
pub(crate) fn order_tag(order_id: &str) -> String {
    format!("{ORDER_TAG}{order_id}")
}

/// The tags of an entity: billings and shippings name their order (so
/// "unbilled", "unshipped" and an order's billings are lookups), and a
/// shipping with `delivered` other than 0 also marks its order delivered.
pub(crate) fn tags_of(topic: Topic, entity: &Value) -> Vec<String> {
    if !has_tags(topic) {
        return Vec::new();
    }
    let Some(order_id) = entity.get("order_id").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut tags = vec![order_tag(order_id)];
    let delivered = entity
        .get("delivered")
        .and_then(Value::as_f64)
        .is_some_and(|d| d != 0.0);
    if topic == Topic::Shipping && delivered {
        tags.push(format!("{DELIVERED_TAG}{order_id}"));
    }
    tags
}

/// What each record of a page does to the cache. Unreadable records become
/// `skip` (logged): they still move the checkpoint, since reading them
/// again will not make them readable.
pub(crate) fn fold_ops(topic: Topic, records: &[Recorded]) -> Vec<FoldOp> {
    records
        .iter()
        .filter_map(|record| {
            let Some(entry) = EntryId::parse(&record.entry_id) else {
                tracing::error!(%topic, entry = %record.entry_id, "event with an unreadable entry id skipped");
                return None;
            };
            let skip = FoldOp {
                entry,
                op: "skip",
                key: String::new(),
                version: 0,
                doc: String::new(),
                tags: Vec::new(),
            };
            let event = match decode(record) {
                Ok(event) => event,
                Err(err) => {
                    tracing::error!(%topic, error = %err, "unreadable event skipped");
                    return Some(skip);
                }
            };
            Some(fold_op(entry, &event).unwrap_or(skip))
        })
        .collect()
}

fn fold_op(entry: EntryId, event: &RecordedEvent) -> Option<FoldOp> {
    let Some(kind) = event.topic.entity_kind() else {
        return Some(FoldOp {
            entry,
            op: "mail",
            key: mail_sort_key(entry.ms, entry.seq),
            version: 0,
            doc: event.to_mail_entry().to_string(),
            tags: Vec::new(),
        });
    };
    // Version 0 is "nothing held yet": the script compares the version.
    let (op, doc, tags) = match fold_step(0, event) {
        FoldStep::Skip => return None,
        FoldStep::Remove => ("remove", String::new(), Vec::new()),
        FoldStep::Put => match Entity::from_json(kind, &event.data) {
            // Stored as the typed entity's JSON: numbers stay numbers,
            // unknown fields are dropped, as everywhere else.
            Ok(entity) => {
                let json = entity.to_json();
                let tags = tags_of(event.topic, &json);
                ("put", json.to_string(), tags)
            }
            Err(err) => {
                tracing::error!(topic = %event.topic, entry = %event.entry_id, error = %err, "entity event with unreadable data skipped");
                return None;
            }
        },
    };
    Some(FoldOp {
        entry,
        op,
        key: event.entity_id.clone(),
        version: event.version,
        doc,
        tags,
    })
}

/// Runs the script for a page of `topic` read after `after`. Returns
/// whether it was applied and the cache's checkpoint afterwards.
pub(crate) async fn apply(
    script: &Script,
    conn: &mut redis::aio::ConnectionManager,
    topic: Topic,
    keys: &ReadModelKeys,
    after: EntryId,
    ops: &[FoldOp],
) -> redis::RedisResult<(bool, EntryId)> {
    let mut invocation = script.prepare_invoke();
    for key in keys.all() {
        invocation.key(key);
    }
    invocation
        .arg(after.cursor())
        .arg(ops.len())
        .arg(if has_tags(topic) { "1" } else { "0" });
    for op in ops {
        invocation
            .arg(op.entry.to_string())
            .arg(op.op)
            .arg(&op.key)
            .arg(op.version)
            .arg(&op.doc)
            .arg(op.tags.len());
        for tag in &op.tags {
            invocation.arg(tag);
        }
    }
    let (applied, stored): (i64, String) = invocation.invoke_async(conn).await?;
    Ok((
        applied == 1,
        EntryId::parse(&stored).unwrap_or(EntryId::ZERO),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(
        topic: &str,
        entry: &str,
        action: &str,
        version: u64,
        data: serde_json::Value,
    ) -> Recorded {
        Recorded {
            topic: topic.into(),
            entry_id: entry.into(),
            version,
            event_id: format!("e-{entry}"),
            event_action: action.into(),
            event_data: data.to_string(),
            entity_id: "p1".into(),
            causation_id: String::new(),
            traceparent: String::new(),
        }
    }

    #[test]
    fn entity_events_become_typed_puts_and_removes() {
        let ops = fold_ops(
            Topic::Product,
            &[
                record(
                    "product",
                    "1-0",
                    "entity_created",
                    1,
                    json!({"entity_id": "p1", "name": "P", "price": 2.5, "extra": 1}),
                ),
                record(
                    "product",
                    "2-0",
                    "entity_deleted",
                    2,
                    json!({"entity_id": "p1", "name": "P", "price": 2.5}),
                ),
                record(
                    "product",
                    "3-0",
                    "entity_created",
                    1,
                    json!("not an entity"),
                ),
            ],
        );
        assert_eq!(ops[0].op, "put");
        let doc: serde_json::Value = serde_json::from_str(&ops[0].doc).unwrap();
        assert_eq!(doc, json!({"entity_id": "p1", "name": "P", "price": 2.5}));
        assert_eq!(ops[1].op, "remove");
        assert_eq!(ops[1].version, 2);
        assert_eq!(ops[2].op, "skip", "bad data still moves the checkpoint");
        assert_eq!(ops[2].entry, "3-0".parse().unwrap());
    }

    #[test]
    fn billings_and_shippings_are_tagged_with_their_order() {
        let billing = json!({"entity_id": "b1", "order_id": "o1", "amount": 3});
        assert_eq!(tags_of(Topic::Billing, &billing), ["order:o1"]);
        let shipping = json!({"entity_id": "s1", "order_id": "o1", "delivered": 0});
        assert_eq!(tags_of(Topic::Shipping, &shipping), ["order:o1"]);
        let delivered = json!({"entity_id": "s1", "order_id": "o1", "delivered": 17});
        assert_eq!(
            tags_of(Topic::Shipping, &delivered),
            ["order:o1", "delivered:o1"]
        );
        assert!(tags_of(Topic::Order, &json!({"order_id": "o1"})).is_empty());
        assert!(tags_of(Topic::Billing, &json!({"amount": 3})).is_empty());
    }

    #[test]
    fn mails_are_kept_as_mail_entries() {
        let ops = fold_ops(
            Topic::Mail,
            &[record(
                "mail",
                "5-1",
                "mail_sent",
                0,
                json!({"recipient": "a@b.c", "message": "hi"}),
            )],
        );
        assert_eq!(ops[0].op, "mail");
        assert_eq!(ops[0].key, mail_sort_key(5, 1));
        let doc: serde_json::Value = serde_json::from_str(&ops[0].doc).unwrap();
        assert_eq!(doc[0], json!("5-1"));
        assert_eq!(doc[1]["event_action"], json!("mail_sent"));
    }
}
