//! Reading a list from the cache a page at a time: one read-only Lua call
//! walks the topic's index (`ZRANGEBYLEX`, after the cursor) and returns
//! the documents of the page, together with the checkpoints the query
//! waits for, so the page is a consistent snapshot that includes every
//! position asked for.
//!
//! A page is bounded three ways, so no reply comes near the queue's 1 MiB
//! payload cap and no call holds Redis for long: `limit` entries, about
//! [`PAGE_BYTES`] of documents, and [`SCAN_MAX`] index entries looked at
//! (a filtered list with few matches answers a short page with a cursor
//! rather than reading the whole topic in one call).

use std::collections::BTreeMap;

use ordershop_core::Topic;
use ordershop_topology::{EntryId, ReadModelKeys};
use redis::Script;

/// The most entries a page may ask for.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Documents per page, in bytes (a page always holds at least one entry).
pub(crate) const PAGE_BYTES: usize = 256 * 1024;

/// Index entries one page looks at, at most.
pub(crate) const SCAN_MAX: usize = 5_000;

/// KEYS: per `after` topic its checkpoint; then the index and the entities
/// of the listed topic; then the tagged hash of the filter.
/// ARGV: number of `after` topics, cursor ('' = from the start), limit,
/// byte budget, scan budget, filter ('' | 'without' | 'with'), tag prefix. Returns {checkpoints, next ('' = no more), total, {key, doc}*}.
const SOURCE: &str = r#"
local nc = tonumber(ARGV[1])
local checkpoints = {}
for k = 1, nc do
  checkpoints[k] = redis.call('GET', KEYS[k]) or ''
end
local index, entities, tagged = KEYS[nc + 1], KEYS[nc + 2], KEYS[nc + 3]
local cursor, limit, budget, scan = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local filter, prefix = ARGV[6], ARGV[7]
local CHUNK = 200
local from = '-'
if cursor ~= '' then from = '(' .. cursor end
local items = {}
local count, bytes, scanned = 0, 0, 0
local next = ''
while true do
  local keys = redis.call('ZRANGEBYLEX', index, from, '+', 'LIMIT', 0, CHUNK)
  if #keys == 0 then break end
  local docs = redis.call('HMGET', entities, unpack(keys))
  local marks = {}
  if filter ~= '' then
    local wanted = {}
    for j, key in ipairs(keys) do wanted[j] = prefix .. key end
    marks = redis.call('HMGET', tagged, unpack(wanted))
  end
  local full = false
  local last = ''
  for j, key in ipairs(keys) do
    scanned = scanned + 1
    last = key
    local doc = docs[j]
    local keep = doc ~= false
    if keep and filter == 'without' then keep = marks[j] == false end
    if keep and filter == 'with' then keep = marks[j] ~= false end
    if keep then
      items[#items + 1] = key
      items[#items + 1] = doc
      count = count + 1
      bytes = bytes + #doc
    end
    if count >= limit or bytes >= budget or scanned >= scan then
      full = true
      break
    end
  end
  if full then
    if #redis.call('ZRANGEBYLEX', index, '(' .. last, '+', 'LIMIT', 0, 1) > 0 then
      next = last
    end
    break
  end
  if #keys < CHUNK then break end
  from = '(' .. last
end
return {checkpoints, next, redis.call('ZCARD', index), items}
"#;

pub(crate) fn page_script() -> Script {
    Script::new(SOURCE)
}

/// Which entries of the listed topic a page keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    All,
    /// Entries whose key, after `prefix`, is not a tag of `topic`.
    Without {
        topic: Topic,
        prefix: &'static str,
    },
    /// Entries whose key, after `prefix`, is a tag of `topic`.
    With {
        topic: Topic,
        prefix: &'static str,
    },
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PageRead {
    pub(crate) topic: Topic,
    /// The last key of the previous page; `None` for the first.
    pub(crate) cursor: Option<String>,
    pub(crate) limit: usize,
    pub(crate) filter: Filter,
}

/// What a [`PageRead`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Page {
    /// Key and document, in key order.
    pub(crate) items: Vec<(String, String)>,
    /// The cursor of the next page; `None` when this one is the last.
    pub(crate) next: Option<String>,
    /// Entries in the listed topic (before any filter).
    pub(crate) total: u64,
}

/// Reads `read` and the checkpoints of `after`'s topics in one call.
pub(crate) async fn read_page(
    script: &Script,
    conn: &mut redis::aio::ConnectionManager,
    after: &BTreeMap<Topic, EntryId>,
    read: &PageRead,
) -> redis::RedisResult<(Vec<EntryId>, Page)> {
    let mut invocation = script.prepare_invoke();
    for topic in after.keys() {
        let keys = ReadModelKeys::new(topic.name());
        invocation.key(keys.checkpoint);
    }
    let listed = ReadModelKeys::new(read.topic.name());
    let (filter, prefix, tagged) = match read.filter {
        Filter::All => ("", "", listed.tagged.clone()),
        Filter::Without { topic, prefix } => {
            ("without", prefix, ReadModelKeys::new(topic.name()).tagged)
        }
        Filter::With { topic, prefix } => ("with", prefix, ReadModelKeys::new(topic.name()).tagged),
    };
    invocation
        .key(listed.index)
        .key(listed.entities)
        .key(tagged)
        .arg(after.len())
        .arg(read.cursor.as_deref().unwrap_or(""))
        .arg(read.limit.max(1))
        .arg(PAGE_BYTES)
        .arg(SCAN_MAX)
        .arg(filter)
        .arg(prefix);
    let (checkpoints, next, total, flat): (Vec<String>, String, u64, Vec<String>) =
        invocation.invoke_async(conn).await?;
    let checkpoints = checkpoints
        .iter()
        .map(|c| EntryId::parse(c).unwrap_or(EntryId::ZERO))
        .collect();
    let mut items = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(key), Some(doc)) = (flat.next(), flat.next()) {
        items.push((key, doc));
    }
    Ok((
        checkpoints,
        Page {
            items,
            next: (!next.is_empty()).then_some(next),
            total,
        },
    ))
}
