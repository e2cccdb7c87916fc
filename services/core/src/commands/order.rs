//! Order rules. A new order names an existing cart whose customer still
//! exists, starts CREATED, and a cart has at most one order that is not
//! OUT_OF_STOCK (ordering the same cart twice would reserve its stock
//! twice; re-ordering after OUT_OF_STOCK is fine).
//!
//! Only the order workflow moves the status: an update may repeat the
//! current status or omit it, and cannot move the order to another cart —
//! so an update can change nothing, and is accepted as a no-op.
//!
//! An order with a billing or a shipping cannot be deleted (delete the
//! billing, and the shipping if not yet shipped, first). Deleting an order
//! makes the inventory give back what it reserved for it.

use crate::entity::{Cart, Customer, Order};
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

/// (That a new order starts CREATED is a rule of its input:
/// [`crate::input::new_entity`].)
pub(super) fn create(view: &View, new: &Order, pending: &[&Order]) -> Result<(), DomainError> {
    let cart = view
        .get::<Cart>(&new.cart_id)
        .ok_or_else(|| DomainError::UnknownReference {
            kind: EntityKind::Cart,
            id: new.cart_id.clone(),
        })?;
    if view.get::<Customer>(&cart.customer_id).is_none() {
        return Err(DomainError::UnknownReference {
            kind: EntityKind::Customer,
            id: cart.customer_id.clone(),
        });
    }
    let active = lookup::orders_of_cart(view, &new.cart_id)
        .chain(pending.iter().copied().filter(|o| o.cart_id == new.cart_id))
        .find(|o| o.status != OrderStatus::OutOfStock);
    if let Some(active) = active {
        return Err(DomainError::Conflict(format!(
            "cart {} is already ordered by order {}",
            new.cart_id, active.entity_id
        )));
    }
    Ok(())
}

pub(super) fn update(_view: &View, old: &Order, new: &Order) -> Result<(), DomainError> {
    if old.cart_id != new.cart_id {
        return Err(DomainError::Immutable { field: "cart_id" });
    }
    if old.status != new.status {
        return Err(DomainError::Immutable { field: "status" });
    }
    Ok(())
}

pub(super) fn delete(view: &View, old: &Order) -> Result<(), DomainError> {
    let still_needed = |by: EntityKind, by_id: &str| DomainError::StillNeeded {
        kind: EntityKind::Order,
        id: old.entity_id.clone(),
        by,
        by_id: by_id.to_string(),
    };
    if let Some(billing) = lookup::billing_of_order(view, &old.entity_id) {
        return Err(still_needed(EntityKind::Billing, &billing.entity_id));
    }
    if let Some(shipping) = lookup::shipping_of_order(view, &old.entity_id) {
        return Err(still_needed(EntityKind::Shipping, &shipping.entity_id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::commands::{decide_create, decide_delete, decide_update};
    use crate::kind::EntityKind;
    use crate::status::OrderStatus;
    use crate::testing::Shop;

    fn create(shop: &Shop, input: Value) -> Result<Vec<String>, String> {
        decide_create(EntityKind::Order, &shop.view, "m", &input)
            .map(|d| d.reply)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_new_order_starts_created() {
        let shop = Shop::standard();
        let d = decide_create(
            EntityKind::Order,
            &shop.view,
            "m",
            &json!({"cart_id": "cart1"}),
        )
        .unwrap();
        assert_eq!(d.events[0].data["status"], json!("CREATED"));
        assert_eq!(
            create(&shop, json!({"cart_id": "cart1", "status": "CLEARED"})),
            Err("status must be CREATED for a new order".into())
        );
    }

    #[test]
    fn a_new_order_needs_its_cart_and_customer() {
        let mut shop = Shop::standard();
        assert_eq!(
            create(&shop, json!({"cart_id": "nope"})),
            Err("could not find cart nope".into())
        );
        let ann = shop
            .view
            .entity(EntityKind::Customer, "ann")
            .unwrap()
            .clone();
        shop.delete(ann);
        assert_eq!(
            create(&shop, json!({"cart_id": "cart1"})),
            Err("could not find customer ann".into())
        );
    }

    #[test]
    fn a_cart_is_ordered_once_unless_it_was_out_of_stock() {
        let mut shop = Shop::standard();
        assert_eq!(
            create(&shop, json!([{"cart_id": "cart1"}, {"cart_id": "cart1"}]))
                .unwrap_err()
                .split(" by order ")
                .next(),
            Some("item 1: cart cart1 is already ordered")
        );
        shop.order("o1", "cart1", OrderStatus::InStock);
        assert_eq!(
            create(&shop, json!({"cart_id": "cart1"})),
            Err("cart cart1 is already ordered by order o1".into())
        );
        shop.order("o1", "cart1", OrderStatus::OutOfStock);
        assert!(create(&shop, json!({"cart_id": "cart1"})).is_ok());
    }

    #[test]
    fn the_status_cannot_be_set_by_hand() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::InStock);
        let update = |input: Value| {
            decide_update(EntityKind::Order, &shop.view, "m", &input).map_err(|e| e.to_string())
        };
        assert_eq!(
            update(json!({"entity_id": "o1", "cart_id": "cart1", "status": "DELIVERED"}))
                .unwrap_err(),
            "status cannot change"
        );
        assert_eq!(
            update(json!({"entity_id": "o1", "cart_id": "cart1", "status": "CREATED"}))
                .unwrap_err(),
            "status cannot change"
        );
        let same =
            update(json!({"entity_id": "o1", "cart_id": "cart1", "status": "IN_STOCK"})).unwrap();
        assert!(same.events.is_empty());
        let omitted = update(json!({"entity_id": "o1", "cart_id": "cart1"})).unwrap();
        assert!(omitted.events.is_empty());
        assert_eq!(
            update(json!({"entity_id": "o1", "cart_id": "other"})).unwrap_err(),
            "cart_id cannot change"
        );
    }

    #[test]
    fn an_order_with_a_billing_or_shipping_stays() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::InStock);
        let delete = |shop: &Shop| {
            decide_delete(
                EntityKind::Order,
                &shop.view,
                "m",
                &json!({"entity_id": "o1"}),
            )
            .map_err(|e| e.to_string())
        };
        assert!(delete(&shop).is_ok());
        shop.shipping("s1", "o1", 0);
        assert_eq!(
            delete(&shop).unwrap_err(),
            "order o1 is still needed by shipping s1"
        );
        shop.billing("b1", "o1", 9.0);
        assert_eq!(
            delete(&shop).unwrap_err(),
            "order o1 is still needed by billing b1"
        );
    }
}
