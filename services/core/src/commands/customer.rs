//! Customer rules. A customer may leave while their carts and orders stay
//! (the v2 reference client deletes a customer right after ordering), but
//! not while an order of theirs is paid and on its way (CLEARED or SHIPPED):
//! that order still needs someone to ship to. Their carts remain as
//! history; mails about their remaining orders are skipped.

use crate::entity::Customer;
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

pub(super) fn create(_view: &View, _new: &Customer) -> Result<(), DomainError> {
    Ok(())
}

pub(super) fn update(_view: &View, _old: &Customer, _new: &Customer) -> Result<(), DomainError> {
    Ok(())
}

pub(super) fn delete(view: &View, old: &Customer) -> Result<(), DomainError> {
    for cart in lookup::carts_of_customer(view, &old.entity_id) {
        let in_progress = lookup::orders_of_cart(view, &cart.entity_id)
            .find(|o| matches!(o.status, OrderStatus::Cleared | OrderStatus::Shipped));
        if let Some(order) = in_progress {
            return Err(DomainError::StillNeeded {
                kind: EntityKind::Customer,
                id: old.entity_id.clone(),
                by: EntityKind::Order,
                by_id: order.entity_id.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::commands::decide_delete;
    use crate::kind::EntityKind;
    use crate::status::OrderStatus;
    use crate::testing::Shop;

    fn delete(shop: &Shop) -> Result<(), String> {
        decide_delete(
            EntityKind::Customer,
            &shop.view,
            "m",
            &json!({"entity_id": "ann"}),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_customer_with_carts_and_unpaid_orders_may_leave() {
        let mut shop = Shop::standard();
        assert_eq!(delete(&shop), Ok(()));
        shop.order("o1", "cart1", OrderStatus::InStock);
        assert_eq!(delete(&shop), Ok(()));
        shop.order("o1", "cart1", OrderStatus::Delivered);
        assert_eq!(delete(&shop), Ok(()));
    }

    #[test]
    fn a_customer_with_an_order_on_its_way_may_not() {
        for status in [OrderStatus::Cleared, OrderStatus::Shipped] {
            let mut shop = Shop::standard();
            shop.order("o1", "cart1", status);
            assert_eq!(
                delete(&shop),
                Err("customer ann is still needed by order o1".into())
            );
        }
    }
}
