//! Billing rules. A billing pays an existing order that is not
//! OUT_OF_STOCK and has no other billing, and its amount equals the sum of
//! the prices of the order's cart products, to the cent (`amount is not
//! accurate`). A billing may be created before the inventory's verdict
//! reached the order (the order workflow waits for it).
//!
//! A billing never moves to another order; an update re-checks the amount.
//! A billing can be deleted (the order becomes UNCLEARED) until its order
//! is shipped.

use crate::entity::{Billing, Cart, Order};
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

pub(super) fn create(view: &View, new: &Billing, pending: &[&Billing]) -> Result<(), DomainError> {
    let order = order_of(view, new)?;
    if order.status == OrderStatus::OutOfStock {
        return Err(DomainError::Conflict(format!(
            "order {} is out of stock",
            order.entity_id
        )));
    }
    let other = lookup::billing_of_order(view, &new.order_id)
        .or_else(|| pending.iter().copied().find(|b| b.order_id == new.order_id));
    if let Some(other) = other {
        return Err(DomainError::Conflict(format!(
            "order {} is already billed by billing {}",
            new.order_id, other.entity_id
        )));
    }
    check_amount(view, order, new)
}

pub(super) fn update(view: &View, old: &Billing, new: &Billing) -> Result<(), DomainError> {
    if old.order_id != new.order_id {
        return Err(DomainError::Immutable { field: "order_id" });
    }
    let order = order_of(view, new)?;
    check_amount(view, order, new)
}

pub(super) fn delete(view: &View, old: &Billing) -> Result<(), DomainError> {
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

fn order_of<'v>(view: &'v View, billing: &Billing) -> Result<&'v Order, DomainError> {
    view.get::<Order>(&billing.order_id)
        .ok_or_else(|| DomainError::UnknownReference {
            kind: EntityKind::Order,
            id: billing.order_id.clone(),
        })
}

fn check_amount(view: &View, order: &Order, billing: &Billing) -> Result<(), DomainError> {
    let cart = view
        .get::<Cart>(&order.cart_id)
        .ok_or_else(|| DomainError::UnknownReference {
            kind: EntityKind::Cart,
            id: order.cart_id.clone(),
        })?;
    let total = lookup::cart_total(view, cart)?;
    if !lookup::same_money(total, billing.amount) {
        return Err(DomainError::AmountNotAccurate);
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

    /// Cart1 holds two teas (2.5) and a cup (4): 9.
    fn shop_with_order(status: OrderStatus) -> Shop {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", status);
        shop
    }

    fn create(shop: &Shop, input: Value) -> Result<(), String> {
        decide_create(EntityKind::Billing, &shop.view, "m", &input)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_amount_must_be_the_cart_total() {
        let shop = shop_with_order(OrderStatus::InStock);
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "amount": 9})),
            Ok(())
        );
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "amount": 9.001})),
            Ok(())
        );
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "amount": 6.5})),
            Err("amount is not accurate".into())
        );
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "amount": "9"})),
            Err("amount must be a number".into())
        );
    }

    #[test]
    fn the_order_must_exist_and_be_payable() {
        let shop = Shop::standard();
        assert_eq!(
            create(&shop, json!({"order_id": "nope", "amount": 9})),
            Err("could not find order nope".into())
        );
        let shop = shop_with_order(OrderStatus::OutOfStock);
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "amount": 9})),
            Err("order o1 is out of stock".into())
        );
        // Before the inventory's verdict arrived: accepted.
        let shop = shop_with_order(OrderStatus::Created);
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "amount": 9})),
            Ok(())
        );
    }

    #[test]
    fn one_billing_per_order() {
        let mut shop = shop_with_order(OrderStatus::InStock);
        let err = create(
            &shop,
            json!([{"order_id": "o1", "amount": 9}, {"order_id": "o1", "amount": 9}]),
        )
        .unwrap_err();
        assert!(
            err.starts_with("item 1: order o1 is already billed by billing "),
            "{err}"
        );
        shop.billing("b1", "o1", 9.0);
        assert_eq!(
            create(&shop, json!({"order_id": "o1", "amount": 9})),
            Err("order o1 is already billed by billing b1".into())
        );
    }

    #[test]
    fn updates_work_and_recheck_the_amount() {
        let mut shop = shop_with_order(OrderStatus::Cleared);
        shop.billing("b1", "o1", 9.0);
        let update = |input: Value| {
            decide_update(EntityKind::Billing, &shop.view, "m", &input).map_err(|e| e.to_string())
        };
        assert!(update(json!({"entity_id": "b1", "order_id": "o1", "amount": 9.0})).is_ok());
        assert_eq!(
            update(json!({"entity_id": "b1", "order_id": "o1", "amount": 1})).unwrap_err(),
            "amount is not accurate"
        );
        assert_eq!(
            update(json!({"entity_id": "b1", "order_id": "o2", "amount": 9})).unwrap_err(),
            "order_id cannot change"
        );
    }

    #[test]
    fn a_billing_is_deletable_until_the_order_ships() {
        for (status, allowed) in [
            (OrderStatus::InStock, true),
            (OrderStatus::Cleared, true),
            (OrderStatus::Shipped, false),
            (OrderStatus::Delivered, false),
        ] {
            let mut shop = shop_with_order(status);
            shop.billing("b1", "o1", 9.0);
            let result = decide_delete(
                EntityKind::Billing,
                &shop.view,
                "m",
                &json!({"entity_id": "b1"}),
            );
            match allowed {
                true => assert!(result.is_ok(), "{status}"),
                false => assert_eq!(
                    result.unwrap_err().to_string(),
                    "order o1 is already shipped"
                ),
            }
        }
    }
}
