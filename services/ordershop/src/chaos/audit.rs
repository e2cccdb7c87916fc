//! After the faults: what the shop's Redis holds, read straight from the
//! event streams (the source of truth, not the read model), and whether it
//! is what the accepted requests promised.

use std::collections::{HashMap, HashSet};

use ordershop_core::{EventAction, OrderStatus, Topic};
use ordershop_topology::StreamKeys;
use redis::{
    AsyncCommands,
    aio::MultiplexedConnection,
    streams::{StreamId, StreamRangeReply},
};
use serde::Serialize;

use crate::dead_letters::{self, DeadCount};

/// Stream entries read per XRANGE.
const PAGE: usize = 1_000;

/// Violations of one kind listed by id; the rest are only counted.
const EXAMPLES: usize = 5;

/// One topic's stream, as checked.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct TopicAudit {
    pub(super) topic: &'static str,
    pub(super) events: u64,
    pub(super) entities: u64,
    /// Entries whose version is not the entity's previous one plus one.
    pub(super) out_of_order: Vec<String>,
    /// Event ids stored more than once.
    pub(super) duplicate_events: Vec<String>,
    /// Entities whose version in the versions hash is not their last entry's.
    pub(super) version_mismatches: Vec<String>,
}

impl TopicAudit {
    pub(super) fn intact(&self) -> bool {
        self.out_of_order.is_empty()
            && self.duplicate_events.is_empty()
            && self.version_mismatches.is_empty()
    }
}

/// Everything the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Audit {
    pub(super) topics: Vec<TopicAudit>,
    pub(super) orders: u64,
    /// Orders still CREATED: the inventory never decided.
    pub(super) without_verdict: Vec<String>,
    pub(super) billings: u64,
    /// Orders billed more than once: a client's retried write applied twice.
    pub(super) billed_twice: Vec<String>,
    /// Orders with a billing that are not SHIPPED (or DELIVERED).
    pub(super) billed_not_shipped: Vec<String>,
    /// Orders with a billing and not exactly one shipping created.
    pub(super) shipping_count_wrong: Vec<String>,
    /// Orders without a billing that got a shipping.
    pub(super) shipped_unbilled: Vec<String>,
    pub(super) mails: u64,
    /// Idempotency keys of more than one `mail_sent`.
    pub(super) duplicate_mails: Vec<String>,
    pub(super) dead_letters: Vec<DeadCount>,
}

impl Audit {
    /// Whether the sagas' work is all done (what may still be in flight
    /// right after the load stops).
    pub(super) fn settled(&self) -> bool {
        self.without_verdict.is_empty()
            && self.billed_not_shipped.is_empty()
            && self.shipping_count_wrong.is_empty()
    }

    pub(super) fn dead_total(&self) -> u64 {
        self.dead_letters.iter().map(|d| d.dead).sum()
    }
}

/// Reads every topic and checks it.
pub(super) async fn audit(conn: &mut MultiplexedConnection) -> anyhow::Result<Audit> {
    let mut audit = Audit::default();
    let mut orders: HashMap<String, String> = HashMap::new();
    let mut billed: HashMap<String, u64> = HashMap::new();
    let mut shippings: HashMap<String, u64> = HashMap::new();
    let mut mail_keys: HashMap<String, u64> = HashMap::new();
    for topic in Topic::ALL {
        let entries = read_all(conn, topic.name()).await?;
        audit
            .topics
            .push(check_stream(conn, topic.name(), &entries).await?);
        for entry in &entries {
            let Some(event) = Event::parse(entry) else {
                continue;
            };
            match (topic, event.action) {
                (Topic::Order, EventAction::EntityDeleted) => {
                    orders.remove(&event.entity_id);
                }
                (Topic::Order, _) => {
                    if let Some(status) = event.field("status") {
                        orders.insert(event.entity_id.clone(), status);
                    }
                }
                (Topic::Billing, EventAction::EntityCreated) => {
                    if let Some(order) = event.field("order_id") {
                        *billed.entry(order).or_default() += 1;
                    }
                }
                (Topic::Shipping, EventAction::EntityCreated) => {
                    if let Some(order) = event.field("order_id") {
                        *shippings.entry(order).or_default() += 1;
                    }
                }
                (Topic::Mail, EventAction::MailSent) => {
                    let key = event.causation_id.unwrap_or(event.event_id);
                    *mail_keys.entry(key).or_default() += 1;
                }
                _ => {}
            }
        }
    }
    audit.orders = orders.len() as u64;
    audit.billings = billed.values().sum();
    audit.mails = mail_keys.values().sum();
    let shipped = [
        OrderStatus::Shipped.as_str(),
        OrderStatus::Delivered.as_str(),
    ];
    for (order, status) in &orders {
        if status == OrderStatus::Created.as_str() {
            push(&mut audit.without_verdict, order);
        }
        if billed.contains_key(order) && !shipped.contains(&status.as_str()) {
            push(
                &mut audit.billed_not_shipped,
                &format!("{order} ({status})"),
            );
        }
    }
    for (order, billings) in &billed {
        let made = shippings.get(order).copied().unwrap_or(0);
        if *billings > 1 {
            push(
                &mut audit.billed_twice,
                &format!("{order} ({billings} billings)"),
            );
        }
        if made != 1 {
            push(
                &mut audit.shipping_count_wrong,
                &format!("{order} ({made} shippings)"),
            );
        }
    }
    for order in shippings.keys() {
        if !billed.contains_key(order) {
            push(&mut audit.shipped_unbilled, order);
        }
    }
    for (key, count) in &mail_keys {
        if *count > 1 {
            push(&mut audit.duplicate_mails, &format!("{key} ({count})"));
        }
    }
    audit.dead_letters = dead_letters::counts(conn)
        .await?
        .into_iter()
        .filter(|d| d.dead > 0)
        .collect();
    Ok(audit)
}

/// Lists the first few, then counts: `"+N more"` as the last item.
fn push(list: &mut Vec<String>, item: &str) {
    match list.len() {
        n if n < EXAMPLES => list.push(item.to_owned()),
        n if n == EXAMPLES => list.push("+1 more".to_owned()),
        _ => {
            let more = list
                .last()
                .and_then(|last| last.strip_prefix('+'))
                .and_then(|rest| rest.strip_suffix(" more"))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if let Some(last) = list.last_mut() {
                *last = format!("+{} more", more + 1);
            }
        }
    }
}

async fn read_all(conn: &mut MultiplexedConnection, topic: &str) -> anyhow::Result<Vec<StreamId>> {
    let key = StreamKeys::new(topic).stream;
    let mut entries = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let page: StreamRangeReply = conn.xrange_count(&key, &start, "+", PAGE).await?;
        let last = page.ids.len() < PAGE;
        if let Some(entry) = page.ids.last() {
            // Exclusive start: the next page begins after this entry.
            start = format!("({}", entry.id);
        }
        entries.extend(page.ids);
        if last {
            return Ok(entries);
        }
    }
}

/// Per entity, versions 1, 2, 3, ... in stream order with none missing or
/// repeated; each event id once; the versions hash at the last version.
async fn check_stream(
    conn: &mut MultiplexedConnection,
    topic: &'static str,
    entries: &[StreamId],
) -> anyhow::Result<TopicAudit> {
    let mut audit = TopicAudit {
        topic,
        events: entries.len() as u64,
        ..TopicAudit::default()
    };
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut event_ids: HashSet<String> = HashSet::new();
    for entry in entries {
        let event_id: Option<String> = entry.get("event_id");
        if let Some(event_id) = event_id
            && !event_ids.insert(event_id.clone())
        {
            push(&mut audit.duplicate_events, &event_id);
        }
        let entity: Option<String> = entry.get("entity_id");
        let Some(entity) = entity.filter(|e| !e.is_empty()) else {
            continue;
        };
        let version: u64 = entry
            .get::<String>("version")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let previous = versions.insert(entity.clone(), version).unwrap_or(0);
        if version != previous + 1 {
            push(
                &mut audit.out_of_order,
                &format!("{} ({entity} v{version} after v{previous})", entry.id),
            );
        }
    }
    audit.entities = versions.len() as u64;
    let stored: HashMap<String, u64> = conn.hgetall(StreamKeys::new(topic).versions).await?;
    for (entity, last) in &versions {
        if stored.get(entity) != Some(last) {
            push(
                &mut audit.version_mismatches,
                &format!("{entity} (stream v{last}, hash {:?})", stored.get(entity)),
            );
        }
    }
    Ok(audit)
}

/// The fields of an entry the audit reads.
struct Event {
    event_id: String,
    action: EventAction,
    entity_id: String,
    data: serde_json::Value,
    causation_id: Option<String>,
}

impl Event {
    fn parse(entry: &StreamId) -> Option<Event> {
        let action: String = entry.get("event_action")?;
        let data: String = entry.get("event_data").unwrap_or_default();
        Some(Event {
            event_id: entry.get("event_id")?,
            action: action.parse().ok()?,
            entity_id: entry.get("entity_id").unwrap_or_default(),
            data: serde_json::from_str(&data).unwrap_or_default(),
            causation_id: entry.get("causation_id"),
        })
    }

    fn field(&self, name: &str) -> Option<String> {
        self.data.get(name)?.as_str().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use ordershop_testkit::RedisServer;

    use super::*;

    async fn add(conn: &mut MultiplexedConnection, topic: &str, fields: &[(&str, &str)]) {
        let _: String = conn
            .xadd(StreamKeys::new(topic).stream, "*", fields)
            .await
            .unwrap();
    }

    async fn entity(
        conn: &mut MultiplexedConnection,
        topic: &str,
        (event_id, action, entity_id, version): (&str, &str, &str, u64),
        data: serde_json::Value,
    ) {
        let version = version.to_string();
        let data = data.to_string();
        add(
            conn,
            topic,
            &[
                ("event_id", event_id),
                ("event_action", action),
                ("event_data", &data),
                ("entity_id", entity_id),
                ("version", &version),
            ],
        )
        .await;
        let _: () = conn
            .hset(StreamKeys::new(topic).versions, entity_id, &version)
            .await
            .unwrap();
    }

    /// Every kind of damage the audit looks for, written by hand into a
    /// real Redis, is found; a sound shop's streams pass.
    #[tokio::test]
    async fn the_audit_finds_each_kind_of_damage() {
        let redis = RedisServer::start();
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let created = "entity_created";
        let updated = "entity_updated";
        // o1: billed and shipped once — sound.
        entity(
            &mut conn,
            "order",
            ("e1", created, "o1", 1),
            serde_json::json!({"status": "CREATED"}),
        )
        .await;
        entity(
            &mut conn,
            "order",
            ("e2", updated, "o1", 2),
            serde_json::json!({"status": "SHIPPED"}),
        )
        .await;
        entity(
            &mut conn,
            "billing",
            ("e3", created, "b1", 1),
            serde_json::json!({"order_id": "o1"}),
        )
        .await;
        entity(
            &mut conn,
            "shipping",
            ("e4", created, "s1", 1),
            serde_json::json!({"order_id": "o1"}),
        )
        .await;
        let sound = audit(&mut conn).await.unwrap();
        assert!(
            sound.settled() && sound.topics.iter().all(TopicAudit::intact),
            "{sound:#?}"
        );
        assert_eq!(
            (sound.orders, sound.billings, sound.dead_total()),
            (1, 1, 0)
        );

        // o2: no verdict; o3: billed twice, never shipped; a shipping for
        // an order nobody billed; a version skipped; an event stored twice.
        entity(
            &mut conn,
            "order",
            ("e5", created, "o2", 1),
            serde_json::json!({"status": "CREATED"}),
        )
        .await;
        entity(
            &mut conn,
            "order",
            ("e6", created, "o3", 1),
            serde_json::json!({"status": "IN_STOCK"}),
        )
        .await;
        entity(
            &mut conn,
            "billing",
            ("e7", created, "b2", 1),
            serde_json::json!({"order_id": "o3"}),
        )
        .await;
        entity(
            &mut conn,
            "billing",
            ("e8", created, "b3", 1),
            serde_json::json!({"order_id": "o3"}),
        )
        .await;
        entity(
            &mut conn,
            "shipping",
            ("e9", created, "s2", 1),
            serde_json::json!({"order_id": "o9"}),
        )
        .await;
        entity(
            &mut conn,
            "order",
            ("e10", updated, "o1", 4),
            serde_json::json!({"status": "SHIPPED"}),
        )
        .await;
        entity(
            &mut conn,
            "order",
            ("e10", updated, "o2", 2),
            serde_json::json!({"status": "CREATED"}),
        )
        .await;
        for _ in 0..2 {
            add(
                &mut conn,
                "mail",
                &[
                    ("event_id", "m1"),
                    ("event_action", "mail_sent"),
                    ("event_data", "{}"),
                    ("causation_id", "welcome:c1"),
                ],
            )
            .await;
        }
        let _: () = conn
            .lpush("queue:{mail-service.send}:dead", "x")
            .await
            .unwrap();
        let _: () = conn
            .sadd(ordershop_topology::CHANNELS_SET, "mail-service.send")
            .await
            .unwrap();
        let damaged = audit(&mut conn).await.unwrap();
        assert!(!damaged.settled());
        assert_eq!(damaged.without_verdict, ["o2"]);
        assert_eq!(damaged.billed_not_shipped, ["o3 (IN_STOCK)"]);
        assert_eq!(damaged.billed_twice, ["o3 (2 billings)"]);
        assert_eq!(damaged.shipping_count_wrong, ["o3 (0 shippings)"]);
        assert_eq!(damaged.shipped_unbilled, ["o9"]);
        assert_eq!(damaged.duplicate_mails, ["welcome:c1 (2)"]);
        assert_eq!(damaged.dead_total(), 1);
        let order = damaged.topics.iter().find(|t| t.topic == "order").unwrap();
        assert_eq!(order.out_of_order.len(), 1, "{order:#?}");
        assert!(order.out_of_order[0].contains("o1 v4 after v2"));
        assert_eq!(order.duplicate_events, ["e10"]);
        let mail = damaged.topics.iter().find(|t| t.topic == "mail").unwrap();
        assert_eq!(mail.duplicate_events, ["m1"]);
        assert!(
            order.version_mismatches.is_empty(),
            "the hash follows the stream here"
        );
    }

    #[test]
    fn lists_stop_at_a_few_examples_and_count_the_rest() {
        let mut list = Vec::new();
        for n in 0..9 {
            push(&mut list, &n.to_string());
        }
        assert_eq!(list, ["0", "1", "2", "3", "4", "+4 more"]);
    }
}
