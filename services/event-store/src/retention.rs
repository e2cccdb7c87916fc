//! Retention: each topic's stream is trimmed behind every reader that may
//! still need its entries, so streams stop growing with everything ever
//! sold while event sourcing stays whole.
//!
//! The readers of a topic, and what each still needs:
//! - every role that folds the topic into a view ([`Role::viewers`]): the
//!   events after its stored snapshot's position, which is what a restart
//!   replays. A viewer without a snapshot holds the topic whole;
//! - the read model, which folds every topic into Redis: the events after
//!   its checkpoint (none yet: the topic is kept whole);
//! - every consumer group: its pending entries and what it has not been
//!   delivered yet; a subscription whose group does not exist yet holds
//!   the topic whole;
//! - the dead letters: a redrive rewinds a group to the entry one names.
//!
//! Entries older than the oldest of those go (`XTRIM MINID`). The same
//! script records that point in the topic's `trimmed` key, which reads
//! check: a reader behind it is refused ([`crate::StoreError::Trimmed`])
//! rather than handed a gap as if it were history. A view whose snapshot
//! cannot be used (another layout, or Redis lost the events it covered)
//! can then no longer be rebuilt by replaying: that is why retention is
//! off unless asked for.

use std::time::Duration;

use ordershop_redis::Redis;
use ordershop_topology::{EntryId, ReadModelKeys, Role, StreamKeys, TOPICS, snapshot_key};
use redis::{
    aio::ConnectionManager,
    streams::{StreamInfoGroupsReply, StreamRangeReply},
};
use tokio_util::sync::CancellationToken;

use crate::StoreError;

/// Trims entries before ARGV[1] and, when any went, moves the topic's mark
/// there (never back), in one step: a reader that sees the trimmed stream
/// sees the mark. KEYS: stream, mark. Returns the number of entries removed.
const TRIM: &str = r#"
local removed = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
if removed > 0 then
  local function parts(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
  end
  local old = redis.call('GET', KEYS[2])
  local ms, seq = parts(ARGV[1])
  local old_ms, old_seq = 0, 0
  if old then old_ms, old_seq = parts(old) end
  if ms > old_ms or (ms == old_ms and seq > old_seq) then
    redis.call('SET', KEYS[2], ARGV[1])
  end
end
return removed
"#;

/// What one pass did with one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRetention {
    /// Entries before `before` are gone; `removed` of them went now.
    Trimmed { before: EntryId, removed: u64 },
    /// A reader needs the whole topic still; why.
    Held(String),
}

/// Trims every topic behind its readers; returns what it did per topic.
pub async fn trim_all(redis: &Redis) -> Result<Vec<(String, TopicRetention)>, StoreError> {
    let mut conn = redis.conn();
    let mut done = Vec::with_capacity(TOPICS.len());
    for topic in TOPICS {
        done.push((topic.to_string(), trim_topic(&mut conn, topic).await?));
    }
    Ok(done)
}

/// Trims `topic` behind its readers.
pub async fn trim_topic(
    conn: &mut ConnectionManager,
    topic: &str,
) -> Result<TopicRetention, StoreError> {
    let before = match oldest_needed(conn, topic).await? {
        Ok(before) => before,
        Err(why) => return Ok(TopicRetention::Held(why)),
    };
    if before == EntryId::ZERO {
        return Ok(TopicRetention::Trimmed { before, removed: 0 });
    }
    let keys = StreamKeys::new(topic);
    let removed: u64 = redis::Script::new(TRIM)
        .key(&keys.stream)
        .key(&keys.trimmed)
        .arg(before.to_string())
        .invoke_async(conn)
        .await?;
    Ok(TopicRetention::Trimmed { before, removed })
}

/// The oldest entry of `topic` some reader still needs, or why the whole
/// topic is needed.
async fn oldest_needed(
    conn: &mut ConnectionManager,
    topic: &str,
) -> Result<Result<EntryId, String>, StoreError> {
    let mut positions = Vec::new();
    for viewer in Role::viewers(topic) {
        let position: Option<String> = redis::cmd("HGET")
            .arg(snapshot_key(viewer.service_name()))
            .arg(format!("pos:{topic}"))
            .query_async(conn)
            .await?;
        match position.as_deref().and_then(EntryId::parse) {
            Some(position) => positions.push(position),
            None => {
                return Ok(Err(format!(
                    "{} has stored no snapshot of {topic} yet",
                    viewer.service_name()
                )));
            }
        }
    }
    let checkpoint: Option<String> = redis::cmd("GET")
        .arg(ReadModelKeys::new(topic).checkpoint)
        .query_async(conn)
        .await?;
    match checkpoint.as_deref().and_then(EntryId::parse) {
        Some(checkpoint) => positions.push(checkpoint),
        None => {
            return Ok(Err(format!("the read model has not folded {topic} yet")));
        }
    }
    // Dead letters before and after the groups: a redrive rewinds a group
    // and then deletes its letter, and dead-lettering acks an entry and
    // writes its letter at once; read in this order, every entry either
    // still has its letter or is in its group's view.
    positions.extend(dead_letters_need(conn, topic).await?);
    match groups_need(conn, topic).await? {
        Ok(needed) => positions.extend(needed),
        Err(why) => return Ok(Err(why)),
    }
    positions.extend(dead_letters_need(conn, topic).await?);
    Ok(Ok(positions.into_iter().min().unwrap_or(EntryId::ZERO)))
}

/// Per consumer group of the topic's stream, the oldest entry it still
/// needs: its oldest pending entry, else the last one delivered to it
/// (everything after is undelivered). Or why the whole topic is needed: a
/// subscription's group that does not exist yet would start at the first
/// entry kept, missing what was trimmed. Nothing for a stream that does
/// not exist.
async fn groups_need(
    conn: &mut ConnectionManager,
    topic: &str,
) -> Result<Result<Vec<EntryId>, String>, StoreError> {
    let stream = StreamKeys::new(topic).stream;
    let exists: bool = redis::cmd("EXISTS").arg(&stream).query_async(conn).await?;
    if !exists {
        return Ok(Ok(Vec::new()));
    }
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&stream)
        .query_async(conn)
        .await?;
    let subscribers = Role::ALL
        .into_iter()
        .filter(|role| role.subscriptions().iter().any(|s| s.topic == topic));
    for subscriber in subscribers {
        if !groups
            .groups
            .iter()
            .any(|g| g.name == subscriber.service_name())
        {
            return Ok(Err(format!(
                "the consumer group {} has not been created yet",
                subscriber.service_name()
            )));
        }
    }
    let mut needed = Vec::with_capacity(groups.groups.len());
    for group in groups.groups {
        let oldest = if group.pending > 0 {
            // Summary form: count, oldest id, newest id, consumers.
            let (_, oldest, _, _): (u64, Option<String>, Option<String>, redis::Value) =
                redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg(&group.name)
                    .query_async(conn)
                    .await?;
            oldest
        } else {
            Some(group.last_delivered_id)
        };
        needed.push(
            oldest
                .as_deref()
                .and_then(EntryId::parse)
                .unwrap_or(EntryId::ZERO),
        );
    }
    Ok(Ok(needed))
}

/// The oldest entry a dead letter of the topic names: a redrive rewinds
/// the letter's group to it, so it must still be there. Dead letters are
/// few (at most `DEAD_LETTERS_KEPT` per topic, normally none).
async fn dead_letters_need(
    conn: &mut ConnectionManager,
    topic: &str,
) -> Result<Option<EntryId>, StoreError> {
    let dead = StreamKeys::new(topic).dead;
    let mut oldest: Option<EntryId> = None;
    let mut start = "-".to_owned();
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&dead)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(DEAD_LETTER_PAGE)
            .query_async(conn)
            .await?;
        for letter in &page.ids {
            let named = letter
                .get::<String>("entry_id")
                .as_deref()
                .and_then(EntryId::parse);
            if let Some(named) = named {
                oldest = Some(oldest.map_or(named, |o| o.min(named)));
            }
        }
        match page.ids.last() {
            Some(last) if page.ids.len() == DEAD_LETTER_PAGE => start = format!("({}", last.id),
            _ => return Ok(oldest),
        }
    }
}

/// Dead letters read per command.
const DEAD_LETTER_PAGE: usize = 1000;

/// Trims every topic every `every` until `shutdown`.
pub(crate) async fn run(redis: Redis, every: Duration, shutdown: CancellationToken) {
    use ordershop_metrics::families::{EVENTS_TRIMMED, topic as label};
    // Said once per topic and reason, not every pass.
    let mut held: std::collections::HashMap<String, String> = Default::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let done = match trim_all(&redis).await {
            Ok(done) => done,
            Err(error) => {
                tracing::warn!(%error, "retention pass failed");
                continue;
            }
        };
        for (topic, outcome) in done {
            match outcome {
                TopicRetention::Trimmed { before, removed } => {
                    held.remove(&topic);
                    if removed > 0 {
                        EVENTS_TRIMMED.get_or_create(&label(&topic)).inc_by(removed);
                        tracing::info!(%topic, %before, removed, "stream trimmed behind its readers");
                    }
                }
                TopicRetention::Held(why) => {
                    if held.get(&topic) != Some(&why) {
                        tracing::info!(%topic, %why, "retention keeps the whole stream");
                        held.insert(topic, why);
                    }
                }
            }
        }
    }
}
