//! Test fixture: an in-memory event store with the real store's append
//! rules (event-id dedup, expected versions, per-entity versions, atomic
//! batches), folding everything it stores into a [`View`] of every topic.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::entity::Entity;
use crate::event::{EventAction, NewEvent, RecordedEvent};
use crate::kind::Topic;
use crate::status::OrderStatus;
use crate::view::View;

#[derive(Debug)]
pub(crate) struct Shop {
    pub(crate) view: View,
    log: Vec<RecordedEvent>,
    event_ids: HashSet<String>,
    versions: BTreeMap<(Topic, String), u64>,
    next_entry: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct VersionConflict;

impl Shop {
    pub(crate) fn new() -> Shop {
        Shop {
            view: View::new(&Topic::ALL),
            log: Vec::new(),
            event_ids: HashSet::new(),
            versions: BTreeMap::new(),
            next_entry: 1,
        }
    }

    /// Appends a batch all-or-nothing, as the event store does; returns how
    /// many events were new (duplicates by event id are skipped).
    pub(crate) fn append(&mut self, events: &[NewEvent]) -> Result<usize, VersionConflict> {
        let mut staged = self.versions.clone();
        let mut fresh = Vec::new();
        let mut seen = HashSet::new();
        for e in events {
            if self.event_ids.contains(&e.event_id) || !seen.insert(e.event_id.clone()) {
                continue;
            }
            let key = (e.topic, e.entity_id.clone());
            let current = staged.get(&key).copied().unwrap_or(0);
            if e.expected_version
                .is_some_and(|expected| expected != current)
            {
                return Err(VersionConflict);
            }
            let version = if e.entity_id.is_empty() {
                0
            } else {
                current + 1
            };
            if version > 0 {
                staged.insert(key, version);
            }
            fresh.push((e.clone(), version));
        }
        self.versions = staged;
        let count = fresh.len();
        for (e, version) in fresh {
            let recorded = RecordedEvent {
                topic: e.topic,
                entry_id: format!("{}-0", self.next_entry),
                event_id: e.event_id.clone(),
                action: e.action,
                entity_id: e.entity_id.clone(),
                data: e.data.clone(),
                causation_id: e.causation_id.clone(),
                version,
            };
            self.next_entry += 1;
            self.event_ids.insert(e.event_id);
            self.view.apply(&recorded).expect("fixture events fold");
            self.log.push(recorded);
        }
        Ok(count)
    }

    /// Every event stored so far, in order.
    pub(crate) fn log(&self) -> &[RecordedEvent] {
        &self.log
    }

    pub(crate) fn last(&self) -> &RecordedEvent {
        self.log.last().expect("an event was stored")
    }

    fn put(&mut self, entity: Entity) -> &mut Shop {
        let version = self.view.version(entity.kind().topic(), entity.entity_id());
        let action = if version == 0 {
            EventAction::EntityCreated
        } else {
            EventAction::EntityUpdated
        };
        let event_id = format!(
            "fixture-{}-{}-{}",
            entity.kind(),
            entity.entity_id(),
            version + 1
        );
        let event = NewEvent::entity(action, &entity, event_id, version, None);
        self.append(&[event]).expect("fixture append");
        self
    }

    pub(crate) fn delete(&mut self, entity: Entity) -> &mut Shop {
        let version = self.view.version(entity.kind().topic(), entity.entity_id());
        let event_id = format!(
            "fixture-{}-{}-{}",
            entity.kind(),
            entity.entity_id(),
            version + 1
        );
        let event = NewEvent::entity(EventAction::EntityDeleted, &entity, event_id, version, None);
        self.append(&[event]).expect("fixture append");
        self
    }

    pub(crate) fn customer(&mut self, id: &str, name: &str) -> &mut Shop {
        self.put(entity(
            crate::EntityKind::Customer,
            json!({"entity_id": id, "name": name, "email": format!("{}@example.org", name.to_lowercase())}),
        ))
    }

    pub(crate) fn product(&mut self, id: &str, price: f64) -> &mut Shop {
        self.put(entity(
            crate::EntityKind::Product,
            json!({"entity_id": id, "name": format!("Product {id}"), "price": price}),
        ))
    }

    pub(crate) fn inventory(&mut self, id: &str, product_id: &str, amount: i64) -> &mut Shop {
        self.put(entity(
            crate::EntityKind::Inventory,
            json!({"entity_id": id, "product_id": product_id, "amount": amount}),
        ))
    }

    pub(crate) fn cart(&mut self, id: &str, customer_id: &str, product_ids: &[&str]) -> &mut Shop {
        self.put(entity(
            crate::EntityKind::Cart,
            json!({"entity_id": id, "customer_id": customer_id, "product_ids": product_ids}),
        ))
    }

    pub(crate) fn order(&mut self, id: &str, cart_id: &str, status: OrderStatus) -> &mut Shop {
        self.put(entity(
            crate::EntityKind::Order,
            json!({"entity_id": id, "cart_id": cart_id, "status": status}),
        ))
    }

    pub(crate) fn billing(&mut self, id: &str, order_id: &str, amount: f64) -> &mut Shop {
        self.put(entity(
            crate::EntityKind::Billing,
            json!({"entity_id": id, "order_id": order_id, "amount": amount}),
        ))
    }

    pub(crate) fn shipping(&mut self, id: &str, order_id: &str, delivered: i64) -> &mut Shop {
        self.put(entity(
            crate::EntityKind::Shipping,
            json!({"entity_id": id, "order_id": order_id, "delivered": delivered}),
        ))
    }

    /// A small shop: customer `ann`, products `tea` (2.5) and `cup` (4)
    /// with 5 and 1 pieces in stock, Ann's cart `cart1` with two teas and a
    /// cup.
    pub(crate) fn standard() -> Shop {
        let mut shop = Shop::new();
        shop.customer("ann", "Ann")
            .product("tea", 2.5)
            .product("cup", 4.0)
            .inventory("inv-tea", "tea", 5)
            .inventory("inv-cup", "cup", 1)
            .cart("cart1", "ann", &["tea", "cup", "tea"]);
        shop
    }
}

/// Reads an entity document (test data is always valid).
pub(crate) fn entity(kind: crate::EntityKind, data: Value) -> Entity {
    Entity::from_json(kind, &data).expect("valid fixture entity")
}
