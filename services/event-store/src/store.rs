use std::{sync::Arc, time::Duration};

use ordershop_redis::{DeliveryCount, Redis, Refusal, delivery_count};
use ordershop_topology::{EntryId, StreamKeys, stream_key};
use redis::{
    AsyncCommands,
    streams::{StreamPendingCountReply, StreamRangeReply, StreamReadReply},
};

use crate::{
    NewEvent, Recorded, StartAt, StoreConfig, StoreError, Stored,
    publish_script::{IdsPlan, PublishScript},
    validate,
};

/// Every Redis operation of the event store.
#[derive(Debug, Clone)]
pub struct StreamStore {
    redis: Redis,
    publish: PublishScript,
    config: StoreConfig,
    event_ids: Arc<EventIdWindow>,
}

/// Event ids are stored once within a window: recorded in the hash of the
/// current window bucket and looked up there and in the one before (see
/// `publish_script`), so a retried publish is recognised for at least the
/// window, and the records of older events expire with their bucket.
#[derive(Debug)]
struct EventIdWindow {
    window: Duration,
    /// Per topic, the bucket whose hash this process last gave an expiry.
    expiring: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Per topic, whether the earlier releases' hash existed when last
    /// looked at, and when that was.
    legacy: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, bool)>>,
}

/// How long whether the earlier releases' event-id hash exists is taken as
/// known: it only ever goes away (expires), and an earlier release writing
/// it again during a rolling upgrade is seen within this.
const LEGACY_RECHECK: Duration = Duration::from_secs(30);

impl EventIdWindow {
    /// The current bucket, the expiry to give its hash if this process has
    /// not yet (two windows, so it outlives the bucket after it, in which
    /// it is still looked up), and whether the earlier releases' hash is
    /// still there to look in.
    async fn plan(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        topic: &str,
        keys: &StreamKeys,
    ) -> Result<IdsPlan, StoreError> {
        let bucket = current_bucket(self.window);
        let expire_in = {
            let expiring = self.expiring.lock().unwrap_or_else(|e| e.into_inner());
            (expiring.get(topic) != Some(&bucket)).then_some(self.window * 2)
        };
        let known = {
            let legacy = self.legacy.lock().unwrap_or_else(|e| e.into_inner());
            legacy
                .get(topic)
                .filter(|(at, _)| at.elapsed() < LEGACY_RECHECK)
                .map(|(_, exists)| *exists)
        };
        let legacy = match known {
            Some(exists) => exists,
            None => {
                let exists: bool = conn.exists(&keys.legacy_event_ids).await?;
                let mut legacy = self.legacy.lock().unwrap_or_else(|e| e.into_inner());
                legacy.insert(topic.to_owned(), (std::time::Instant::now(), exists));
                exists
            }
        };
        Ok(IdsPlan {
            bucket,
            expire_in,
            legacy,
        })
    }

    fn expiry_set(&self, topic: &str, bucket: u64) {
        let mut expiring = self.expiring.lock().unwrap_or_else(|e| e.into_inner());
        expiring.insert(topic.to_owned(), bucket);
    }
}

/// The event-id window bucket of now.
pub(crate) fn current_bucket(window: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ordershop_topology::event_id_bucket(now.as_secs(), window.as_secs())
}

/// Records a refusal, atomically, if `consumer` still holds the entry: a
/// claim by another subscriber in between must neither be undone nor lose
/// its count. RETRYCOUNT writes the refusal into the delivery counter (see
/// `DeliveryCount`; the redelivery adds one), IDLE rewinds the idle clock,
/// JUSTID leaves owner and body alone. KEYS: stream. ARGV: group, consumer,
/// entry id, idle ms, stride. Returns 0, -1 not pending, -2 another
/// consumer holds it.
const REFUSE: &str = r#"
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)[1]
if not entry then return -1 end
if entry[2] ~= ARGV[2] then return -2 end
local stride = tonumber(ARGV[5])
local refusals = math.floor(tonumber(entry[4]) / stride)
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4],
  'RETRYCOUNT', string.format('%d', (refusals + 1) * stride), 'JUSTID')
return 0
"#;

/// An entry handed to a consumer, with how often it has been delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub event: Recorded,
    pub delivery_count: u32,
    /// Heads the subscriber asked for, read after the entry was (shared by
    /// a batch; empty when none were asked for).
    pub heads: Arc<Vec<(String, String)>>,
}

impl StreamStore {
    pub fn new(redis: Redis, config: StoreConfig) -> Self {
        Self {
            redis,
            publish: PublishScript::new(),
            event_ids: Arc::new(EventIdWindow {
                window: config.event_id_window,
                expiring: Default::default(),
                legacy: Default::default(),
            }),
            config,
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Appends a batch to one topic: all or none, each event at most once.
    pub async fn publish(
        &self,
        topic: &str,
        mut events: Vec<NewEvent>,
    ) -> Result<Vec<Stored>, StoreError> {
        validate::topic(topic)?;
        validate::batch(&mut events)?;
        let keys = StreamKeys::new(topic);
        let mut conn = self.redis.conn();
        let started = std::time::Instant::now();
        let ids = self.event_ids.plan(&mut conn, topic, &keys).await?;
        let outcome = self.publish.run(&mut conn, &keys, ids, &events).await;
        // The script sets the expiry only when it appended something.
        let appended = outcome
            .as_ref()
            .is_ok_and(|stored| stored.iter().any(|s| !s.duplicate));
        if appended && ids.expire_in.is_some() {
            self.event_ids.expiry_set(topic, ids.bucket);
        }
        count_append(topic, started.elapsed(), &outcome);
        outcome
    }

    /// One page of a topic's history after `after` (exclusive). With a
    /// non-zero `wait` and nothing newer, blocks up to `wait` for new events.
    /// Refused ([`StoreError::Trimmed`]) when retention removed entries
    /// after `after`: the caller would otherwise see a gap as history.
    pub async fn read(
        &self,
        topic: &str,
        after: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<Recorded>, StoreError> {
        validate::topic(topic)?;
        if !after.is_empty() {
            validate::entry_id(after)?;
        }
        let limit = limit.clamp(1, validate::MAX_PAGE);
        let keys = StreamKeys::new(topic);
        if wait.is_zero() {
            return self.read_range(topic, &keys, after, limit).await;
        }
        let page = self.read_at_head(topic, after, limit, wait).await?;
        let mut conn = self.redis.conn();
        let trimmed: Option<String> = conn.get(&keys.trimmed).await?;
        retained(topic, after, trimmed)?;
        Ok(page)
    }

    /// A page after `after`, checked against retention without a command
    /// of its own in the common case: the range starts at `after` itself,
    /// and when that entry is still there nothing after it was trimmed
    /// (retention removes a prefix). Otherwise (a reader from the start, or
    /// whose last entry is gone) the topic's mark is read after the range:
    /// retention moves it before it trims, in one script, so a range that
    /// missed trimmed entries is always followed by a mark that says so.
    async fn read_range(
        &self,
        topic: &str,
        keys: &StreamKeys,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Recorded>, StoreError> {
        let mut conn = self.redis.conn();
        let mut page: StreamRangeReply = if after.is_empty() {
            StreamRangeReply::default()
        } else {
            conn.xrange_count(&keys.stream, after, "+", limit + 1)
                .await?
        };
        match page.ids.first() {
            Some(first) if first.id == after => {
                page.ids.remove(0);
            }
            _ => {
                let start = if after.is_empty() {
                    "-".to_owned()
                } else {
                    format!("({after}")
                };
                let trimmed: Option<String>;
                (page, trimmed) = redis::pipe()
                    .cmd("XRANGE")
                    .arg(&keys.stream)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .cmd("GET")
                    .arg(&keys.trimmed)
                    .query_async(&mut conn)
                    .await?;
                retained(topic, after, trimmed)?;
            }
        }
        page.ids.truncate(limit);
        Ok(page
            .ids
            .iter()
            .map(|e| Recorded::from_entry(topic, e))
            .collect())
    }

    /// Entries after `after`, waiting up to `wait` (non-zero) for some, not
    /// checked against retention: for a reader at the head (a shared
    /// tail), which retention never passes.
    pub(crate) async fn read_at_head(
        &self,
        topic: &str,
        after: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<Recorded>, StoreError> {
        let limit = limit.clamp(1, validate::MAX_PAGE);
        let key = stream_key(topic);
        // A blocking XREAD answers at once when entries past `after` exist:
        // one round trip whether or not it has to wait.
        let from = if after.is_empty() { "0-0" } else { after };
        let deadline = tokio::time::Instant::now() + wait;
        let Some(blocking) = self.redis.blocking_until(deadline).await else {
            return Ok(Vec::new());
        };
        let mut blocking = blocking?;
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(limit)
            .arg("BLOCK")
            // BLOCK 0 would wait forever.
            .arg((wait.as_millis() as u64).max(1))
            .arg("STREAMS")
            .arg(&key)
            .arg(from);
        let reply: Option<StreamReadReply> = blocking.query(&cmd).await?;
        Ok(flatten(reply))
    }

    /// Refuses a reader at `after` of each topic when retention removed
    /// entries it has not seen (see [`StoreError::Trimmed`]).
    pub async fn check_retained(&self, from: &[(&str, String)]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        for (topic, _) in from {
            pipe.cmd("GET").arg(StreamKeys::new(topic).trimmed);
        }
        let marks: Vec<Option<String>> = pipe.query_async(&mut self.redis.conn()).await?;
        for ((topic, after), trimmed) in from.iter().zip(marks) {
            retained(topic, after, trimmed)?;
        }
        Ok(())
    }

    /// The last entry ID of each topic ("0-0" when empty).
    pub async fn heads(&self, topics: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        for topic in topics {
            validate::topic(topic)?;
        }
        let mut pipe = redis::pipe();
        add_heads(&mut pipe, topics);
        let mut conn = self.redis.conn();
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        self.complete_heads(topics, replies).await
    }

    /// The heads an [`add_heads`] reply holds. A topic without a head key
    /// (appended to before the publish script kept one, or never) is read
    /// from its stream once, and the key is set if still absent, so the
    /// next read finds it; a publish in between wins, as its head is newer.
    async fn complete_heads(
        &self,
        topics: &[String],
        replies: Vec<redis::Value>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let stored: Vec<Option<String>> = match replies.into_iter().next() {
            Some(value) => redis::from_redis_value(value).map_err(redis::RedisError::from)?,
            None => Vec::new(),
        };
        let mut heads: Vec<(String, Option<String>)> = topics
            .iter()
            .cloned()
            .zip(stored.into_iter().chain(std::iter::repeat(None)))
            .collect();
        let missing: Vec<usize> = (0..heads.len()).filter(|&i| heads[i].1.is_none()).collect();
        if !missing.is_empty() {
            let mut pipe = redis::pipe();
            for &i in &missing {
                pipe.cmd("XREVRANGE")
                    .arg(stream_key(&heads[i].0))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1);
            }
            let mut conn = self.redis.conn();
            let ranges: Vec<StreamRangeReply> = pipe.query_async(&mut conn).await?;
            let mut set = redis::pipe();
            for (&i, range) in missing.iter().zip(ranges) {
                let head = range
                    .ids
                    .first()
                    .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
                set.cmd("SET")
                    .arg(StreamKeys::new(&heads[i].0).head)
                    .arg(&head)
                    .arg("NX")
                    .ignore();
                heads[i].1 = Some(head);
            }
            // Only saves the next read a round trip: a full Redis (which
            // refuses writes) must not fail the read.
            if let Err(err) = set.query_async::<()>(&mut conn).await {
                tracing::debug!(error = %err, "head keys not kept");
            }
        }
        Ok(heads
            .into_iter()
            .map(|(topic, head)| (topic, head.unwrap_or_else(|| "0-0".to_owned())))
            .collect())
    }

    /// Creates the group if it does not exist yet (and the stream with it).
    pub async fn ensure_group(
        &self,
        topic: &str,
        group: &str,
        start: StartAt,
    ) -> Result<(), StoreError> {
        let id = match start {
            StartAt::Beginning => "0",
            StartAt::End => "$",
        };
        let mut conn = self.redis.conn();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream_key(topic))
            .arg(group)
            .arg(id)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Acknowledges entries; unknown ones are `NotFound`.
    pub async fn ack(&self, topic: &str, group: &str, ids: &[String]) -> Result<u64, StoreError> {
        validate::topic(topic)?;
        validate::name("group", group)?;
        if ids.is_empty() {
            return Err(StoreError::InvalidArgument("no entry ids to ack".into()));
        }
        for id in ids {
            validate::entry_id(id)?;
        }
        let mut conn = self.redis.conn();
        let acked: u64 = conn.xack(stream_key(topic), group, ids).await?;
        if acked == 0 {
            return Err(StoreError::NotFound(format!(
                "no pending entry {ids:?} in group {group} of topic {topic}"
            )));
        }
        Ok(acked)
    }

    /// Refuses a delivery. A permanent refusal (the event can never be
    /// handled: unreadable, invalid) dead-letters it with the reason; any
    /// other makes it claimable again after `retry_after`, however often
    /// that takes (see [`DeliveryCount`]).
    pub async fn nack(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        id: &str,
        refusal: Refusal,
        reason: &str,
    ) -> Result<bool, StoreError> {
        validate::topic(topic)?;
        validate::name("group", group)?;
        validate::name("consumer", consumer)?;
        validate::entry_id(id)?;
        let key = stream_key(topic);
        let mut conn = self.redis.conn();
        let not_pending = || {
            StoreError::NotFound(format!(
                "no pending entry {id} in group {group} of topic {topic}"
            ))
        };
        let after = match refusal {
            Refusal::Retry { after } => after,
            Refusal::Permanent => {
                let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                    .arg(&key)
                    .arg(group)
                    .arg(id)
                    .arg(id)
                    .arg(1)
                    .query_async(&mut conn)
                    .await?;
                let entry = pending.ids.first().ok_or_else(not_pending)?;
                let count = DeliveryCount::decode(entry.times_delivered as u64);
                let range: StreamRangeReply = conn.xrange(&key, id, id).await?;
                let record = range.ids.first().map(|e| Recorded::from_entry(topic, e));
                self.dead_letter(topic, group, id, record, count.attempt(), reason)
                    .await?;
                return Ok(true);
            }
        };
        // The entry's idle clock is rewound so that any subscriber's next
        // claim pass takes it once `after` has passed.
        let idle = self.config.claim_idle.saturating_sub(after);
        let outcome: i64 = redis::Script::new(REFUSE)
            .key(&key)
            .arg(group)
            .arg(consumer)
            .arg(id)
            .arg(idle.as_millis() as u64)
            .arg(delivery_count::STRIDE)
            .invoke_async(&mut conn)
            .await?;
        match outcome {
            -1 => Err(not_pending()),
            -2 => Err(StoreError::NotFound(format!(
                "entry {id} of topic {topic} was claimed by another consumer of group {group} meanwhile"
            ))),
            _ => Ok(false),
        }
    }

    /// Moves an entry to `{events:<topic>}:dead` and acks it, atomically.
    async fn dead_letter(
        &self,
        topic: &str,
        group: &str,
        id: &str,
        record: Option<Recorded>,
        deliveries: u32,
        reason: &str,
    ) -> Result<(), StoreError> {
        let keys = StreamKeys::new(topic);
        let record = record.unwrap_or_default();
        tracing::warn!(topic, group, id, deliveries, reason, "dead-lettering event");
        let mut conn = self.redis.conn();
        redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&keys.dead)
            .arg("MAXLEN")
            .arg("~")
            .arg(delivery_count::DEAD_LETTERS_KEPT)
            .arg("*")
            .arg(&[
                ("entry_id", id),
                ("group", group),
                ("reason", reason),
                ("event_id", record.event_id.as_str()),
                ("event_action", record.event_action.as_str()),
                ("event_data", record.event_data.as_str()),
                ("entity_id", record.entity_id.as_str()),
            ])
            .arg("deliveries")
            .arg(deliveries)
            .ignore()
            .cmd("XACK")
            .arg(&keys.stream)
            .arg(group)
            .arg(id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// This consumer's own unacked entries after `after` (a restart with the
    /// same consumer name, or a dropped stream), redelivered at once.
    pub async fn own_pending(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        after: &str,
        count: usize,
    ) -> Result<Vec<Delivered>, StoreError> {
        let key = stream_key(topic);
        let mut conn = self.redis.conn();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&key)
            .arg(after)
            .query_async(&mut conn)
            .await?;
        let records = flatten(reply);
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let first = &records[0].entry_id;
        let last = &records[records.len() - 1].entry_id;
        let counts: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&key)
            .arg(group)
            .arg(first)
            .arg(last)
            .arg(records.len())
            .arg(consumer)
            .query_async(&mut conn)
            .await?;
        self.screen(topic, group, records, &counts).await
    }

    /// Takes over entries other consumers left unacked for `claim_idle`.
    pub async fn claim_abandoned(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivered>, StoreError> {
        let key = stream_key(topic);
        let mut conn = self.redis.conn();
        let min_idle = self.config.claim_idle.as_millis() as u64;
        let idle: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&key)
            .arg(group)
            .arg("IDLE")
            .arg(min_idle)
            .arg("-")
            .arg("+")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        if idle.ids.is_empty() {
            return Ok(Vec::new());
        }
        // XCLAIM re-checks the idle time, so when two subscribers race for
        // the same entry only one gets it.
        let ids: Vec<&str> = idle.ids.iter().map(|p| p.id.as_str()).collect();
        let claimed: StreamRangeReply = redis::cmd("XCLAIM")
            .arg(&key)
            .arg(group)
            .arg(consumer)
            .arg(min_idle)
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        let records: Vec<Recorded> = claimed
            .ids
            .iter()
            .map(|e| Recorded::from_entry(topic, e))
            .collect();
        // XCLAIM counted one more delivery than XPENDING reported.
        let mut counts = idle;
        for p in &mut counts.ids {
            p.times_delivered += 1;
        }
        self.screen(topic, group, records, &counts).await
    }

    /// Dead-letters poison entries (delivered too often without an answer:
    /// their consumer crashed each time); returns the rest.
    async fn screen(
        &self,
        topic: &str,
        group: &str,
        records: Vec<Recorded>,
        counts: &StreamPendingCountReply,
    ) -> Result<Vec<Delivered>, StoreError> {
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let count = DeliveryCount::decode(
                counts
                    .ids
                    .iter()
                    .find(|p| p.id == record.entry_id)
                    .map(|p| p.times_delivered as u64)
                    .unwrap_or(1),
            );
            if count.is_poison(self.config.max_deliveries) {
                let id = record.entry_id.clone();
                // The delivery screened out here is not counted: it never
                // reached a handler.
                let reason = format!(
                    "delivered {} times in a row without an answer (its consumer crashed or hung each time)",
                    count.unanswered - 1
                );
                self.dead_letter(topic, group, &id, Some(record), count.attempt(), &reason)
                    .await?;
            } else {
                out.push(Delivered {
                    event: record,
                    delivery_count: count.attempt(),
                    heads: Arc::default(),
                });
            }
        }
        Ok(out)
    }

    /// New entries for the group, blocking up to `block`, each with the
    /// heads of `heads_of` read right after the entries were (in the same
    /// round trip: Redis runs the head reads once the blocking read returns).
    pub async fn read_new(
        &self,
        topics: &[String],
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
        heads_of: &[String],
    ) -> Result<Vec<Delivered>, StoreError> {
        let deadline = tokio::time::Instant::now() + block;
        let Some(conn) = self.redis.blocking_until(deadline).await else {
            return Ok(Vec::new());
        };
        let mut conn = conn?;
        let block = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS");
        for topic in topics {
            cmd.arg(stream_key(topic));
        }
        for _ in topics {
            cmd.arg(">");
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        add_heads(&mut pipe, heads_of);
        let replies: Vec<redis::Value> = conn.query_pipeline(&pipe).await?;
        let mut replies = replies.into_iter();
        let entries: Option<StreamReadReply> =
            redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))
                .map_err(redis::RedisError::from)?;
        let heads = Arc::new(self.complete_heads(heads_of, replies.collect()).await?);
        Ok(flatten(entries)
            .into_iter()
            .map(|event| Delivered {
                event,
                delivery_count: 1,
                heads: heads.clone(),
            })
            .collect())
    }
}

/// Adds one `MGET` of the topics' head keys (nothing for no topics);
/// [`StreamStore::complete_heads`] reads its reply.
fn add_heads(pipe: &mut redis::Pipeline, topics: &[String]) {
    if topics.is_empty() {
        return;
    }
    let mut mget = redis::cmd("MGET");
    for topic in topics {
        mget.arg(StreamKeys::new(topic).head);
    }
    pipe.add_command(mget);
}

/// Stream read replies name streams by key; records name them by topic.
/// Whether a reader that has everything up to `after` ("" = nothing) of
/// `topic` can go on: retention removed only entries before the mark
/// `trimmed`, so one that has everything before it misses nothing.
fn retained(topic: &str, after: &str, trimmed: Option<String>) -> Result<(), StoreError> {
    let Some(before) = trimmed.as_deref().and_then(EntryId::parse) else {
        return Ok(());
    };
    let at = EntryId::parse(after).unwrap_or(EntryId::ZERO);
    if at >= before.predecessor() {
        return Ok(());
    }
    Err(StoreError::Trimmed {
        topic: topic.to_owned(),
        after: at,
        before,
    })
}

fn flatten(reply: Option<StreamReadReply>) -> Vec<Recorded> {
    reply
        .map(|r| r.keys)
        .unwrap_or_default()
        .iter()
        .flat_map(|stream| {
            let topic = stream.key.strip_prefix("events:").unwrap_or(&stream.key);
            stream
                .ids
                .iter()
                .map(move |e| Recorded::from_entry(topic, e))
        })
        .collect()
}

/// The metrics of one append: its time, and what became of its events.
fn count_append(topic: &str, took: Duration, outcome: &Result<Vec<Stored>, StoreError>) {
    use ordershop_metrics::families::{
        APPEND_CONFLICTS, APPEND_DUPLICATES, APPEND_SECONDS, EVENTS_APPENDED, topic as label,
    };
    let label = label(topic);
    APPEND_SECONDS
        .get_or_create(&label)
        .observe(took.as_secs_f64());
    match outcome {
        Ok(stored) => {
            let duplicates = stored.iter().filter(|s| s.duplicate).count() as u64;
            APPEND_DUPLICATES.get_or_create(&label).inc_by(duplicates);
            EVENTS_APPENDED
                .get_or_create(&label)
                .inc_by(stored.len() as u64 - duplicates);
        }
        Err(StoreError::Conflict { .. }) => {
            APPEND_CONFLICTS.get_or_create(&label).inc();
        }
        Err(_) => {}
    }
}
