//! Shipping rules. The shipping service creates a shipping by itself when a
//! billing is created; a client may also create one, for an existing order
//! that has a billing and no other shipping, with `delivered` 0.
//!
//! A shipping never moves to another order. `delivered` goes from 0 to a
//! timestamp once (the order becomes DELIVERED) and then stays. A shipping
//! can be deleted until it is delivered or its order is SHIPPED.

use crate::entity::{Order, Shipping};
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

pub(super) fn create(
    view: &View,
    new: &Shipping,
    pending: &[&Shipping],
) -> Result<(), DomainError> {
    // (That a new shipping is undelivered is a rule of its input:
    // [`crate::input::new_entity`].)
    let order = view
        .get::<Order>(&new.order_id)
        .ok_or_else(|| DomainError::UnknownReference {
            kind: EntityKind::Order,
            id: new.order_id.clone(),
        })?;
    if lookup::billing_of_order(view, &order.entity_id).is_none() {
        return Err(DomainError::Conflict(format!(
            "order {} is not billed",
            order.entity_id
        )));
    }
    let other = lookup::shipping_of_order(view, &new.order_id)
        .or_else(|| pending.iter().copied().find(|s| s.order_id == new.order_id));
    if let Some(other) = other {
        return Err(DomainError::Conflict(format!(
            "order {} already has shipping {}",
            new.order_id, other.entity_id
        )));
    }
    Ok(())
}

pub(super) fn update(view: &View, old: &Shipping, new: &Shipping) -> Result<(), DomainError> {
    if old.order_id != new.order_id {
        return Err(DomainError::Immutable { field: "order_id" });
    }
    if old.delivered != 0 && new.delivered != old.delivered {
        return Err(DomainError::Conflict(format!(
            "shipping {} is already delivered",
            old.entity_id
        )));
    }
    if view.get::<Order>(&new.order_id).is_none() {
        return Err(DomainError::UnknownReference {
            kind: EntityKind::Order,
            id: new.order_id.clone(),
        });
    }
    Ok(())
}

pub(super) fn delete(view: &View, old: &Shipping) -> Result<(), DomainError> {
    if old.delivered != 0 {
        return Err(DomainError::Conflict(format!(
            "shipping {} is already delivered",
            old.entity_id
        )));
    }
    match view.get::<Order>(&old.order_id) {
        Some(order) if matches!(order.status, OrderStatus::Shipped | OrderStatus::Delivered) => {
            Err(DomainError::Conflict(format!(
                "order {} is already shipped",
                order.entity_id
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::commands::{decide_create, decide_delete, decide_update};
    use crate::kind::EntityKind;
    use crate::status::OrderStatus;
    use crate::testing::Shop;

    fn billed(status: OrderStatus) -> Shop {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", status).billing("b1", "o1", 9.0);
        shop
    }

    fn create(shop: &Shop, input: Value) -> Result<(), String> {
        decide_create(EntityKind::Shipping, &shop.view, "m", &input)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_shipping_starts_undelivered() {
        let shop = billed(OrderStatus::Cleared);
        let d = decide_create(
            EntityKind::Shipping,
            &shop.view,
            "m",
            &json!({"order_id": "o1"}),
        )
        .unwrap();
        assert_eq!(d.events[0].data["delivered"], json!(0));
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "delivered": 17})),
            Err("delivered must be 0 for a new shipping".into())
        );
    }

    #[test]
    fn a_shipping_needs_a_billed_order_without_shipping() {
        let shop = Shop::standard();
        assert_eq!(
            create(&shop, json!({"order_id": "o1"})),
            Err("could not find order o1".into())
        );
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::InStock);
        assert_eq!(
            create(&shop, json!({"order_id": "o1"})),
            Err("order o1 is not billed".into())
        );
        let mut shop = billed(OrderStatus::Cleared);
        shop.shipping("s1", "o1", 0);
        assert_eq!(
            create(&shop, json!({"order_id": "o1"})),
            Err("order o1 already has shipping s1".into())
        );
    }

    #[test]
    fn delivery_is_set_once() {
        let mut shop = billed(OrderStatus::Shipped);
        shop.shipping("s1", "o1", 0);
        let update = |shop: &Shop, input: Value| {
            decide_update(EntityKind::Shipping, &shop.view, "m", &input).map_err(|e| e.to_string())
        };
        let d = update(
            &shop,
            json!({"entity_id": "s1", "order_id": "o1", "delivered": 1700000000.5}),
        )
        .unwrap();
        assert_eq!(d.events[0].data["delivered"], json!(1_700_000_000));
        shop.shipping("s1", "o1", 1_700_000_000);
        assert_eq!(
            update(
                &shop,
                json!({"entity_id": "s1", "order_id": "o1", "delivered": 0})
            )
            .unwrap_err(),
            "shipping s1 is already delivered"
        );
        // Omitting `delivered` keeps it; repeating it is a no-op.
        assert!(
            update(&shop, json!({"entity_id": "s1", "order_id": "o1"}))
                .unwrap()
                .events
                .is_empty()
        );
        assert_eq!(
            update(&shop, json!({"entity_id": "s1", "order_id": "o2"})).unwrap_err(),
            "order_id cannot change"
        );
    }

    #[test]
    fn a_shipping_is_deletable_until_shipped_or_delivered() {
        let delete = |shop: &Shop| {
            decide_delete(
                EntityKind::Shipping,
                &shop.view,
                "m",
                &json!({"entity_id": "s1"}),
            )
            .map_err(|e| e.to_string())
        };
        let mut shop = billed(OrderStatus::Cleared);
        shop.shipping("s1", "o1", 0);
        assert!(delete(&shop).is_ok());
        let mut shop = billed(OrderStatus::Shipped);
        shop.shipping("s1", "o1", 0);
        assert_eq!(delete(&shop).unwrap_err(), "order o1 is already shipped");
        let mut shop = billed(OrderStatus::Cleared);
        shop.shipping("s1", "o1", 5);
        assert_eq!(
            delete(&shop).unwrap_err(),
            "shipping s1 is already delivered"
        );
    }
}
