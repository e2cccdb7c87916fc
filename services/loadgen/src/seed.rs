//! The products, customers and inventories a run orders from. Each run seeds
//! its own, so its stock check compares only what it created.

use ordershop_core::EntityKind;
use serde_json::{Value, json};

use crate::{
    shop::{CallError, Shop},
    stats::Recorder,
};

/// Sync creates take a list; this keeps each batch far below the event
/// store's 1000-events-per-batch limit.
const BATCH: usize = 200;

#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub(crate) id: String,
    pub(crate) price: f64,
}

/// One inventory per product, in the same order as the products.
#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    pub(crate) id: String,
    pub(crate) product_id: String,
    pub(crate) amount: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub(crate) products: Vec<Product>,
    pub(crate) customers: Vec<String>,
    pub(crate) inventories: Vec<Inventory>,
}

impl Catalog {
    /// What a cart of these product indices costs: the billing amount the
    /// billing service accepts.
    pub(crate) fn price_of(&self, cart: &[usize]) -> f64 {
        cart.iter().map(|&i| self.products[i].price).sum()
    }
}

/// Prices are multiples of 0.25: exact in binary floating point, so the
/// server's sum equals ours whatever order it adds them in.
pub(crate) fn price(index: usize) -> f64 {
    1.0 + (index % 200) as f64 * 0.25
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SeedPlan<'a> {
    /// Makes names unique to this run, for a human reading the shop.
    pub(crate) tag: &'a str,
    pub(crate) products: usize,
    pub(crate) customers: usize,
    pub(crate) stock: i64,
}

pub(crate) async fn seed(
    shop: &Shop,
    recorder: &mut Recorder,
    plan: SeedPlan<'_>,
) -> Result<Catalog, CallError> {
    let tag = plan.tag;
    let product_bodies: Vec<Value> = (0..plan.products)
        .map(|i| json!({"name": format!("loadgen {tag} product {i}"), "price": price(i)}))
        .collect();
    let product_ids = create_all(shop, recorder, EntityKind::Product, &product_bodies).await?;
    let products: Vec<Product> = product_ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| Product {
            id,
            price: price(i),
        })
        .collect();

    let customer_bodies: Vec<Value> = (0..plan.customers)
        .map(|i| {
            json!({
                "name": format!("loadgen {tag} customer {i}"),
                "email": format!("loadgen-{tag}-{i}@example.com"),
            })
        })
        .collect();
    let customers = create_all(shop, recorder, EntityKind::Customer, &customer_bodies).await?;

    let inventory_bodies: Vec<Value> = products
        .iter()
        .map(|p| json!({"product_id": p.id, "amount": plan.stock}))
        .collect();
    let inventory_ids =
        create_all(shop, recorder, EntityKind::Inventory, &inventory_bodies).await?;
    let inventories = inventory_ids
        .into_iter()
        .zip(&products)
        .map(|(id, p)| Inventory {
            id,
            product_id: p.id.clone(),
            amount: plan.stock,
        })
        .collect();

    Ok(Catalog {
        products,
        customers,
        inventories,
    })
}

async fn create_all(
    shop: &Shop,
    recorder: &mut Recorder,
    kind: EntityKind,
    bodies: &[Value],
) -> Result<Vec<String>, CallError> {
    let mut ids = Vec::with_capacity(bodies.len());
    for chunk in bodies.chunks(BATCH) {
        let created = shop
            .create(recorder, kind, &Value::Array(chunk.to_vec()))
            .await?;
        if created.len() != chunk.len() {
            return Err(CallError::Malformed {
                route: format!("POST /{}", kind.singular()),
                reason: format!("{} ids for {} entities", created.len(), chunk.len()),
            });
        }
        ids.extend(created);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_add_up_exactly_in_any_order() {
        let prices: Vec<f64> = (0..400).map(price).collect();
        let forward: f64 = prices.iter().sum();
        let backward: f64 = prices.iter().rev().sum();
        assert_eq!(forward, backward);
        assert!(prices.iter().all(|p| *p >= 1.0));
    }
}
