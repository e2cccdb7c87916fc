//! Questions deciders ask a [`View`] about how entities refer to each other,
//! answered through the view's reference index: a scan of every entity per
//! decision made each decision cost more as the shop sold more (at 100,000
//! orders, a billing scanned 100,000 billings to find its order's).

use std::collections::BTreeMap;

use crate::entity::{Billing, Cart, Inventory, Order, Product, Shipping};
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::view::View;

pub(crate) fn carts_of_customer<'v>(
    view: &'v View,
    customer_id: &'v str,
) -> impl Iterator<Item = &'v Cart> + 'v {
    view.referring::<Cart>(customer_id)
        .filter(move |c| c.customer_id == customer_id)
}

pub(crate) fn carts_with_product<'v>(
    view: &'v View,
    product_id: &'v str,
) -> impl Iterator<Item = &'v Cart> + 'v {
    view.referring::<Cart>(product_id)
        .filter(move |c| c.product_ids.iter().any(|p| p == product_id))
}

pub(crate) fn orders_of_cart<'v>(
    view: &'v View,
    cart_id: &'v str,
) -> impl Iterator<Item = &'v Order> + 'v {
    view.referring::<Order>(cart_id)
        .filter(move |o| o.cart_id == cart_id)
}

pub(crate) fn billing_of_order<'v>(view: &'v View, order_id: &str) -> Option<&'v Billing> {
    view.referring::<Billing>(order_id)
        .find(|b| b.order_id == order_id)
}

pub(crate) fn shipping_of_order<'v>(view: &'v View, order_id: &str) -> Option<&'v Shipping> {
    view.referring::<Shipping>(order_id)
        .find(|s| s.order_id == order_id)
}

pub(crate) fn inventory_of_product<'v>(view: &'v View, product_id: &str) -> Option<&'v Inventory> {
    view.referring::<Inventory>(product_id)
        .find(|i| i.product_id == product_id)
}

/// How many pieces of each product a cart holds (repeats mean quantity).
pub(crate) fn pieces(product_ids: &[String]) -> BTreeMap<&str, i64> {
    let mut counts = BTreeMap::new();
    for id in product_ids {
        *counts.entry(id.as_str()).or_insert(0) += 1;
    }
    counts
}

/// The sum of the prices of a cart's products, each counted as often as it
/// appears.
pub(crate) fn cart_total(view: &View, cart: &Cart) -> Result<f64, DomainError> {
    cart.product_ids
        .iter()
        .map(|id| {
            view.get::<Product>(id)
                .map(|p| p.price)
                .ok_or_else(|| DomainError::UnknownReference {
                    kind: EntityKind::Product,
                    id: id.clone(),
                })
        })
        .sum()
}

/// Whether two amounts of money are the same to the cent. Prices are f64,
/// so a sum like 0.1 + 0.2 must still match a client's 0.3.
pub(crate) fn same_money(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.005
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_count_repeats() {
        let ids: Vec<String> = ["a", "b", "a", "a"].iter().map(|s| s.to_string()).collect();
        let counts = pieces(&ids);
        assert_eq!(counts["a"], 3);
        assert_eq!(counts["b"], 1);
    }

    #[test]
    fn money_matches_to_the_cent() {
        assert!(same_money(0.1 + 0.2, 0.3));
        assert!(same_money(10.0, 10.004));
        assert!(!same_money(10.0, 10.01));
    }
}
