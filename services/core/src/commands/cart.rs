//! Cart rules: a cart names an existing customer and existing products, and
//! every product has an inventory with at least as many pieces as the cart
//! holds (`product <id> is out of stock`). Nothing is reserved here; the
//! inventory reserves when the cart is ordered.
//!
//! A cart is frozen once an order of it went further than CREATED — or the
//! inventory already reserved for that order, whose status change may still
//! be on its way — because the reservation, the billing amount and the
//! stock restore are all computed from the cart. A cart with orders cannot
//! be deleted.

use crate::causation;
use crate::entity::{Cart, Customer, Product};
use crate::error::DomainError;
use crate::kind::{EntityKind, Topic};
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

pub(super) fn create(view: &View, new: &Cart) -> Result<(), DomainError> {
    check_contents(view, new)
}

pub(super) fn update(view: &View, old: &Cart, new: &Cart) -> Result<(), DomainError> {
    for order in lookup::orders_of_cart(view, &old.entity_id) {
        let reserved = view.has_seen(Topic::Inventory, &causation::reserve(&order.entity_id));
        if order.status != OrderStatus::Created || reserved {
            return Err(DomainError::Conflict(format!(
                "cart {} cannot change: order {} is {}",
                old.entity_id,
                order.entity_id,
                if order.status == OrderStatus::Created {
                    "being processed".to_string()
                } else {
                    order.status.to_string()
                }
            )));
        }
    }
    check_contents(view, new)
}

pub(super) fn delete(view: &View, old: &Cart) -> Result<(), DomainError> {
    match lookup::orders_of_cart(view, &old.entity_id).next() {
        Some(order) => Err(DomainError::StillNeeded {
            kind: EntityKind::Cart,
            id: old.entity_id.clone(),
            by: EntityKind::Order,
            by_id: order.entity_id.clone(),
        }),
        None => Ok(()),
    }
}

fn check_contents(view: &View, cart: &Cart) -> Result<(), DomainError> {
    if view.get::<Customer>(&cart.customer_id).is_none() {
        return Err(DomainError::UnknownReference {
            kind: EntityKind::Customer,
            id: cart.customer_id.clone(),
        });
    }
    let pieces = lookup::pieces(&cart.product_ids);
    for product_id in pieces.keys() {
        if view.get::<Product>(product_id).is_none() {
            return Err(DomainError::UnknownReference {
                kind: EntityKind::Product,
                id: product_id.to_string(),
            });
        }
    }
    for (product_id, wanted) in pieces {
        let available = lookup::inventory_of_product(view, product_id).map_or(0, |i| i.amount);
        if available < wanted {
            return Err(DomainError::OutOfStock {
                product_id: product_id.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::commands::{decide_create, decide_delete, decide_update};
    use crate::event::{EventAction, NewEvent};
    use crate::kind::{EntityKind, Topic};
    use crate::status::OrderStatus;
    use crate::testing::Shop;

    fn create(shop: &Shop, input: Value) -> Result<(), String> {
        decide_create(EntityKind::Cart, &shop.view, "m", &input)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn update(shop: &Shop, product_ids: &[&str]) -> Result<(), String> {
        decide_update(
            EntityKind::Cart,
            &shop.view,
            "m",
            &json!({"entity_id": "cart1", "customer_id": "ann", "product_ids": product_ids}),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_cart_within_stock_is_accepted() {
        let shop = Shop::standard();
        assert_eq!(
            create(
                &shop,
                json!({"customer_id": "ann", "product_ids": ["tea", "tea", "cup"]})
            ),
            Ok(())
        );
    }

    #[test]
    fn repeats_count_against_the_stock() {
        let shop = Shop::standard();
        assert_eq!(
            create(
                &shop,
                json!({"customer_id": "ann", "product_ids": ["cup", "tea", "cup"]})
            ),
            Err("product cup is out of stock".into())
        );
    }

    #[test]
    fn a_product_without_inventory_is_out_of_stock() {
        let mut shop = Shop::standard();
        shop.product("mug", 1.0);
        assert_eq!(
            create(&shop, json!({"customer_id": "ann", "product_ids": ["mug"]})),
            Err("product mug is out of stock".into())
        );
    }

    #[test]
    fn references_must_exist() {
        let shop = Shop::standard();
        assert_eq!(
            create(&shop, json!({"customer_id": "bob", "product_ids": ["tea"]})),
            Err("could not find customer bob".into())
        );
        assert_eq!(
            create(
                &shop,
                json!({"customer_id": "ann", "product_ids": ["tea", "nope"]})
            ),
            Err("could not find product nope".into())
        );
    }

    #[test]
    fn a_cart_changes_while_its_order_waits_for_the_inventory() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::Created);
        assert_eq!(update(&shop, &["tea"]), Ok(()));
    }

    #[test]
    fn a_cart_is_frozen_once_its_order_left_created() {
        for status in OrderStatus::ALL
            .into_iter()
            .filter(|s| *s != OrderStatus::Created)
        {
            let mut shop = Shop::standard();
            shop.order("o1", "cart1", status);
            assert_eq!(
                update(&shop, &["tea"]),
                Err(format!("cart cart1 cannot change: order o1 is {status}"))
            );
        }
    }

    #[test]
    fn a_cart_is_frozen_once_the_inventory_reserved_for_its_order() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::Created);
        let reserve = NewEvent {
            topic: Topic::Inventory,
            event_id: "r".into(),
            action: EventAction::EntityUpdated,
            entity_id: "inv-cup".into(),
            data: json!({"entity_id": "inv-cup", "product_id": "cup", "amount": 0}),
            causation_id: Some("reserve:o1".into()),
            expected_version: Some(1),
        };
        shop.append(&[reserve]).unwrap();
        assert_eq!(
            update(&shop, &["tea"]),
            Err("cart cart1 cannot change: order o1 is being processed".into())
        );
    }

    #[test]
    fn an_update_is_checked_against_stock_too() {
        let shop = Shop::standard();
        assert_eq!(
            update(&shop, &["cup", "cup"]),
            Err("product cup is out of stock".into())
        );
    }

    #[test]
    fn a_cart_with_orders_cannot_be_deleted() {
        let mut shop = Shop::standard();
        assert!(
            decide_delete(
                EntityKind::Cart,
                &shop.view,
                "m",
                &json!({"entity_id": "cart1"})
            )
            .is_ok()
        );
        shop.order("o1", "cart1", OrderStatus::OutOfStock);
        let err = decide_delete(
            EntityKind::Cart,
            &shop.view,
            "m",
            &json!({"entity_id": "cart1"}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "cart cart1 is still needed by order o1");
    }
}
