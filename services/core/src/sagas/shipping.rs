//! The shipping service's saga: a billing created → a shipping
//! `{order_id, delivered: 0}` for its order.
//!
//! The shipping is marked `ship:<billing>`, so a redelivered billing event
//! creates nothing new. At most one live shipping per order: if the order
//! has one (say a payment was withdrawn and made again), nothing is
//! created; its id is keyed by the order like a client-created shipping's,
//! so the saga and a client racing to create one cannot both succeed. Nothing is shipped for a billing deleted in
//! the meantime, or for an order that is gone or out of stock.

use crate::causation;
use crate::commands::next_keyed_id;
use crate::entity::{Billing, Entity, Order, Shipping};
use crate::error::DomainError;
use crate::event::{EventAction, NewEvent, RecordedEvent};
use crate::ids;
use crate::kind::{EntityKind, Topic};
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

/// The topics the shipping service's view must fold for this saga.
pub const SHIPPING_SAGA_TOPICS: &[Topic] = &[Topic::Shipping, Topic::Order, Topic::Billing];

/// Dispatches a `billing` event: created → maybe a shipping; else nothing.
pub fn decide_shipping_for_event(
    view: &View,
    event: &RecordedEvent,
) -> Result<Option<NewEvent>, DomainError> {
    match (event.action, event.entity::<Billing>()) {
        (EventAction::EntityCreated, Some(billing)) => decide_shipping(view, &billing),
        _ => Ok(None),
    }
}

/// The shipping to create for a newly created billing, if any.
pub fn decide_shipping(view: &View, billing: &Billing) -> Result<Option<NewEvent>, DomainError> {
    view.require(SHIPPING_SAGA_TOPICS)?;
    let cause = causation::ship(&billing.entity_id);
    if view.has_seen(Topic::Shipping, &cause)
        || view.get::<Billing>(&billing.entity_id).is_none()
        || lookup::shipping_of_order(view, &billing.order_id).is_some()
    {
        return Ok(None);
    }
    match view.get::<Order>(&billing.order_id) {
        None => return Ok(None),
        Some(order) if order.status == OrderStatus::OutOfStock => return Ok(None),
        Some(_) => {}
    }
    let shipping_id = next_keyed_id(view, EntityKind::Shipping, &billing.order_id);
    let shipping = Entity::Shipping(Shipping {
        entity_id: shipping_id.clone(),
        order_id: billing.order_id.clone(),
        delivered: 0,
    });
    Ok(Some(NewEvent::entity(
        EventAction::EntityCreated,
        &shipping,
        ids::saga_event_id(&cause, Topic::Shipping.name(), &shipping_id),
        0,
        Some(cause),
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::Shop;

    fn billed(status: OrderStatus) -> (Shop, Billing) {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", status).billing("b1", "o1", 9.0);
        let billing = shop.view.get::<Billing>("b1").unwrap().clone();
        (shop, billing)
    }

    #[test]
    fn a_billing_gets_one_undelivered_shipping() {
        let (mut shop, billing) = billed(OrderStatus::InStock);
        let event = decide_shipping(&shop.view, &billing).unwrap().unwrap();
        assert_eq!(event.action, EventAction::EntityCreated);
        assert_eq!(event.expected_version, Some(0));
        assert_eq!(event.data["order_id"], json!("o1"));
        assert_eq!(event.data["delivered"], json!(0));
        assert_eq!(event.entity_id, ids::keyed_entity_id("shipping", "o1", 0));
        assert_eq!(event.causation_id.as_deref(), Some("ship:b1"));
        shop.append(std::slice::from_ref(&event)).unwrap();
        // Redelivered billing event: nothing new, and the old decision
        // stores nothing twice.
        assert_eq!(decide_shipping(&shop.view, &billing).unwrap(), None);
        assert_eq!(shop.append(&[event]), Ok(0));
    }

    #[test]
    fn the_saga_and_a_client_cannot_both_create_a_shipping() {
        let (mut shop, billing) = billed(OrderStatus::Cleared);
        let saga = decide_shipping(&shop.view, &billing).unwrap().unwrap();
        let client = crate::commands::decide_create(
            EntityKind::Shipping,
            &shop.view,
            "m1",
            &json!({"order_id": "o1"}),
        )
        .unwrap();
        assert_eq!(client.events[0].entity_id, saga.entity_id);
        shop.append(&client.events).unwrap();
        assert!(shop.append(&[saga]).is_err());
        assert_eq!(decide_shipping(&shop.view, &billing).unwrap(), None);
    }

    #[test]
    fn nothing_when_the_order_already_has_a_shipping() {
        let (mut shop, billing) = billed(OrderStatus::Cleared);
        shop.shipping("s0", "o1", 0);
        assert_eq!(decide_shipping(&shop.view, &billing).unwrap(), None);
    }

    #[test]
    fn nothing_for_a_withdrawn_billing_or_an_unshippable_order() {
        let (mut shop, billing) = billed(OrderStatus::InStock);
        shop.delete(Entity::Billing(billing.clone()));
        assert_eq!(decide_shipping(&shop.view, &billing).unwrap(), None);
        let (shop, billing) = billed(OrderStatus::OutOfStock);
        assert_eq!(decide_shipping(&shop.view, &billing).unwrap(), None);
    }

    #[test]
    fn dispatches_billing_events() {
        let (mut shop, _) = billed(OrderStatus::InStock);
        let created = shop.last().clone();
        assert!(
            decide_shipping_for_event(&shop.view, &created)
                .unwrap()
                .is_some()
        );
        shop.billing("b1", "o1", 9.0001);
        let updated = shop.last().clone();
        assert_eq!(
            decide_shipping_for_event(&shop.view, &updated).unwrap(),
            None
        );
    }
}
