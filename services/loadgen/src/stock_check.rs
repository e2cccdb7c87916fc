//! After a run: every order that holds stock (IN_STOCK or later) took its
//! cart's items exactly once from the seeded inventories, and no other order
//! took anything. Compares `GET /inventories` with seed − Σ reserved.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ordershop_core::{EntityKind, OrderStatus};
use serde::Serialize;
use serde_json::Value;

use crate::{
    flow::{FlowRecord, Outcome},
    seed::Catalog,
    shop::{CallError, Shop},
    stats::Recorder,
};

/// Whether an order in this status has its cart's items reserved.
pub(crate) fn holds_stock(status: OrderStatus) -> bool {
    match status {
        OrderStatus::InStock
        | OrderStatus::Cleared
        | OrderStatus::Uncleared
        | OrderStatus::Shipped
        | OrderStatus::Delivered => true,
        OrderStatus::Created | OrderStatus::OutOfStock => false,
    }
}

/// Seeded amount minus what the reserving carts took, per inventory (in
/// catalog order).
pub(crate) fn expected_amounts<'a>(
    catalog: &Catalog,
    reserving_carts: impl IntoIterator<Item = &'a [usize]>,
) -> Vec<i64> {
    let mut amounts: Vec<i64> = catalog.inventories.iter().map(|i| i.amount).collect();
    for cart in reserving_carts {
        for &product in cart {
            amounts[product] -= 1;
        }
    }
    amounts
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Mismatch {
    pub(crate) inventory_id: String,
    pub(crate) product_id: String,
    pub(crate) seeded: i64,
    pub(crate) expected: i64,
    /// `None`: the inventory was missing from the list.
    pub(crate) actual: Option<i64>,
}

pub(crate) fn compare(
    catalog: &Catalog,
    expected: &[i64],
    actual: &HashMap<String, i64>,
) -> Vec<Mismatch> {
    catalog
        .inventories
        .iter()
        .zip(expected)
        .filter_map(|(inventory, &expected)| {
            let actual = actual.get(&inventory.id).copied();
            (actual != Some(expected)).then(|| Mismatch {
                inventory_id: inventory.id.clone(),
                product_id: inventory.product_id.clone(),
                seeded: inventory.amount,
                expected,
                actual,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StockReport {
    pub(crate) inventories: usize,
    pub(crate) reserving_orders: u64,
    /// Orders of failed flows whose stock verdict never became known.
    pub(crate) undetermined_orders: Vec<String>,
    pub(crate) mismatches: Vec<Mismatch>,
}

impl StockReport {
    pub(crate) fn passed(&self) -> bool {
        self.undetermined_orders.is_empty() && self.mismatches.is_empty()
    }
}

/// Runs the check. Inventory and order updates reach the read model
/// through different streams, so the comparison is retried until `settle`
/// passes before a difference counts.
pub(crate) async fn check_stock(
    shop: &Shop,
    catalog: &Catalog,
    flows: &[FlowRecord],
    settle: Duration,
    poll_interval: Duration,
) -> Result<StockReport, CallError> {
    // Only the flows' own requests belong in the run's route tables.
    let mut recorder = Recorder::default();
    let deadline = Instant::now() + settle;
    let mut reserving: Vec<&[usize]> = Vec::new();
    let mut undetermined = Vec::new();
    for flow in flows {
        let Some(order_id) = &flow.order_id else {
            continue;
        };
        let status = match flow.outcome {
            Ok(Outcome::Shipped) => Some(OrderStatus::Shipped),
            Ok(Outcome::OutOfStock) => Some(OrderStatus::OutOfStock),
            // A failed flow stopped watching its order; ask where it ended.
            Err(_) => {
                settled_status(shop, &mut recorder, order_id, deadline, poll_interval).await?
            }
        };
        match status {
            Some(status) if holds_stock(status) => reserving.push(&flow.cart),
            Some(OrderStatus::OutOfStock) => {}
            _ => undetermined.push(order_id.clone()),
        }
    }
    let expected = expected_amounts(catalog, reserving.iter().copied());
    let mismatches = loop {
        let actual = inventory_amounts(shop, &mut recorder).await?;
        let mismatches = compare(catalog, &expected, &actual);
        if mismatches.is_empty() || Instant::now() >= deadline {
            break mismatches;
        }
        tokio::time::sleep(poll_interval.max(Duration::from_millis(50))).await;
    };
    Ok(StockReport {
        inventories: catalog.inventories.len(),
        reserving_orders: reserving.len() as u64,
        undetermined_orders: undetermined,
        mismatches,
    })
}

/// The order's status once the inventory decided on it, or `None` if it is
/// unknown or still CREATED at the deadline.
async fn settled_status(
    shop: &Shop,
    recorder: &mut Recorder,
    order_id: &str,
    deadline: Instant,
    poll_interval: Duration,
) -> Result<Option<OrderStatus>, CallError> {
    loop {
        let status = shop
            .get(recorder, EntityKind::Order, order_id)
            .await?
            .and_then(|order| order.get("status")?.as_str()?.parse::<OrderStatus>().ok());
        if status.is_some_and(|s| s != OrderStatus::Created) || Instant::now() >= deadline {
            return Ok(status.filter(|s| *s != OrderStatus::Created));
        }
        tokio::time::sleep(poll_interval).await;
    }
}

async fn inventory_amounts(
    shop: &Shop,
    recorder: &mut Recorder,
) -> Result<HashMap<String, i64>, CallError> {
    let inventories = shop.list(recorder, EntityKind::Inventory).await?;
    Ok(inventories
        .iter()
        .filter_map(|inventory| {
            let id = inventory.get("entity_id")?.as_str()?;
            Some((id.to_owned(), integer(inventory.get("amount")?)?))
        })
        .collect())
}

/// An amount as an integer; a non-integral or non-numeric amount is not an
/// amount (and then shows up as a mismatch).
fn integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let float = value.as_f64()?;
        (float.fract() == 0.0).then_some(float as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{Inventory, Product};

    fn catalog() -> Catalog {
        let products: Vec<Product> = (0..3)
            .map(|i| Product {
                id: format!("p{i}"),
                price: 1.0,
            })
            .collect();
        let inventories = products
            .iter()
            .enumerate()
            .map(|(i, p)| Inventory {
                id: format!("i{i}"),
                product_id: p.id.clone(),
                amount: 10,
            })
            .collect();
        Catalog {
            products,
            customers: vec!["c".into()],
            inventories,
        }
    }

    #[test]
    fn expected_stock_takes_every_reserved_item_once() {
        let catalog = catalog();
        let carts: [&[usize]; 2] = [&[0, 0, 2], &[2]];
        assert_eq!(expected_amounts(&catalog, carts), vec![8, 10, 8]);
    }

    #[test]
    fn compare_reports_wrong_and_missing_inventories() {
        let catalog = catalog();
        let expected = vec![8, 10, 8];
        let mut actual: HashMap<String, i64> =
            [("i0".into(), 8), ("i1".into(), 9), ("other".into(), 1)].into();
        let mismatches = compare(&catalog, &expected, &actual);
        assert_eq!(mismatches.len(), 2, "{mismatches:?}");
        assert_eq!(mismatches[0].inventory_id, "i1");
        assert_eq!(mismatches[0].actual, Some(9));
        assert_eq!(mismatches[1].actual, None);
        actual.insert("i1".into(), 10);
        actual.insert("i2".into(), 8);
        assert!(compare(&catalog, &expected, &actual).is_empty());
    }

    #[test]
    fn only_decided_in_stock_orders_hold_stock() {
        assert!(holds_stock(OrderStatus::InStock));
        assert!(holds_stock(OrderStatus::Shipped));
        assert!(!holds_stock(OrderStatus::Created));
        assert!(!holds_stock(OrderStatus::OutOfStock));
        assert_eq!(integer(&serde_json::json!(5.0)), Some(5));
        assert_eq!(integer(&serde_json::json!("5")), None);
    }
}
