//! The metric families of OrderShop, each registered when first used. A
//! family shows in the text only once it has a series, so each role creates
//! its series at start, at zero ([`preset`]): `rate()` then starts from 0,
//! and a dashboard finds every series of a role before anything happened.
//!
//! | family (`ordershop_` prefix) | labels | set by |
//! |---|---|---|
//! | `grpc_server_handled_total` | method, code | every gRPC server ([`crate::GrpcMetricsLayer`]) |
//! | `grpc_server_handling_seconds` | method | time to the response headers (for a stream: to its start) |
//! | `http_requests_total` | route, method, status | the API gateway |
//! | `http_request_duration_seconds` | route, method | time to the response headers |
//! | `events_appended_total` | topic | event store: events written |
//! | `append_duration_seconds` | topic | event store: one atomic append, Redis round trip included |
//! | `append_conflicts_total` | topic | event store: appends refused on an expected version |
//! | `append_duplicates_total` | topic | event store: event ids already written (a retried publish) |
//! | `stream_group_lag` | topic, group | event store: entries not yet delivered to a group |
//! | `stream_group_pending` | topic, group | event store: delivered, not acknowledged |
//! | `stream_dead_letters` | topic | event store: entries given up on |
//! | `queue_messages` | channel, state | queue: `waiting`, `in_flight`, `delayed`, `dead` |
//! | `queue_redeliveries_total` | channel | queue: leases of a message after its first |
//! | `queue_retries_total` | channel | queue: refusals that will be retried |
//! | `queue_dead_lettered_total` | channel, cause | queue: `refused` for good, or `poison` (leased too often) |
//! | `events_handled_total` | role, topic, outcome | services: `done`, `retry` (a saga trigger not yet applicable, or a dependency down), or `refused` (for good: dead-lettered) |
//! | `event_handling_lag_seconds` | role, topic | services: from an event's append to its handling (the read model's apply lag, a saga's lag) |

use std::sync::LazyLock;

use ordershop_topology::{Role, TOPICS};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
};

use crate::register;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodCodeLabels {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub topic: String,
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelStateLabels {
    pub channel: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    pub channel: String,
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    pub role: String,
    pub topic: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    pub role: String,
    pub topic: String,
}

/// A topic's label: its name if OrderShop has it, else `other`.
pub fn topic(name: &str) -> TopicLabels {
    TopicLabels {
        topic: known_topic(name),
    }
}

fn known_topic(name: &str) -> String {
    if TOPICS.contains(&name) {
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

/// A channel's label: its name if a role serves it, else `other`.
pub fn channel(name: &str) -> ChannelLabels {
    ChannelLabels {
        channel: known_channel(name),
    }
}

fn known_channel(name: &str) -> String {
    if Role::serves_channel(name) {
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

/// Seconds from 0.5 ms to about 16 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Seconds from 1 ms to about 65 s, doubling: lags.
fn lag() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub static GRPC_HANDLED: LazyLock<Family<MethodCodeLabels, Counter>> = LazyLock::new(|| {
    register(
        "grpc_server_handled",
        "gRPC calls answered, by method and status code",
        Family::default(),
    )
});

pub static GRPC_SECONDS: LazyLock<Family<MethodLabels, Histogram>> = LazyLock::new(|| {
    register(
        "grpc_server_handling_seconds",
        "Time to a gRPC call's response headers (a stream: to its start)",
        Family::new_with_constructor(latency as fn() -> Histogram),
    )
});

pub static HTTP_REQUESTS: LazyLock<Family<RouteStatusLabels, Counter>> = LazyLock::new(|| {
    register(
        "http_requests",
        "HTTP requests answered by the API gateway, by route template, method and status",
        Family::default(),
    )
});

pub static HTTP_SECONDS: LazyLock<Family<RouteLabels, Histogram>> = LazyLock::new(|| {
    register(
        "http_request_duration_seconds",
        "Time to an HTTP response's headers (a streamed list: to its first bytes)",
        Family::new_with_constructor(latency as fn() -> Histogram),
    )
});

pub static EVENTS_APPENDED: LazyLock<Family<TopicLabels, Counter>> = LazyLock::new(|| {
    register(
        "events_appended",
        "Events written to a topic's stream",
        Family::default(),
    )
});

pub static APPEND_SECONDS: LazyLock<Family<TopicLabels, Histogram>> = LazyLock::new(|| {
    register(
        "append_duration_seconds",
        "One atomic append (publish) to a topic, Redis round trip included",
        Family::new_with_constructor(latency as fn() -> Histogram),
    )
});

pub static APPEND_CONFLICTS: LazyLock<Family<TopicLabels, Counter>> = LazyLock::new(|| {
    register(
        "append_conflicts",
        "Appends refused because an entity's version was not the expected one",
        Family::default(),
    )
});

pub static APPEND_DUPLICATES: LazyLock<Family<TopicLabels, Counter>> = LazyLock::new(|| {
    register(
        "append_duplicates",
        "Appends whose event ids were written before (a retried publish, answered with the first positions)",
        Family::default(),
    )
});

pub static EVENTS_TRIMMED: LazyLock<Family<TopicLabels, Counter>> = LazyLock::new(|| {
    register(
        "events_trimmed",
        "Entries removed from a topic's stream by retention, behind every reader that needed them",
        Family::default(),
    )
});

pub static GROUP_LAG: LazyLock<Family<GroupLabels, Gauge>> = LazyLock::new(|| {
    register(
        "stream_group_lag",
        "Entries of a topic not yet delivered to a consumer group",
        Family::default(),
    )
});

pub static GROUP_PENDING: LazyLock<Family<GroupLabels, Gauge>> = LazyLock::new(|| {
    register(
        "stream_group_pending",
        "Entries delivered to a consumer group and not acknowledged",
        Family::default(),
    )
});

pub static STREAM_DEAD_LETTERS: LazyLock<Family<TopicLabels, Gauge>> = LazyLock::new(|| {
    register(
        "stream_dead_letters",
        "Entries of a topic that a consumer group gave up on",
        Family::default(),
    )
});

pub static QUEUE_MESSAGES: LazyLock<Family<ChannelStateLabels, Gauge>> = LazyLock::new(|| {
    register(
        "queue_messages",
        "Messages of a queue channel by state: waiting, in_flight, delayed (a retry later), dead",
        Family::default(),
    )
});

pub static QUEUE_REDELIVERIES: LazyLock<Family<ChannelLabels, Counter>> = LazyLock::new(|| {
    register(
        "queue_redeliveries",
        "Leases of a message after its first (its consumer refused it, crashed or ran out of time)",
        Family::default(),
    )
});

pub static QUEUE_RETRIES: LazyLock<Family<ChannelLabels, Counter>> = LazyLock::new(|| {
    register(
        "queue_retries",
        "Refusals of a message that will be retried",
        Family::default(),
    )
});

pub static QUEUE_DEAD_LETTERED: LazyLock<Family<DeadLetterLabels, Counter>> = LazyLock::new(|| {
    register(
        "queue_dead_lettered",
        "Messages dead-lettered: refused for good, or poison (leased too often without an answer)",
        Family::default(),
    )
});

pub static EVENTS_HANDLED: LazyLock<Family<HandledLabels, Counter>> = LazyLock::new(|| {
    register(
        "events_handled",
        "Events a service's saga or the read model handled: done, retry (not applicable yet, or a dependency down), or refused (for good: dead-lettered)",
        Family::default(),
    )
});

pub static HANDLING_LAG: LazyLock<Family<HandlerLabels, Histogram>> = LazyLock::new(|| {
    register(
        "event_handling_lag_seconds",
        "From an event's append to its handling by a service (the read model's apply lag, a saga's lag)",
        Family::new_with_constructor(lag as fn() -> Histogram),
    )
});

/// Creates, at zero, the series `role` will count: the event store's per
/// topic, the queue's per channel, a consumer's per topic it handles.
pub fn preset(role: Role) {
    match role {
        Role::EventStore => {
            for name in TOPICS {
                let labels = topic(name);
                drop(EVENTS_APPENDED.get_or_create(&labels));
                drop(APPEND_CONFLICTS.get_or_create(&labels));
                drop(APPEND_DUPLICATES.get_or_create(&labels));
                drop(APPEND_SECONDS.get_or_create(&labels));
                drop(EVENTS_TRIMMED.get_or_create(&labels));
            }
        }
        Role::MessageQueue => {
            for served in Role::ALL.iter().flat_map(|r| r.channels()) {
                drop(QUEUE_REDELIVERIES.get_or_create(&channel(&served)));
                drop(QUEUE_RETRIES.get_or_create(&channel(&served)));
                for cause in ["refused", "poison"] {
                    drop(QUEUE_DEAD_LETTERED.get_or_create(&dead_lettered(&served, cause)));
                }
            }
        }
        Role::ReadModel => {
            for name in TOPICS {
                drop(EVENTS_HANDLED.get_or_create(&handled(role.slug(), name, "done")));
                drop(HANDLING_LAG.get_or_create(&handler(role.slug(), name)));
            }
        }
        _ => {
            for subscription in role.subscriptions() {
                for outcome in ["done", "retry", "refused"] {
                    drop(EVENTS_HANDLED.get_or_create(&handled(
                        role.slug(),
                        subscription.topic,
                        outcome,
                    )));
                }
                drop(HANDLING_LAG.get_or_create(&handler(role.slug(), subscription.topic)));
            }
        }
    }
}

/// Registers every family (one without series is not in the text).
pub(crate) fn register_all() {
    LazyLock::force(&GRPC_HANDLED);
    LazyLock::force(&GRPC_SECONDS);
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_SECONDS);
    LazyLock::force(&EVENTS_APPENDED);
    LazyLock::force(&APPEND_SECONDS);
    LazyLock::force(&APPEND_CONFLICTS);
    LazyLock::force(&APPEND_DUPLICATES);
    LazyLock::force(&EVENTS_TRIMMED);
    LazyLock::force(&GROUP_LAG);
    LazyLock::force(&GROUP_PENDING);
    LazyLock::force(&STREAM_DEAD_LETTERS);
    LazyLock::force(&QUEUE_MESSAGES);
    LazyLock::force(&QUEUE_REDELIVERIES);
    LazyLock::force(&QUEUE_RETRIES);
    LazyLock::force(&QUEUE_DEAD_LETTERED);
    LazyLock::force(&EVENTS_HANDLED);
    LazyLock::force(&HANDLING_LAG);
}

/// Dead letters of `channel` by `cause` (`refused`, `poison`).
pub fn dead_lettered(channel: &str, cause: &str) -> DeadLetterLabels {
    DeadLetterLabels {
        channel: known_channel(channel),
        cause: cause.to_owned(),
    }
}

/// `channel`'s messages in `state`.
pub fn channel_state(channel: &str, state: &str) -> ChannelStateLabels {
    ChannelStateLabels {
        channel: known_channel(channel),
        state: state.to_owned(),
    }
}

/// A consumer group of a topic.
pub fn group(topic: &str, group: &str) -> GroupLabels {
    GroupLabels {
        topic: known_topic(topic),
        group: group.to_owned(),
    }
}

/// A service's handling of a topic's events.
pub fn handler(role: &str, topic: &str) -> HandlerLabels {
    HandlerLabels {
        role: role.to_owned(),
        topic: known_topic(topic),
    }
}

/// A service's handling of one event, and how it ended.
pub fn handled(role: &str, topic: &str, outcome: &str) -> HandledLabels {
    HandledLabels {
        role: role.to_owned(),
        topic: known_topic(topic),
        outcome: outcome.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_outside_the_topology_are_other() {
        assert_eq!(topic("billing").topic, "billing");
        assert_eq!(topic("billing\nfake 1").topic, "other");
        assert_eq!(channel("mail-service.send").channel, "mail-service.send");
        assert_eq!(channel("anything.at_all").channel, "other");
    }

    #[test]
    fn a_role_shows_its_series_at_zero_before_anything_happened() {
        preset(Role::EventStore);
        preset(Role::MessageQueue);
        preset(Role::Crm);
        let text = crate::encode();
        for series in [
            r#"ordershop_append_conflicts_total{topic="billing"} 0"#,
            r#"ordershop_events_appended_total{topic="mail"} 0"#,
            r#"ordershop_queue_dead_lettered_total{channel="mail-service.send",cause="poison"} 0"#,
            r#"ordershop_events_handled_total{role="crm",topic="shipping",outcome="retry"} 0"#,
            r#"ordershop_event_handling_lag_seconds_count{role="crm",topic="customer"} 0"#,
        ] {
            assert!(text.contains(series), "{series}:\n{text}");
        }
    }
}
