//! The event store and the queue export every consumer's backlog to
//! Prometheus, measured as the operator's autoscaler measures it
//! ([`ordershop_scaling::measure_all`]: one pipelined round trip for every
//! group and channel of the deployment, through `ordershop_topology`'s key
//! names), plus the dead letters of each topic and channel. The event store
//! exports the stream parts (group lag, pending, dead letters per topic),
//! the queue the channel parts (waiting, in flight, delayed, dead).

use std::time::Duration;

use ordershop_metrics::families::{
    GROUP_LAG, GROUP_PENDING, QUEUE_MESSAGES, STREAM_DEAD_LETTERS, channel_state, group, topic,
};
use ordershop_redis::Redis;
use ordershop_scaling::{ChannelState, Kinds, MeasureOptions, StreamState, measure_all};
use ordershop_topology::Role;
use tokio_util::sync::CancellationToken;

use crate::dead_letters::{self, DeadCount};

/// How often: a scrape every 15–30 s sees a value at most this old.
const EVERY: Duration = Duration::from_secs(5);

/// Measures every [`EVERY`] until `shutdown`; a failed measurement leaves
/// the last values and is tried again.
pub(crate) async fn run(redis: Redis, role: Role, shutdown: CancellationToken) {
    let mut conn = redis.conn();
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = measure(&mut conn, role).await {
            tracing::debug!(error = %err, "backlog metrics not measured this time");
        }
    }
}

async fn measure(conn: &mut redis::aio::ConnectionManager, role: Role) -> anyhow::Result<()> {
    let consumers: Vec<Role> = Role::ALL.into_iter().filter(|r| r.is_consumer()).collect();
    // Only the kind this role reports: its Redis user reads no other keys.
    let options = MeasureOptions {
        kinds: if role == Role::EventStore {
            Kinds::Streams
        } else {
            Kinds::Channels
        },
        ..MeasureOptions::default()
    };
    let measurement = measure_all(conn, &consumers, &options).await?;
    for backlog in &measurement.backlogs {
        if role == Role::EventStore {
            for stream in &backlog.streams {
                if let StreamState::Measured(measured) = &stream.state {
                    let labels = group(stream.group.topic, stream.group.group);
                    GROUP_LAG
                        .get_or_create(&labels)
                        .set(measured.lag.value() as i64);
                    GROUP_PENDING
                        .get_or_create(&labels)
                        .set(measured.pending as i64);
                }
            }
        } else {
            for channel in &backlog.channels {
                if let ChannelState::Measured {
                    waiting,
                    in_flight,
                    delayed,
                } = channel.state
                {
                    for (state, count) in [
                        ("waiting", waiting),
                        ("in_flight", in_flight),
                        ("delayed", delayed),
                    ] {
                        QUEUE_MESSAGES
                            .get_or_create(&channel_state(&channel.channel, state))
                            .set(count as i64);
                    }
                }
            }
        }
    }
    // Each role reads only its own kind of dead letters.
    if role == Role::EventStore {
        for DeadCount { name, dead, .. } in dead_letters::topic_counts(conn).await? {
            STREAM_DEAD_LETTERS
                .get_or_create(&topic(&name))
                .set(dead as i64);
        }
    } else {
        for DeadCount { name, dead, .. } in dead_letters::channel_counts(conn).await? {
            QUEUE_MESSAGES
                .get_or_create(&channel_state(&name, "dead"))
                .set(dead as i64);
        }
    }
    Ok(())
}
