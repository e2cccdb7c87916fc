//! Redis key names. Keys of one queue channel (and of one event topic) share
//! a Redis Cluster hash tag, so the multi-key scripts that move messages or
//! append events would stay legal on a cluster.

/// The stream of a topic: `events:<topic>` (the contract's name).
pub fn stream_key(topic: &str) -> String {
    format!("events:{topic}")
}

/// Where entries that failed too often go: `{events:<topic>}:dead`.
pub fn dead_letter_stream(topic: &str) -> String {
    format!("{{events:{topic}}}:dead")
}

/// Where the event store keeps the latest snapshot of a service's view:
/// `{events:snapshots}:<service>` (a hash: format, data, and the position
/// of each topic as `pos:<topic>`).
pub fn snapshot_key(service: &str) -> String {
    format!("{{events:snapshots}}:{service}")
}

/// A queue channel: `<service>.<function>`.
pub fn channel_name(service: &str, function: &str) -> String {
    format!("{service}.{function}")
}

/// Auxiliary keys of a topic's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKeys {
    /// The stream itself (`events:<topic>`); its hash slot is that of the
    /// tag `events:<topic>`, which the auxiliary keys share.
    pub stream: String,
    /// Hash entity id -> current version.
    pub versions: String,
    /// Prefix of the hashes event id -> "entry id version" that store an
    /// event once: one per window bucket ([`StreamKeys::event_ids`]), so
    /// the records of old events expire instead of growing forever.
    event_ids_prefix: String,
    /// The one hash of event ids kept forever by earlier releases; the
    /// event store renames it into a bucket, where it expires.
    pub legacy_event_ids: String,
    /// Dead-letter stream.
    pub dead: String,
    /// String: the entry id of the stream's last entry, set by the publish
    /// script with every append, so the heads of every topic are one
    /// `MGET` instead of one `XREVRANGE` per topic.
    pub head: String,
    /// String: the entry id retention last trimmed the stream before
    /// (entries older than it may be gone), so a reader asking for what
    /// came after an older position is refused instead of given a gap.
    pub trimmed: String,
}

impl StreamKeys {
    pub fn new(topic: &str) -> Self {
        Self {
            stream: stream_key(topic),
            versions: format!("{{events:{topic}}}:versions"),
            event_ids_prefix: format!("{{events:{topic}}}:ids:"),
            legacy_event_ids: format!("{{events:{topic}}}:ids"),
            dead: dead_letter_stream(topic),
            head: format!("{{events:{topic}}}:head"),
            trimmed: format!("{{events:{topic}}}:trimmed"),
        }
    }
}

impl StreamKeys {
    /// The event ids stored in window bucket `bucket` (see
    /// [`event_id_bucket`]): `{events:<topic>}:ids:<bucket>`.
    pub fn event_ids(&self, bucket: u64) -> String {
        format!("{}{bucket}", self.event_ids_prefix)
    }
}

/// The window bucket of an event id stored `unix_secs` after the epoch:
/// ids are looked up in their bucket and the one before, so an id is
/// known for at least `window_secs` and at most twice that.
pub fn event_id_bucket(unix_secs: u64, window_secs: u64) -> u64 {
    unix_secs / window_secs.max(1)
}

/// The keys of one reliable queue channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// List of message ids waiting to be received (pushed left, taken right).
    pub waiting: String,
    /// List of message ids leased to a consumer.
    pub inflight: String,
    /// Sorted set message id -> lease expiry (unix ms).
    pub leases: String,
    /// Sorted set message id -> time it may be retried (unix ms).
    pub delayed: String,
    /// Hash message id -> message JSON (payload, idempotency key, time),
    /// and, for a message that was refused or whose lease ran out,
    /// [`QueueKeys::attempts_field`] -> its delivery counter (refusals ×
    /// STRIDE + leases run out since; `ordershop_redis::delivery_count`).
    /// One hash, so finishing a message is one `HDEL` of both fields.
    pub messages: String,
    /// Earlier releases' hash message id -> deliveries so far, read by the
    /// dead-letter tools and emptied by the queue's housekeeping.
    pub attempts: String,
    /// List of dead-lettered message ids (their bodies stay in `messages`).
    pub dead: String,
    /// Hash message id -> why it was dead-lettered.
    pub dead_reasons: String,
    /// Prefix of idempotency keys (`<prefix><key>` -> message id).
    pub idempotency_prefix: String,
    /// Prefix of earlier releases' reply keys (`<prefix><message id>` ->
    /// response JSON); waiters still read one while such a release
    /// answers during a rolling upgrade.
    pub reply_prefix: String,
    /// Prefix of the lists that waiters block on (`<prefix><message id>`):
    /// one element, the response with a leading `=`.
    pub signal_prefix: String,
}

/// What a message id is suffixed with to name its delivery counter in
/// [`QueueKeys::messages`] (ids are UUIDs: no id ends with it).
pub const ATTEMPTS_FIELD_SUFFIX: &str = "#attempts";

impl QueueKeys {
    /// The field of [`QueueKeys::messages`] holding message `id`'s
    /// delivery counter.
    pub fn attempts_field(id: &str) -> String {
        format!("{id}{ATTEMPTS_FIELD_SUFFIX}")
    }

    pub fn new(channel: &str) -> Self {
        let tag = format!("queue:{{{channel}}}");
        Self {
            waiting: format!("{tag}:waiting"),
            inflight: format!("{tag}:inflight"),
            leases: format!("{tag}:leases"),
            delayed: format!("{tag}:delayed"),
            messages: format!("{tag}:messages"),
            attempts: format!("{tag}:attempts"),
            dead: format!("{tag}:dead"),
            dead_reasons: format!("{tag}:dead:reasons"),
            idempotency_prefix: format!("{tag}:idem:"),
            reply_prefix: format!("{tag}:reply:"),
            signal_prefix: format!("{tag}:signal:"),
        }
    }
}

/// The read model's cache of one topic. The keys share the hash tag
/// `{readmodel.<layout>:<topic>}`, so the fold script that writes entities
/// and the checkpoint together stays on one slot. The layout
/// ([`READ_MODEL_LAYOUT`]) is in the names: replicas of different versions
/// during a rolling upgrade each keep a cache of their own instead of
/// writing one the other cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadModelKeys {
    /// Hash sort key -> entity JSON (live entities only; the sort key is
    /// the entity id). For `mail`: [`mail_sort_key`] of the entry id ->
    /// the mail entry JSON (`[entry_id, {event_id, ...}]`).
    pub entities: String,
    /// Sorted set of every sort key in `entities`, all with score 0, so
    /// lists are read in pages in byte order (`ZRANGE ... BYLEX`) with the
    /// last key of a page as the cursor: a walk sees each entry once.
    pub index: String,
    /// Hash entity id -> version of the last event applied (deleted
    /// entities keep theirs, so a replayed create cannot bring one back).
    pub versions: String,
    /// Hash entity id -> JSON list of the tags the entity carries now
    /// (`order:<id>` for the order a billing or shipping belongs to,
    /// `delivered:<id>` for a delivered shipping), so an update or delete
    /// can take back the old ones.
    pub tags: String,
    /// Hash tag -> JSON list of the ids of the entities carrying it: the
    /// billings of an order, whether it has a shipping, whether it was
    /// delivered, without reading every billing or shipping.
    pub tagged: String,
    /// String: the entry id of the last event of the topic applied.
    pub checkpoint: String,
}

impl ReadModelKeys {
    pub fn new(topic: &str) -> Self {
        let tag = format!("{{readmodel.{READ_MODEL_LAYOUT}:{topic}}}");
        Self {
            entities: format!("{tag}:entities"),
            index: format!("{tag}:index"),
            versions: format!("{tag}:versions"),
            tags: format!("{tag}:tags"),
            tagged: format!("{tag}:tagged"),
            checkpoint: format!("{tag}:checkpoint"),
        }
    }

    /// Every key, in the fold script's order.
    pub fn all(&self) -> [&str; 6] {
        [
            &self.entities,
            &self.index,
            &self.versions,
            &self.tags,
            &self.tagged,
            &self.checkpoint,
        ]
    }

    /// The keys of the first layout (`{readmodel:<topic>}`: no index, no
    /// tags), which a read model of this layout removes.
    pub fn first_layout(topic: &str) -> [String; 3] {
        let tag = format!("{{readmodel:{topic}}}");
        [
            format!("{tag}:entities"),
            format!("{tag}:versions"),
            format!("{tag}:checkpoint"),
        ]
    }
}

/// The layout of the read model's keys, part of their names. Layout 1 had
/// no index and no tags.
pub const READ_MODEL_LAYOUT: &str = "2";

/// The sort key of a mail: its entry id with both parts zero-padded to 20
/// digits, so byte order is stream order (`9-0` sorts before `10-0`).
pub fn mail_sort_key(ms: u64, seq: u64) -> String {
    format!("{ms:020}-{seq:020}")
}

/// Matches every key of the read model's cache, of any layout (`SCAN MATCH`), e.g. to
/// flush it: the read model then rebuilds it from the event store.
pub const READ_MODEL_KEY_PATTERN: &str = "{readmodel*";

/// The set of every channel ever used, so the queue's lease reaper and the
/// operator can find them.
pub const CHANNELS_SET: &str = "queue:channels";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_sort_keys_sort_like_entry_ids() {
        assert!(mail_sort_key(9, 5) < mail_sort_key(10, 0));
        assert!(mail_sort_key(10, 9) < mail_sort_key(10, 10));
        assert_eq!(mail_sort_key(1, 2).len(), 41);
    }

    #[test]
    fn keys_of_a_channel_share_one_hash_tag() {
        let keys = QueueKeys::new("order-service.create_orders");
        for key in [&keys.waiting, &keys.inflight, &keys.leases, &keys.messages] {
            assert!(
                key.starts_with("queue:{order-service.create_orders}:"),
                "{key}"
            );
        }
    }

    #[test]
    fn stream_keys_share_the_stream_slot() {
        let keys = StreamKeys::new("order");
        assert_eq!(keys.stream, "events:order");
        // Redis hashes only `events:order` for both.
        assert!(keys.versions.starts_with("{events:order}"));
        assert_eq!(keys.event_ids(7), "{events:order}:ids:7");
    }

    #[test]
    fn an_event_id_bucket_spans_one_window() {
        let day = 86_400;
        assert_eq!(event_id_bucket(0, day), 0);
        assert_eq!(event_id_bucket(day - 1, day), 0);
        assert_eq!(event_id_bucket(day, day), 1);
        // A zero window is one second, not a division by zero.
        assert_eq!(event_id_bucket(5, 0), 5);
    }

    #[test]
    fn read_model_keys_share_one_tag_and_match_the_pattern() {
        let keys = ReadModelKeys::new("cart");
        for key in keys.all() {
            assert!(key.starts_with("{readmodel.2:cart}:"), "{key}");
            let prefix = READ_MODEL_KEY_PATTERN.trim_end_matches('*');
            assert!(key.starts_with(prefix), "{key}");
        }
    }
}
