//! Measuring every consumer's backlog in as few round trips as Redis allows.
//!
//! # Cost of one poll
//!
//! Round trip 1, always, one pipeline for all consumers together:
//! - `XINFO GROUPS <stream>` and `XLEN <stream>` once per distinct stream
//!   (consumers that share a stream share them: `XINFO GROUPS` lists every
//!   group of the stream). The length is no stand-in for a lag; it only
//!   catches a reported lag larger than the stream, which Redis 7 gives
//!   after `XTRIM` removed entries a group never received;
//! - per queue channel: `LLEN` waiting, `LLEN` in-flight, `ZCARD` delayed;
//! - `TIME` when [`MeasureOptions::undelivered_age`] is on (ages are
//!   computed on the Redis clock, which wrote the stream IDs: no skew with
//!   the operator's clock).
//!
//! Round trip 2, only when some group needs it: one `EVAL` per group whose
//! lag Redis reports as nil or larger than the stream (a bounded `XRANGE`
//! after the last delivered ID, counted inside Redis so the entries never
//! cross the network), and with
//! `undelivered_age` on, one per group with lag > 0 (the same script with
//! `COUNT 1`, for the first undelivered ID).
//!
//! For the 13 OrderShop roles (10 consumers of 30 channels, 8 groups on 4
//! streams) that is 2 × 4 + 3 × 30 = 98 commands in 1 round trip, plus 1 to
//! 8 `EVAL`s in a second one when a lag must be counted; [`PollCost`] reports the actual
//! numbers of each poll.

use ordershop_topology::{QueueKeys, Role};
use redis::{Value, aio::ConnectionLike};

use crate::backlog::{
    Backlog, ChannelBacklog, ChannelState, GroupBacklog, Lag, StreamBacklog, StreamState,
};
use crate::groups::{GroupRef, consumer_groups};
use crate::observation::Sample;
use ordershop_topology::EntryId;

use crate::reply::{self, GroupInfo};
use crate::time::UnixMillis;

/// Counts the entries after an ID (exclusive), up to a limit, and returns
/// `{count, first ID}` — the bounded XRANGE of a nil lag, without shipping
/// up to `limit` entries (events of a few KB each) to the operator on every
/// poll. Sent with EVAL (not EVALSHA) so a restarted or failed-over Redis
/// that lost its script cache needs no NOSCRIPT retry; Redis caches the
/// compiled script by its hash either way.
const COUNT_AFTER_SCRIPT: &str = r"
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
if #entries == 0 then return {0} end
return {#entries, entries[1][1]}
";

/// How to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureOptions {
    /// Most entries counted for one group whose lag must be counted. A
    /// larger lag is reported as "at least" this (plus one), which loses
    /// nothing when the cap is at least `targetPerReplica × maxReplicas`: the
    /// decision could not ask for more replicas anyway. The count runs inside
    /// Redis at about 2 µs per entry (measured: 8 groups × 1,900 entries in
    /// 32 ms), and Redis serves nothing else meanwhile, so keep it near that
    /// product rather than "large to be safe".
    pub nil_lag_cap: u64,
    /// Also measure the age of each group's oldest undelivered entry. Costs
    /// `TIME` in round trip 1 and a second round trip whenever a group lags.
    pub undelivered_age: bool,
    /// Which backlogs to measure: a process that reports only one kind
    /// (the event store its groups, the queue its channels) reads only
    /// those keys, which its Redis user may then be limited to.
    pub kinds: Kinds,
}

/// The kinds of backlog a measurement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kinds {
    /// Consumer groups and queue channels (the operator).
    #[default]
    All,
    /// Consumer groups only.
    Streams,
    /// Queue channels only.
    Channels,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            nil_lag_cap: 2_000,
            undelivered_age: false,
            kinds: Kinds::All,
        }
    }
}

/// Why no measurement came back. The caller holds its last decision
/// (`Sample::from(&error)`).
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("Redis could not be read: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis answered {received} replies to a pipeline of {sent} commands")]
    UnexpectedReply { sent: usize, received: usize },
}

impl From<&MeasureError> for Sample {
    fn from(error: &MeasureError) -> Self {
        Sample::Unavailable {
            reason: error.to_string(),
        }
    }
}

/// Commands and round trips one poll cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollCost {
    pub round_trips: usize,
    pub commands: usize,
}

/// The backlog of every consumer asked for, from one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// One per distinct role asked for, in the order asked.
    pub backlogs: Vec<Backlog>,
    pub cost: PollCost,
    /// The Redis server's clock, when `undelivered_age` asked for it.
    pub server_time: Option<UnixMillis>,
}

impl Measurement {
    pub fn backlog(&self, role: Role) -> Option<&Backlog> {
        self.backlogs.iter().find(|b| b.role == role)
    }

    /// The decision's input for one role; a role that was not measured is
    /// unavailable (so its last decision holds), never idle.
    pub fn sample(&self, role: Role) -> Sample {
        match self.backlog(role) {
            Some(backlog) => backlog.sample(),
            None => Sample::Unavailable {
                reason: format!("{} was not measured", role.slug()),
            },
        }
    }

    /// Every group found missing, for [`crate::create_groups`].
    pub fn missing_groups(&self) -> Vec<GroupRef> {
        self.backlogs
            .iter()
            .flat_map(Backlog::missing_groups)
            .collect()
    }
}

/// What round trip 1 said about one stream.
enum StreamReply {
    Groups { groups: Vec<GroupInfo>, length: u64 },
    Missing,
    Unreadable(String),
}

/// A count for round trip 2: the entries after a group's last delivered ID.
struct Probe {
    /// Index into [`Plan::groups`].
    group: usize,
    last_delivered: EntryId,
    limit: u64,
    /// Whether the count is the lag, or only finds the first undelivered ID.
    counts_lag: bool,
}

/// What one poll asks for, in pipeline order.
struct Plan {
    roles: Vec<Role>,
    groups: Vec<GroupRef>,
    streams: Vec<String>,
    channels: Vec<String>,
}

impl Plan {
    fn new(roles: &[Role], kinds: Kinds) -> Self {
        let mut distinct: Vec<Role> = Vec::with_capacity(roles.len());
        for &role in roles {
            if !distinct.contains(&role) {
                distinct.push(role);
            }
        }
        let groups = if kinds == Kinds::Channels {
            Vec::new()
        } else {
            consumer_groups(&distinct)
        };
        let mut streams: Vec<String> = Vec::new();
        for group in &groups {
            if !streams.contains(&group.stream) {
                streams.push(group.stream.clone());
            }
        }
        let channels = if kinds == Kinds::Streams {
            Vec::new()
        } else {
            distinct.iter().flat_map(|role| role.channels()).collect()
        };
        Self {
            roles: distinct,
            groups,
            streams,
            channels,
        }
    }

    fn first_pipeline(&self, options: &MeasureOptions) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if options.undelivered_age {
            pipe.cmd("TIME");
        }
        for stream in &self.streams {
            pipe.cmd("XINFO").arg("GROUPS").arg(stream);
            // After XINFO: an entry added in between can only make the
            // length larger, never make a right lag look too large.
            pipe.cmd("XLEN").arg(stream);
        }
        for channel in &self.channels {
            let keys = QueueKeys::new(channel);
            pipe.cmd("LLEN").arg(&keys.waiting);
            pipe.cmd("LLEN").arg(&keys.inflight);
            pipe.cmd("ZCARD").arg(&keys.delayed);
        }
        pipe
    }

    fn stream_reply<'a>(
        &self,
        replies: &'a [StreamReply],
        group: &GroupRef,
    ) -> Option<&'a StreamReply> {
        let index = self.streams.iter().position(|s| *s == group.stream)?;
        replies.get(index)
    }

    /// Hands the per-group states and per-channel states, in plan order, to
    /// their roles.
    fn assemble(self, states: Vec<StreamState>, channel_states: Vec<ChannelState>) -> Vec<Backlog> {
        let mut streams = self.groups.into_iter().zip(states);
        let mut channels = self.channels.into_iter().zip(channel_states);
        self.roles
            .iter()
            .map(|&role| Backlog {
                role,
                streams: streams
                    .by_ref()
                    .take(role.subscriptions().len())
                    .map(|(group, state)| StreamBacklog { group, state })
                    .collect(),
                channels: channels
                    .by_ref()
                    .take(role.channels().len())
                    .map(|(channel, state)| ChannelBacklog { channel, state })
                    .collect(),
            })
            .collect()
    }
}

/// Measures the backlog of every given role (roles that consume nothing get
/// an empty backlog). See the module docs for what it costs.
///
/// Errors only when Redis cannot be read at all; a stream, group or key that
/// is missing or unreadable is reported inside the backlog.
pub async fn measure_all<C>(
    conn: &mut C,
    roles: &[Role],
    options: &MeasureOptions,
) -> Result<Measurement, MeasureError>
where
    C: ConnectionLike + Send,
{
    let plan = Plan::new(roles, options.kinds);
    let pipe = plan.first_pipeline(options);
    let mut cost = PollCost {
        round_trips: 1,
        commands: pipe.len(),
    };
    let mut replies = query(&pipe, conn).await?.into_iter();
    let mut next = || replies.next().unwrap_or(Value::Nil);
    let server_time = if options.undelivered_age {
        reply::server_millis(&next()).map(UnixMillis)
    } else {
        None
    };
    let stream_replies: Vec<StreamReply> = plan
        .streams
        .iter()
        .map(|_| stream_reply(next(), next()))
        .collect();
    let channel_states: Vec<ChannelState> = plan
        .channels
        .iter()
        .map(|_| channel_state([next(), next(), next()]))
        .collect();

    let mut states = Vec::with_capacity(plan.groups.len());
    let mut probes = Vec::new();
    for (index, group) in plan.groups.iter().enumerate() {
        let (state, probe) = group_state(
            index,
            group,
            plan.stream_reply(&stream_replies, group),
            server_time.is_some(),
            options,
        );
        states.push(state);
        probes.extend(probe);
    }

    if !probes.is_empty() {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for probe in &probes {
            pipe.cmd("EVAL")
                .arg(COUNT_AFTER_SCRIPT)
                .arg(1)
                .arg(&plan.groups[probe.group].stream)
                .arg(probe.last_delivered.to_string())
                .arg(probe.limit);
        }
        cost.round_trips += 1;
        cost.commands += pipe.len();
        let replies = query(&pipe, conn).await?;
        for (probe, reply) in probes.iter().zip(replies) {
            apply_probe(probe, reply, &mut states[probe.group], server_time, options);
        }
    }

    tracing::debug!(
        round_trips = cost.round_trips,
        commands = cost.commands,
        "measured consumer backlogs"
    );
    Ok(Measurement {
        backlogs: plan.assemble(states, channel_states),
        cost,
        server_time,
    })
}

/// The state of one group from round trip 1, and the count it needs in
/// round trip 2, if any.
fn group_state(
    index: usize,
    group: &GroupRef,
    stream: Option<&StreamReply>,
    want_age: bool,
    options: &MeasureOptions,
) -> (StreamState, Option<Probe>) {
    let (infos, length) = match stream {
        Some(StreamReply::Groups { groups, length }) => (groups, *length),
        Some(StreamReply::Missing) => return (StreamState::StreamMissing, None),
        Some(StreamReply::Unreadable(error)) => {
            return (StreamState::Unreadable(error.clone()), None);
        }
        None => {
            return (
                StreamState::Unreadable("stream was not queried".into()),
                None,
            );
        }
    };
    let Some(info) = infos.iter().find(|i| i.name == group.group) else {
        return (StreamState::GroupMissing, None);
    };
    let probe = |limit, counts_lag| Probe {
        group: index,
        last_delivered: info.last_delivered,
        limit,
        counts_lag,
    };
    let count_cap = options.nil_lag_cap.saturating_add(1);
    let probe = match info.lag {
        // Nil, or more than the stream holds (after XTRIM): count instead.
        None => Some(probe(count_cap, true)),
        Some(lag) if lag > length => Some(probe(count_cap, true)),
        Some(lag) if lag > 0 && want_age => Some(probe(1, false)),
        Some(_) => None,
    };
    let state = StreamState::Measured(GroupBacklog {
        // A lag to count is replaced by the probe's count.
        lag: Lag::Reported(info.lag.unwrap_or(0)),
        pending: info.pending,
        last_delivered: info.last_delivered,
        reported_lag: info.lag,
        stream_length: length,
        oldest_undelivered_age_ms: None,
    });
    (state, probe)
}

async fn query<C>(pipe: &redis::Pipeline, conn: &mut C) -> Result<Vec<Value>, MeasureError>
where
    C: ConnectionLike + Send,
{
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    if replies.len() == pipe.len() {
        Ok(replies)
    } else {
        Err(MeasureError::UnexpectedReply {
            sent: pipe.len(),
            received: replies.len(),
        })
    }
}

fn stream_reply(groups: Value, length: Value) -> StreamReply {
    match groups {
        Value::ServerError(error) if reply::is_no_such_key(&error) => StreamReply::Missing,
        Value::ServerError(error) => StreamReply::Unreadable(reply::error_text(&error)),
        groups => match (reply::groups(&groups), reply::count(&length)) {
            (Ok(groups), Some(length)) => StreamReply::Groups { groups, length },
            (Err(error), _) => StreamReply::Unreadable(error),
            (Ok(_), None) => StreamReply::Unreadable(format!("XLEN answered {length:?}")),
        },
    }
}

fn channel_state(values: [Value; 3]) -> ChannelState {
    let mut counts = [0u64; 3];
    for (slot, value) in counts.iter_mut().zip(values) {
        match value {
            Value::ServerError(error) => {
                return ChannelState::Unreadable(reply::error_text(&error));
            }
            value => match reply::count(&value) {
                Some(n) => *slot = n,
                None => return ChannelState::Unreadable(format!("not a count: {value:?}")),
            },
        }
    }
    let [waiting, in_flight, delayed] = counts;
    ChannelState::Measured {
        waiting,
        in_flight,
        delayed,
    }
}

fn apply_probe(
    probe: &Probe,
    value: Value,
    state: &mut StreamState,
    server_time: Option<UnixMillis>,
    options: &MeasureOptions,
) {
    let StreamState::Measured(group) = state else {
        return;
    };
    let (count, first) = match count_reply(&value) {
        Ok(parsed) => parsed,
        Err(error) if probe.counts_lag => {
            *state = StreamState::Unreadable(format!("counting a nil lag: {error}"));
            return;
        }
        Err(error) => {
            // The lag is known; only the optional age is lost.
            tracing::debug!(%error, "oldest undelivered entry could not be read");
            return;
        }
    };
    if probe.counts_lag {
        group.lag = if count > options.nil_lag_cap {
            Lag::AtLeast(count)
        } else {
            Lag::Counted(count)
        };
    }
    if let (Some(now), Some(first)) = (server_time, first) {
        group.oldest_undelivered_age_ms = Some(now.0.saturating_sub(first.ms));
    }
}

fn count_reply(value: &Value) -> Result<(u64, Option<EntryId>), String> {
    match value {
        Value::ServerError(error) => Err(reply::error_text(error)),
        Value::Array(items) => {
            let count = items
                .first()
                .and_then(reply::count)
                .ok_or_else(|| format!("count script answered {value:?}"))?;
            let first = match items.get(1) {
                Some(id) => {
                    Some(reply::stream_id(&reply::text(id).ok_or_else(|| {
                        format!("count script answered {value:?}")
                    })?)?)
                }
                None => None,
            };
            Ok((count, first))
        }
        other => Err(format!("count script answered {other:?}")),
    }
}
