//! Writing a page of events into the cache: one Lua call per page, so the
//! entity writes and the topic's checkpoint change together (a restart
//! resumes exactly after the last page applied, never half a page).
//!
//! What an event does is decided here, in Rust, with the core's
//! [`fold_step`]: put the entity, remove it, or nothing. The script then
//! applies it only when the event's version is newer than the version the
//! cache holds for the entity — the other half of the same rule, checked
//! inside Redis so that two read-model replicas folding the same topic
//! cannot undo each other's work or bring back a deleted entity.
//!
//! The script also guards the checkpoint: a page read after position `P`
//! is refused when the cache's checkpoint is behind `P` (the cache was
//! flushed meanwhile: the fold must restart from the checkpoint), and
//! events at or before the checkpoint (another replica applied them) are
//! skipped.

use ordershop_client::Recorded;
use ordershop_core::{Entity, FoldStep, RecordedEvent, Topic, fold_step};
use ordershop_topology::ReadModelKeys;
use redis::Script;

use crate::codec::decode;
use ordershop_topology::EntryId;

/// KEYS: entities hash, versions hash, checkpoint.
/// ARGV: after, count, then per event: entry id, op, entity id, version, doc.
const SOURCE: &str = r#"
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
local stored = redis.call('GET', KEYS[3]) or ''
if before(stored, ARGV[1]) then
  return {0, stored}
end
local moved = false
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local b = 3 + i * 5
  local entry, op, id, ver, doc = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  if before(stored, entry) then
    if op == 'put' or op == 'remove' then
      local current = tonumber(redis.call('HGET', KEYS[2], id) or '0')
      if tonumber(ver) > current then
        redis.call('HSET', KEYS[2], id, ver)
        if op == 'put' then
          redis.call('HSET', KEYS[1], id, doc)
        else
          redis.call('HDEL', KEYS[1], id)
        end
      end
    elseif op == 'mail' then
      redis.call('HSET', KEYS[1], entry, doc)
    end
    stored = entry
    moved = true
  end
end
if moved then
  redis.call('SET', KEYS[3], stored)
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
    pub(crate) entity_id: String,
    pub(crate) version: u64,
    /// The entity JSON (put), the mail entry JSON (mail), or empty.
    pub(crate) doc: String,
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
                entity_id: String::new(),
                version: 0,
                doc: String::new(),
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
            entity_id: String::new(),
            version: 0,
            doc: event.to_mail_entry().to_string(),
        });
    };
    // Version 0 is "nothing held yet": the script compares the version.
    let (op, doc) = match fold_step(0, event) {
        FoldStep::Skip => return None,
        FoldStep::Remove => ("remove", String::new()),
        FoldStep::Put => match Entity::from_json(kind, &event.data) {
            // Stored as the typed entity's JSON: numbers stay numbers,
            // unknown fields are dropped, as everywhere else.
            Ok(entity) => ("put", entity.to_json().to_string()),
            Err(err) => {
                tracing::error!(topic = %event.topic, entry = %event.entry_id, error = %err, "entity event with unreadable data skipped");
                return None;
            }
        },
    };
    Some(FoldOp {
        entry,
        op,
        entity_id: event.entity_id.clone(),
        version: event.version,
        doc,
    })
}

/// Runs the script for a page read after `after`. Returns whether it was
/// applied and the cache's checkpoint afterwards.
pub(crate) async fn apply(
    script: &Script,
    conn: &mut redis::aio::ConnectionManager,
    keys: &ReadModelKeys,
    after: EntryId,
    ops: &[FoldOp],
) -> redis::RedisResult<(bool, EntryId)> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.entities)
        .key(&keys.versions)
        .key(&keys.checkpoint)
        .arg(after.cursor())
        .arg(ops.len());
    for op in ops {
        invocation
            .arg(op.entry.to_string())
            .arg(op.op)
            .arg(&op.entity_id)
            .arg(op.version)
            .arg(&op.doc);
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
        let doc: serde_json::Value = serde_json::from_str(&ops[0].doc).unwrap();
        assert_eq!(doc[0], json!("5-1"));
        assert_eq!(doc[1]["event_action"], json!("mail_sent"));
    }
}
