//! `ordershop dead-letters`: what the event store and the queue gave up on
//! (a permanent refusal, or a poison message whose consumer crashed every
//! time), why, and handing it back once the cause is fixed.
//!
//! It reads and changes Redis directly, like `redis-cli` would, through the
//! key names of `ordershop_topology`: an operator's tool, usable while the
//! services are down.

use std::io::Write;

use anyhow::{Context, bail};
use ordershop_redis::DeliveryCount;
use ordershop_topology::{CHANNELS_SET, QueueKeys, StreamKeys, TOPICS};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamInfoGroupsReply, StreamRangeReply};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DeadLetterArgs {
    /// The shop's Redis.
    #[arg(
        long,
        env = "ORDERSHOP_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    redis_url: String,
    #[command(flatten)]
    redis_access: crate::cli::RedisAccess,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum Action {
    /// How many dead letters each topic (event store) and channel (queue) holds.
    List,
    /// The dead letters of one topic or channel, with why each gave up.
    Show {
        /// A topic (`billing`) or a channel (`order-service.set_status`).
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Hands dead letters back. A channel's messages go to the front of its
    /// waiting list with their delivery counts reset. A topic's consumer
    /// group is rewound to just before its oldest dead entry, so that entry
    /// and the ones after it are delivered again (every handler is
    /// idempotent: the ones already handled change nothing).
    Redrive {
        /// A topic or a channel.
        name: String,
        /// Only these (dead-letter entry ids of a topic, message ids of a
        /// channel); every one when none is given.
        #[arg(long = "id")]
        ids: Vec<String>,
    },
}

/// Where dead letters of a name live.
enum Place {
    Topic(String),
    Channel(String),
}

pub(crate) async fn run(args: DeadLetterArgs) -> anyhow::Result<()> {
    let client = ordershop_redis::client(&args.redis_url, &args.redis_access.options())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("cannot reach Redis at {}", args.redis_url))?;
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::List => list(&mut conn, &mut out).await,
        Action::Show { name, limit } => match place(&mut conn, &name).await? {
            Place::Topic(topic) => show_topic(&mut conn, &topic, limit, &mut out).await,
            Place::Channel(channel) => show_channel(&mut conn, &channel, limit, &mut out).await,
        },
        Action::Redrive { name, ids } => match place(&mut conn, &name).await? {
            Place::Topic(topic) => redrive_topic(&mut conn, &topic, &ids, &mut out).await,
            Place::Channel(channel) => redrive_channel(&mut conn, &channel, &ids, &mut out).await,
        },
    }
}

async fn place(conn: &mut MultiplexedConnection, name: &str) -> anyhow::Result<Place> {
    if TOPICS.contains(&name) {
        return Ok(Place::Topic(name.to_owned()));
    }
    let known: bool = redis::cmd("SISMEMBER")
        .arg(CHANNELS_SET)
        .arg(name)
        .query_async(conn)
        .await?;
    if !known {
        bail!(
            "{name:?} is neither a topic ({}) nor a channel the queue knows (see `ordershop dead-letters list`)",
            TOPICS.join(", ")
        );
    }
    Ok(Place::Channel(name.to_owned()))
}

async fn list(conn: &mut MultiplexedConnection, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "{:<8} {:<40} {:>6}", "KIND", "NAME", "DEAD")?;
    for DeadCount { kind, name, dead } in counts(conn).await? {
        writeln!(out, "{kind:<8} {name:<40} {dead:>6}")?;
    }
    Ok(())
}

/// How many dead letters one topic or channel holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct DeadCount {
    /// `topic` or `channel`.
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    pub(crate) dead: u64,
}

/// Every topic's and every known channel's dead letters.
pub(crate) async fn counts<C>(conn: &mut C) -> anyhow::Result<Vec<DeadCount>>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut counts = topic_counts(conn).await?;
    counts.extend(channel_counts(conn).await?);
    Ok(counts)
}

/// Every topic's dead letters, in one round trip.
pub(crate) async fn topic_counts<C>(conn: &mut C) -> anyhow::Result<Vec<DeadCount>>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut pipe = redis::pipe();
    for topic in TOPICS {
        pipe.cmd("XLEN").arg(StreamKeys::new(topic).dead);
    }
    let dead: Vec<u64> = pipe.query_async(conn).await?;
    Ok(TOPICS
        .iter()
        .zip(dead)
        .map(|(topic, dead)| DeadCount {
            kind: "topic",
            name: (*topic).to_owned(),
            dead,
        })
        .collect())
}

/// Every known channel's dead letters: the channel set, then one round trip.
pub(crate) async fn channel_counts<C>(conn: &mut C) -> anyhow::Result<Vec<DeadCount>>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut channels: Vec<String> = redis::cmd("SMEMBERS")
        .arg(CHANNELS_SET)
        .query_async(conn)
        .await?;
    channels.sort();
    if channels.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for channel in &channels {
        pipe.cmd("LLEN").arg(QueueKeys::new(channel).dead);
    }
    let dead: Vec<u64> = pipe.query_async(conn).await?;
    Ok(channels
        .into_iter()
        .zip(dead)
        .map(|(name, dead)| DeadCount {
            kind: "channel",
            name,
            dead,
        })
        .collect())
}

async fn show_topic(
    conn: &mut MultiplexedConnection,
    topic: &str,
    limit: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let dead: StreamRangeReply = redis::cmd("XRANGE")
        .arg(StreamKeys::new(topic).dead)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(limit)
        .query_async(conn)
        .await?;
    writeln!(
        out,
        "{} dead letter(s) of topic {topic} shown, oldest first",
        dead.ids.len()
    )?;
    for letter in &dead.ids {
        let field = |name: &str| letter.get::<String>(name).unwrap_or_default();
        writeln!(
            out,
            "- {}: entry {} of group {}, {} {} after {} deliveries\n  reason: {}\n  data: {}",
            letter.id,
            field("entry_id"),
            field("group"),
            field("event_action"),
            field("entity_id"),
            field("deliveries"),
            field("reason"),
            clip(&field("event_data")),
        )?;
    }
    Ok(())
}

async fn show_channel(
    conn: &mut MultiplexedConnection,
    channel: &str,
    limit: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let keys = QueueKeys::new(channel);
    // Dead-lettering pushes on the left: the newest comes first.
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(&keys.dead)
        .arg(0)
        .arg(limit.saturating_sub(1))
        .query_async(conn)
        .await?;
    writeln!(
        out,
        "{} dead letter(s) of channel {channel} shown, newest first",
        ids.len()
    )?;
    for id in ids {
        // Earlier releases kept the counter in a hash of its own.
        let ((body, count), reason, earlier_count): BodyReasonCounts = redis::pipe()
            .cmd("HMGET")
            .arg(&keys.messages)
            .arg(&id)
            .arg(QueueKeys::attempts_field(&id))
            .hget(&keys.dead_reasons, &id)
            .hget(&keys.attempts, &id)
            .query_async(conn)
            .await?;
        let attempt = DeliveryCount::decode(count.or(earlier_count).unwrap_or(0)).attempt();
        writeln!(
            out,
            "- {id}: after {attempt} deliveries\n  reason: {}\n  message: {}",
            reason
                .as_deref()
                .unwrap_or("(not recorded: dead-lettered by an older version)"),
            body.as_deref().map_or("(body gone)".into(), clip),
        )?;
    }
    Ok(())
}

/// A dead letter's body and delivery counter (one `HMGET`), its reason,
/// and the counter earlier releases kept in a hash of its own.
type BodyReasonCounts = ((Option<String>, Option<u64>), Option<String>, Option<u64>);

/// Moves the messages back to the front of the waiting list, with fresh
/// delivery counts. KEYS: dead, messages, earlier releases' attempts, dead
/// reasons, waiting. ARGV: id, its counter's field in messages. Returns 1
/// redriven, 0 not dead, -1 body gone (dropped).
const REDRIVE_MESSAGE: &str = r#"
local id = ARGV[1]
if redis.call('LREM', KEYS[1], 1, id) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
if redis.call('HEXISTS', KEYS[2], id) == 0 then return -1 end
redis.call('RPUSH', KEYS[5], id)
return 1
"#;

async fn redrive_channel(
    conn: &mut MultiplexedConnection,
    channel: &str,
    ids: &[String],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let keys = QueueKeys::new(channel);
    let ids: Vec<String> = if ids.is_empty() {
        redis::cmd("LRANGE")
            .arg(&keys.dead)
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await?
    } else {
        ids.to_vec()
    };
    let script = redis::Script::new(REDRIVE_MESSAGE);
    for id in ids {
        let outcome: i32 = script
            .key(&keys.dead)
            .key(&keys.messages)
            .key(&keys.attempts)
            .key(&keys.dead_reasons)
            .key(&keys.waiting)
            .arg(&id)
            .arg(QueueKeys::attempts_field(&id))
            .invoke_async(conn)
            .await?;
        let said = match outcome {
            1 => "back in the waiting list",
            0 => "not a dead letter of this channel; left alone",
            _ => "its body is gone; dropped from the dead letters",
        };
        writeln!(out, "{id}: {said}")?;
    }
    Ok(())
}

async fn redrive_topic(
    conn: &mut MultiplexedConnection,
    topic: &str,
    ids: &[String],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let keys = StreamKeys::new(topic);
    let dead: StreamRangeReply = redis::cmd("XRANGE")
        .arg(&keys.dead)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await?;
    let chosen: Vec<&StreamId> = dead
        .ids
        .iter()
        .filter(|letter| ids.is_empty() || ids.contains(&letter.id))
        .collect();
    // Per group, the oldest dead entry: rewinding to just before it
    // redelivers it and everything after it.
    let mut oldest: Vec<(String, EntryId)> = Vec::new();
    for letter in &chosen {
        let group = letter.get::<String>("group").unwrap_or_default();
        let entry = letter
            .get::<String>("entry_id")
            .and_then(|id| EntryId::parse(&id))
            .with_context(|| format!("dead letter {} names no entry id", letter.id))?;
        match oldest.iter_mut().find(|(g, _)| *g == group) {
            Some((_, first)) => *first = (*first).min(entry),
            None => oldest.push((group, entry)),
        }
    }
    let stream_exists: bool = redis::cmd("EXISTS")
        .arg(&keys.stream)
        .query_async(conn)
        .await?;
    let groups: StreamInfoGroupsReply = if stream_exists {
        redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&keys.stream)
            .query_async(conn)
            .await?
    } else {
        StreamInfoGroupsReply::default()
    };
    for (group, entry) in &oldest {
        let Some(info) = groups.groups.iter().find(|g| g.name == *group) else {
            writeln!(out, "group {group} no longer exists; its dead letters stay")?;
            continue;
        };
        let target = entry.before();
        // Only ever back: a group still behind the dead entry reaches it anyway,
        // and moving it forward would skip what it has not read yet.
        let delivered = EntryId::parse(&info.last_delivered_id).unwrap_or(EntryId(0, 0));
        if delivered > target {
            redis::cmd("XGROUP")
                .arg("SETID")
                .arg(&keys.stream)
                .arg(group)
                .arg(target.to_string())
                .query_async::<()>(conn)
                .await?;
        }
        writeln!(
            out,
            "group {group} of {topic}: delivers again from entry {entry} on"
        )?;
    }
    let handed_back: Vec<&str> = chosen
        .iter()
        .filter(|letter| {
            let group = letter.get::<String>("group").unwrap_or_default();
            groups.groups.iter().any(|g| g.name == group)
        })
        .map(|letter| letter.id.as_str())
        .collect();
    if !handed_back.is_empty() {
        redis::cmd("XDEL")
            .arg(&keys.dead)
            .arg(&handed_back)
            .query_async::<u64>(conn)
            .await?;
    }
    writeln!(
        out,
        "{} dead letter(s) of {topic} handed back",
        handed_back.len()
    )?;
    Ok(())
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId(u64, u64);

impl EntryId {
    fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The id just before this one (what `XGROUP SETID` takes to deliver
    /// this one next).
    fn before(self) -> Self {
        match self {
            EntryId(0, 0) => EntryId(0, 0),
            EntryId(ms, 0) => EntryId(ms - 1, u64::MAX),
            EntryId(ms, seq) => EntryId(ms, seq - 1),
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A payload cut for a terminal line.
fn clip(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_before_an_entry_is_the_last_one_it_can_follow() {
        let id = |s| EntryId::parse(s).unwrap();
        assert_eq!(id("5-3").before(), id("5-2"));
        assert_eq!(id("5-0").before().to_string(), format!("4-{}", u64::MAX));
        assert!(id("5-0").before() < id("5-0"));
        assert!(id("10-0") > id("9-99"), "numeric, not text, order");
        assert_eq!(id("0-0").before(), id("0-0"));
        assert_eq!(EntryId::parse("nope"), None);
    }

    #[test]
    fn long_payloads_are_clipped_on_a_char_boundary() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(400);
        assert!(clip(&long).starts_with(&"é".repeat(300)));
        assert!(clip(&long).ends_with("(800 bytes)"));
    }
}
