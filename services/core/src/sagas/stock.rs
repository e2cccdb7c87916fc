//! The inventory's saga: reserve the cart items of a new order, give them
//! back when the order is deleted.
//!
//! Reserving is all or nothing: every cart item (repeats count) must be in
//! stock, then every inventory involved is decremented in one atomic batch
//! marked `reserve:<order>`; otherwise nothing is written and the verdict
//! is OUT_OF_STOCK. The restore adds back, per inventory, exactly what the
//! reservation took (read from the view's record of `reserve:<order>`, not
//! from the cart), once, marked `restore:<order>`. Handling the same order
//! event again finds those marks and writes nothing.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::causation;
use crate::entity::{Cart, Entity, Inventory, Order};
use crate::error::DomainError;
use crate::event::{EventAction, NewEvent, RecordedEvent};
use crate::ids;
use crate::kind::Topic;
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

/// The topics the inventory service's view must fold for this saga.
pub const STOCK_TOPICS: &[Topic] = &[Topic::Inventory, Topic::Order, Topic::Cart];

/// What the inventory does about one order event.
#[derive(Debug, Clone, PartialEq)]
pub struct StockDecision {
    pub order_id: String,
    /// Inventory updates to append (one atomic batch).
    pub events: Vec<NewEvent>,
    /// The verdict to send to the order service once the events are stored
    /// (`order-service.set_status`, see [`StockDecision::set_status_request`]);
    /// `None`: nothing to tell.
    pub verdict: Option<OrderStatus>,
}

impl StockDecision {
    fn nothing(order_id: &str) -> StockDecision {
        StockDecision {
            order_id: order_id.to_string(),
            events: Vec::new(),
            verdict: None,
        }
    }

    /// The payload of `order-service.set_status`: `{entity_id, status}`.
    pub fn set_status_request(&self) -> Option<Value> {
        let status = self.verdict?;
        Some(json!({"entity_id": self.order_id, "status": status}))
    }
}

/// Dispatches an `order` event: created → reserve, deleted → restore,
/// anything else → nothing.
pub fn decide_stock(view: &View, event: &RecordedEvent) -> Result<StockDecision, DomainError> {
    let Some(order) = event.entity::<Order>() else {
        return Ok(StockDecision::nothing(&event.entity_id));
    };
    match event.action {
        EventAction::EntityCreated => decide_reservation(view, &order),
        EventAction::EntityDeleted => decide_restoration(view, &order),
        EventAction::EntityUpdated | EventAction::MailSent => {
            Ok(StockDecision::nothing(&order.entity_id))
        }
    }
}

/// Reserves the cart items of a newly created order (`order` is the
/// created event's data).
pub fn decide_reservation(view: &View, order: &Order) -> Result<StockDecision, DomainError> {
    view.require(STOCK_TOPICS)?;
    let order_id = order.entity_id.as_str();
    let cause = causation::reserve(order_id);
    if view.has_seen(Topic::Inventory, &cause) {
        // Done before; say it again in case the verdict was lost (the order
        // service treats a repeated verdict as a no-op).
        return Ok(StockDecision {
            order_id: order_id.to_string(),
            events: Vec::new(),
            verdict: Some(OrderStatus::InStock),
        });
    }
    match view.get::<Order>(order_id) {
        // Deleted before we got to it: nothing to reserve, nobody to tell.
        None => return Ok(StockDecision::nothing(order_id)),
        // The verdict was given and applied already (OUT_OF_STOCK).
        Some(current) if current.status != OrderStatus::Created => {
            return Ok(StockDecision::nothing(order_id));
        }
        Some(_) => {}
    }
    let out_of_stock = StockDecision {
        order_id: order_id.to_string(),
        events: Vec::new(),
        verdict: Some(OrderStatus::OutOfStock),
    };
    let Some(cart) = view.get::<Cart>(&order.cart_id) else {
        return Ok(out_of_stock);
    };
    let mut events = Vec::new();
    for (product_id, wanted) in lookup::pieces(&cart.product_ids) {
        let Some(inventory) = lookup::inventory_of_product(view, product_id) else {
            return Ok(out_of_stock);
        };
        if inventory.amount < wanted {
            return Ok(out_of_stock);
        }
        events.push(inventory_event(
            view,
            inventory,
            inventory.amount - wanted,
            &cause,
        ));
    }
    Ok(StockDecision {
        order_id: order_id.to_string(),
        events,
        verdict: Some(OrderStatus::InStock),
    })
}

/// Gives back what was reserved for a deleted order (`order` is the
/// deleted event's data). Inventories deleted since are skipped.
pub fn decide_restoration(view: &View, order: &Order) -> Result<StockDecision, DomainError> {
    view.require(STOCK_TOPICS)?;
    let order_id = order.entity_id.as_str();
    let reserved = causation::reserve(order_id);
    let cause = causation::restore(order_id);
    if !view.has_seen(Topic::Inventory, &reserved) || view.has_seen(Topic::Inventory, &cause) {
        return Ok(StockDecision::nothing(order_id));
    }
    let mut taken: BTreeMap<&str, i64> = BTreeMap::new();
    for change in view.caused_by(Topic::Inventory, &reserved) {
        if let (Some(Entity::Inventory(before)), Some(Entity::Inventory(after))) =
            (&change.before, &change.after)
        {
            *taken.entry(change.entity_id.as_str()).or_insert(0) += before.amount - after.amount;
        }
    }
    let events = taken
        .into_iter()
        .filter_map(|(inventory_id, amount)| {
            let inventory = view.get::<Inventory>(inventory_id)?;
            Some(inventory_event(
                view,
                inventory,
                inventory.amount + amount,
                &cause,
            ))
        })
        .collect();
    Ok(StockDecision {
        order_id: order_id.to_string(),
        events,
        verdict: None,
    })
}

fn inventory_event(view: &View, inventory: &Inventory, amount: i64, cause: &str) -> NewEvent {
    let updated = Entity::Inventory(Inventory {
        amount,
        ..inventory.clone()
    });
    NewEvent::entity(
        EventAction::EntityUpdated,
        &updated,
        ids::saga_event_id(cause, Topic::Inventory.name(), &inventory.entity_id),
        view.version(Topic::Inventory, &inventory.entity_id),
        Some(cause.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::Shop;

    fn amount(shop: &Shop, id: &str) -> i64 {
        shop.view.get::<Inventory>(id).unwrap().amount
    }

    /// Standard shop (5 teas, 1 cup; cart1 = 2 teas + 1 cup) with order o1.
    fn ordered() -> (Shop, Order) {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::Created);
        let order = shop.view.get::<Order>("o1").unwrap().clone();
        (shop, order)
    }

    #[test]
    fn reserves_every_item_in_one_batch() {
        let (mut shop, order) = ordered();
        let d = decide_reservation(&shop.view, &order).unwrap();
        assert_eq!(d.verdict, Some(OrderStatus::InStock));
        assert_eq!(d.events.len(), 2);
        for e in &d.events {
            assert_eq!(e.causation_id.as_deref(), Some("reserve:o1"));
            assert_eq!(e.expected_version, Some(1));
        }
        shop.append(&d.events).unwrap();
        assert_eq!(amount(&shop, "inv-tea"), 3);
        assert_eq!(amount(&shop, "inv-cup"), 0);
        assert_eq!(
            d.set_status_request(),
            Some(json!({"entity_id": "o1", "status": "IN_STOCK"}))
        );
    }

    #[test]
    fn reserves_nothing_when_one_item_is_missing() {
        let (mut shop, order) = ordered();
        shop.inventory("inv-cup", "cup", 0);
        let d = decide_reservation(&shop.view, &order).unwrap();
        assert_eq!(d.verdict, Some(OrderStatus::OutOfStock));
        assert!(d.events.is_empty());
        assert_eq!(amount(&shop, "inv-tea"), 5);
    }

    #[test]
    fn repeats_count_and_a_missing_inventory_is_out_of_stock() {
        let mut shop = Shop::standard();
        shop.product("mug", 1.0)
            .cart("cart2", "ann", &["tea", "tea", "tea", "tea", "tea", "tea"])
            .cart("cart3", "ann", &["mug"])
            .order("o2", "cart2", OrderStatus::Created)
            .order("o3", "cart3", OrderStatus::Created);
        for id in ["o2", "o3"] {
            let order = shop.view.get::<Order>(id).unwrap().clone();
            let d = decide_reservation(&shop.view, &order).unwrap();
            assert_eq!(d.verdict, Some(OrderStatus::OutOfStock), "{id}");
            assert!(d.events.is_empty());
        }
    }

    #[test]
    fn a_redelivered_order_event_reserves_once() {
        let (mut shop, order) = ordered();
        let d = decide_reservation(&shop.view, &order).unwrap();
        shop.append(&d.events).unwrap();
        let again = decide_reservation(&shop.view, &order).unwrap();
        assert!(again.events.is_empty());
        assert_eq!(again.verdict, Some(OrderStatus::InStock));
        // Appending the first decision again stores nothing (same event ids).
        assert_eq!(shop.append(&d.events), Ok(0));
        assert_eq!(amount(&shop, "inv-tea"), 3);
    }

    #[test]
    fn two_orders_cannot_both_take_the_last_cup() {
        let (mut shop, first) = ordered();
        shop.cart("cart2", "ann", &["cup"])
            .order("o2", "cart2", OrderStatus::Created);
        let second = shop.view.get::<Order>("o2").unwrap().clone();
        // Both decide on the same view; the second append loses the race.
        let a = decide_reservation(&shop.view, &first).unwrap();
        let b = decide_reservation(&shop.view, &second).unwrap();
        shop.append(&a.events).unwrap();
        assert!(shop.append(&b.events).is_err());
        // Decided again on the caught-up view: out of stock.
        let b = decide_reservation(&shop.view, &second).unwrap();
        assert_eq!(b.verdict, Some(OrderStatus::OutOfStock));
        assert!(b.events.is_empty());
    }

    #[test]
    fn nothing_for_orders_gone_or_already_decided() {
        let (mut shop, order) = ordered();
        shop.order("o1", "cart1", OrderStatus::OutOfStock);
        let d = decide_reservation(&shop.view, &order).unwrap();
        assert_eq!(d, StockDecision::nothing("o1"));
        shop.delete(Entity::Order(order.clone()));
        assert_eq!(
            decide_reservation(&shop.view, &order).unwrap(),
            StockDecision::nothing("o1")
        );
    }

    #[test]
    fn restores_what_was_reserved_exactly_once() {
        let (mut shop, order) = ordered();
        let d = decide_reservation(&shop.view, &order).unwrap();
        shop.append(&d.events).unwrap();
        // Someone restocks teas by hand in between: the restore adds to that.
        shop.inventory("inv-tea", "tea", 10);
        shop.delete(Entity::Order(order.clone()));
        let r = decide_restoration(&shop.view, &order).unwrap();
        assert_eq!(r.events.len(), 2);
        assert!(
            r.events
                .iter()
                .all(|e| e.causation_id.as_deref() == Some("restore:o1"))
        );
        assert_eq!(r.verdict, None);
        shop.append(&r.events).unwrap();
        assert_eq!(amount(&shop, "inv-tea"), 12);
        assert_eq!(amount(&shop, "inv-cup"), 1);
        // Redelivered: nothing more.
        assert!(
            decide_restoration(&shop.view, &order)
                .unwrap()
                .events
                .is_empty()
        );
        assert_eq!(shop.append(&r.events), Ok(0));
        assert_eq!(amount(&shop, "inv-tea"), 12);
    }

    #[test]
    fn restores_nothing_when_nothing_was_reserved() {
        let (mut shop, order) = ordered();
        shop.inventory("inv-cup", "cup", 0);
        let d = decide_reservation(&shop.view, &order).unwrap();
        assert!(d.events.is_empty());
        shop.delete(Entity::Order(order.clone()));
        let r = decide_restoration(&shop.view, &order).unwrap();
        assert!(r.events.is_empty());
        assert_eq!(amount(&shop, "inv-tea"), 5);
    }

    #[test]
    fn restore_skips_inventories_deleted_since() {
        let (mut shop, order) = ordered();
        let d = decide_reservation(&shop.view, &order).unwrap();
        shop.append(&d.events).unwrap();
        let cup = shop
            .view
            .entity(crate::EntityKind::Inventory, "inv-cup")
            .unwrap()
            .clone();
        shop.delete(cup);
        let r = decide_restoration(&shop.view, &order).unwrap();
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].entity_id, "inv-tea");
    }

    #[test]
    fn dispatches_order_events() {
        let (mut shop, _) = ordered();
        let created = shop.log().last().unwrap().clone();
        let d = decide_stock(&shop.view, &created).unwrap();
        assert_eq!(d.verdict, Some(OrderStatus::InStock));
        shop.append(&d.events).unwrap();
        shop.order("o1", "cart1", OrderStatus::InStock);
        let updated = shop.last().clone();
        assert_eq!(
            decide_stock(&shop.view, &updated).unwrap(),
            StockDecision::nothing("o1")
        );
        let order = shop.view.get::<Order>("o1").unwrap().clone();
        shop.delete(Entity::Order(order));
        let deleted = shop.last().clone();
        assert_eq!(decide_stock(&shop.view, &deleted).unwrap().events.len(), 2);
    }

    #[test]
    fn needs_its_topics() {
        let view = View::new(&[Topic::Inventory]);
        let order = Order {
            entity_id: "o".into(),
            cart_id: "c".into(),
            status: OrderStatus::Created,
        };
        assert!(matches!(
            decide_reservation(&view, &order),
            Err(DomainError::ViewIncomplete(_))
        ));
    }
}
