//! One consumer's backlog as measured on Redis, part by part, and its
//! summary for the decision.

use ordershop_topology::Role;

use crate::groups::GroupRef;
use crate::observation::{Observation, Sample};
use ordershop_topology::EntryId;

/// How a group's lag was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// `XINFO GROUPS` reported it.
    Reported(u64),
    /// Redis reported nil, or a lag larger than the stream (see
    /// [`GroupBacklog::reported_lag`]); the entries after the last delivered
    /// ID were counted, all of them: the count is exact.
    Counted(u64),
    /// As [`Lag::Counted`], but the count stopped at its cap: the lag is at
    /// least this.
    AtLeast(u64),
}

impl Lag {
    pub fn value(self) -> u64 {
        match self {
            Lag::Reported(n) | Lag::Counted(n) | Lag::AtLeast(n) => n,
        }
    }

    pub fn is_exact(self) -> bool {
        !matches!(self, Lag::AtLeast(_))
    }
}

/// The measured numbers of one consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBacklog {
    /// Entries not yet delivered to the group.
    pub lag: Lag,
    /// Entries delivered to a consumer of the group and not acknowledged.
    pub pending: u64,
    pub last_delivered: EntryId,
    /// The lag `XINFO GROUPS` gave: `None` for nil. It differs from `lag`
    /// when Redis could not tell (nil: entries deleted past the last
    /// delivered ID, a group set to an arbitrary ID) or told too much: after
    /// `XTRIM` removes entries the group never received, Redis 7 still
    /// counts them (entries added − entries read), more than the stream
    /// holds. Both cases are counted instead.
    pub reported_lag: Option<u64>,
    /// `XLEN` of the stream, read in the same round trip.
    pub stream_length: u64,
    /// Age of the first undelivered entry, on the Redis server's clock, when
    /// [`crate::MeasureOptions::undelivered_age`] asked for it and there is
    /// such an entry.
    pub oldest_undelivered_age_ms: Option<u64>,
}

impl GroupBacklog {
    fn what_redis_reported(&self) -> String {
        match self.reported_lag {
            None => "Redis reports lag nil".to_string(),
            Some(reported) => format!(
                "Redis reports lag {reported}, more than the {} entries of the stream (trimmed past the last delivered ID)",
                self.stream_length
            ),
        }
    }
}

/// What was found for one group of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamState {
    Measured(GroupBacklog),
    /// The stream does not exist: no event was ever written, the backlog is
    /// 0. (Creating the groups creates the stream.)
    StreamMissing,
    /// The stream exists but the group does not: the backlog is unknown (the
    /// group would start at `0`, but the stream's length is all history, so
    /// it is not used as a guess). [`crate::ensure_groups`] creates it.
    GroupMissing,
    /// Redis answered with an error for this stream (e.g. the key is not a
    /// stream) or a reply that could not be read.
    Unreadable(String),
}

/// One group of a consumer and what was found for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBacklog {
    pub group: GroupRef,
    pub state: StreamState,
}

/// What was found for one queue channel of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelState {
    Measured {
        /// `LLEN` of the waiting list.
        waiting: u64,
        /// `LLEN` of the in-flight list.
        in_flight: u64,
        /// `ZCARD` of the delayed set (messages parked for a retry).
        delayed: u64,
    },
    /// Redis answered with an error for a key of the channel (e.g. the key
    /// holds another type).
    Unreadable(String),
}

/// One queue channel of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBacklog {
    /// Channel name (`order-service.create_orders`).
    pub channel: String,
    pub state: ChannelState,
}

/// The backlog of one consumer role, part by part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub role: Role,
    pub streams: Vec<StreamBacklog>,
    pub channels: Vec<ChannelBacklog>,
}

impl Backlog {
    /// The groups of this consumer that do not exist: hand them to
    /// [`crate::create_groups`].
    pub fn missing_groups(&self) -> Vec<GroupRef> {
        self.streams
            .iter()
            .filter(|s| s.state == StreamState::GroupMissing)
            .map(|s| s.group.clone())
            .collect()
    }

    /// The sums the decision takes, with a note for every part that is not a
    /// plain count.
    pub fn observation(&self) -> Observation {
        let mut obs = Observation::idle();
        for stream in &self.streams {
            let name = format!("{} on {}", stream.group.group, stream.group.stream);
            match &stream.state {
                StreamState::Measured(group) => {
                    obs.lag = obs.lag.saturating_add(group.lag.value());
                    obs.pending = obs.pending.saturating_add(group.pending);
                    obs.oldest_undelivered_age_ms = obs
                        .oldest_undelivered_age_ms
                        .max(group.oldest_undelivered_age_ms);
                    match group.lag {
                        Lag::Reported(_) => {}
                        Lag::Counted(n) => obs.notes.push(format!(
                            "{name}: {}; counted {n} undelivered entries",
                            group.what_redis_reported()
                        )),
                        Lag::AtLeast(n) => {
                            obs.exact = false;
                            obs.notes.push(format!(
                                "{name}: {}; counted at least {n} undelivered entries (count capped)",
                                group.what_redis_reported()
                            ));
                        }
                    }
                }
                StreamState::StreamMissing => obs.notes.push(format!(
                    "{} does not exist yet: backlog 0 for {}",
                    stream.group.stream, stream.group.group
                )),
                StreamState::GroupMissing => {
                    obs.exact = false;
                    obs.notes.push(format!(
                        "group {} is missing on {}: its backlog is unknown until the group is created",
                        stream.group.group, stream.group.stream
                    ));
                }
                StreamState::Unreadable(error) => {
                    obs.exact = false;
                    obs.notes.push(format!("{name} could not be read: {error}"));
                }
            }
        }
        for channel in &self.channels {
            match &channel.state {
                ChannelState::Measured {
                    waiting,
                    in_flight,
                    delayed,
                } => {
                    obs.waiting = obs.waiting.saturating_add(*waiting);
                    obs.in_flight = obs.in_flight.saturating_add(*in_flight);
                    obs.delayed = obs.delayed.saturating_add(*delayed);
                }
                ChannelState::Unreadable(error) => {
                    obs.exact = false;
                    obs.notes.push(format!(
                        "channel {} could not be read: {error}",
                        channel.channel
                    ));
                }
            }
        }
        obs
    }

    /// [`Backlog::observation`] as the decision's input.
    pub fn sample(&self) -> Sample {
        Sample::Measured(self.observation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(lag: Lag, pending: u64) -> StreamState {
        StreamState::Measured(GroupBacklog {
            lag,
            pending,
            last_delivered: EntryId::default(),
            reported_lag: match lag {
                Lag::Reported(n) => Some(n),
                _ => None,
            },
            stream_length: 10_000,
            oldest_undelivered_age_ms: None,
        })
    }

    fn crm(states: [StreamState; 4]) -> Backlog {
        let topics = ["customer", "order", "billing", "shipping"];
        Backlog {
            role: Role::Crm,
            streams: topics
                .into_iter()
                .zip(states)
                .map(|(topic, state)| StreamBacklog {
                    group: GroupRef::new(Role::Crm, topic),
                    state,
                })
                .collect(),
            channels: Vec::new(),
        }
    }

    #[test]
    fn sums_lag_and_pending_over_groups() {
        let backlog = crm([
            measured(Lag::Reported(700), 30),
            measured(Lag::Counted(5), 0),
            StreamState::StreamMissing,
            measured(Lag::Reported(0), 1),
        ]);
        let obs = backlog.observation();
        assert_eq!((obs.lag, obs.pending, obs.exact), (705, 31, true));
        assert_eq!(obs.notes.len(), 2, "{:?}", obs.notes);
        assert!(obs.notes[0].contains("counted 5"));
        assert!(obs.notes[1].contains("does not exist yet"));
    }

    #[test]
    fn capped_lag_missing_group_and_errors_make_a_lower_bound() {
        for state in [
            measured(Lag::AtLeast(10_001), 0),
            StreamState::GroupMissing,
            StreamState::Unreadable("WRONGTYPE".into()),
        ] {
            let backlog = crm([
                state.clone(),
                StreamState::StreamMissing,
                StreamState::StreamMissing,
                StreamState::StreamMissing,
            ]);
            assert!(!backlog.observation().exact, "{state:?}");
        }
        let missing = crm([
            StreamState::GroupMissing,
            measured(Lag::Reported(1), 0),
            StreamState::StreamMissing,
            StreamState::StreamMissing,
        ]);
        assert_eq!(
            missing.missing_groups(),
            vec![GroupRef::new(Role::Crm, "customer")]
        );
    }

    #[test]
    fn channels_add_waiting_delayed_and_in_flight() {
        let backlog = Backlog {
            role: Role::Mail,
            streams: Vec::new(),
            channels: vec![ChannelBacklog {
                channel: "mail-service.send".into(),
                state: ChannelState::Measured {
                    waiting: 4,
                    in_flight: 2,
                    delayed: 1,
                },
            }],
        };
        let obs = backlog.observation();
        assert_eq!((obs.waiting, obs.in_flight, obs.delayed), (4, 2, 1));
        assert_eq!(
            obs.describe(),
            "backlog 7 (waiting 4 + delayed 1 + in flight 2)"
        );
    }
}
