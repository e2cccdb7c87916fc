//! Client scenarios that run against any shop, local or in a cluster.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ShopApi, eventually_async};

fn ids_in(map_or_list: &Value) -> HashSet<String> {
    match map_or_list {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|o| o["entity_id"].as_str().map(str::to_owned))
            .collect(),
        _ => HashSet::new(),
    }
}

/// How many of `ours` a list route's reply holds (a map keyed by id, or a
/// list of entities).
pub fn count_ours(all: &Value, ours: &[String]) -> usize {
    let ids = ids_in(all);
    ours.iter().filter(|id| ids.contains(*id)).count()
}

/// The reference client's ten flows with exact counts on entities of their
/// own (so a shop that already holds data passes too): seed, carts, a
/// read-your-writes update, orders through the inventory saga, a deletion
/// that restores stock, billing → shipping → delivery, the list routes and
/// exactly one mail per event.
pub async fn reference_flows(shop: &ShopApi) {
    // 1-3. Seed 10 products, their inventories and 10 customers.
    let (products, customers) = shop.seed(10, 100).await;
    assert_eq!(products.len(), 10);
    let listed = shop.get("/products").await;
    assert_eq!(count_ours(&listed, &products), 10);
    let first = shop.get(&format!("/product/{}", products[0])).await;
    assert_eq!(first["price"], json!(10.0), "numbers stay numbers");

    // 4. Carts: customer i buys product i once and product i+1 twice.
    let carts: Vec<Value> = (0..10)
        .map(|i| {
            json!({
                "customer_id": customers[i],
                "product_ids": [products[i], products[(i + 1) % 10], products[(i + 1) % 10]],
            })
        })
        .collect();
    let cart_ids = shop.create("cart", Value::Array(carts)).await;
    assert_eq!(cart_ids.len(), 10);

    // 5. Update a cart, then read it back at once (read-your-writes).
    let updated = json!({"customer_id": customers[0], "product_ids": [products[0], products[1]]});
    let (status, reply) = shop.put("cart", &cart_ids[0], updated).await;
    assert_eq!(
        (status, &reply["result"]),
        (StatusCode::OK, &json!(true)),
        "{reply}"
    );
    let cart0 = shop.get(&format!("/cart/{}", cart_ids[0])).await;
    assert_eq!(cart0["product_ids"], json!([products[0], products[1]]));

    // 6. Orders, one per cart; the inventory saga reserves every cart.
    let orders: Vec<Value> = cart_ids.iter().map(|c| json!({"cart_id": c})).collect();
    let order_ids = shop.create("order", Value::Array(orders)).await;
    for id in &order_ids {
        shop.wait_status(id, "IN_STOCK").await;
    }
    // Product 1: once in the updated cart 0, once in cart 1.
    assert_eq!(shop.stock_of(&products[1]).await, 100 - 2);
    // Product 0: once in cart 0, twice in cart 9.
    assert_eq!(shop.stock_of(&products[0]).await, 100 - 3);

    // 7. Delete an order: its stock comes back, and the read sees it.
    let (status, _) = shop.delete("order", &order_ids[9]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shop.get(&format!("/order/{}", order_ids[9])).await,
        Value::Null
    );
    eventually_async("stock of order 9 restored", shop.deadline(), || async {
        (shop.stock_of(&products[0]).await == 100 - 1).then_some(())
    })
    .await;

    // 8. Bill one order with the exact amount (cart 0: 10 + 20).
    shop.create("billing", json!({"order_id": order_ids[0], "amount": 30.0}))
        .await;
    shop.wait_status(&order_ids[0], "SHIPPED").await;

    // 9. Unbilled orders: all of ours but the billed and the deleted one.
    let unbilled = shop.get("/orders/unbilled").await;
    assert_eq!(count_ours(&unbilled, &order_ids), 8);

    // 10. Confirm the (automatically created) shipping as delivered.
    let shippings = shop.get("/shippings").await;
    let shipping = shippings
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["order_id"] == json!(order_ids[0]))
        .expect("a shipping for the billed order")
        .clone();
    assert_eq!(shipping["delivered"], json!(0));
    let shipping_id = shipping["entity_id"].as_str().unwrap().to_owned();
    let delivered = json!({"order_id": order_ids[0], "delivered": 1_790_000_000});
    let (status, reply) = shop.put("shipping", &shipping_id, delivered).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    shop.wait_status(&order_ids[0], "DELIVERED").await;

    // 11. Unshipped and delivered orders.
    let unshipped = shop.get("/orders/unshipped").await;
    assert_eq!(count_ours(&unshipped, &order_ids), 8);
    let delivered = shop.get("/orders/delivered").await;
    assert_eq!(count_ours(&delivered, &order_ids), 1);

    // 12. Mails: 10 welcomes, 10 payment requests (every order reached
    // IN_STOCK), one payment confirmation and one shipping notice.
    let mut ours = HashSet::new();
    for id in &customers {
        let customer = shop.get(&format!("/customer/{id}")).await;
        ours.insert(customer["email"].as_str().unwrap().to_owned());
    }
    let count_mails = || async {
        let mails = shop.get("/mails/sent").await;
        mails
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                let data: Value =
                    serde_json::from_str(m[1]["event_data"].as_str().unwrap()).unwrap();
                ours.contains(data["recipient"].as_str().unwrap_or_default())
            })
            .count()
    };
    eventually_async("22 mails", shop.deadline(), || async {
        (count_mails().await >= 22).then_some(())
    })
    .await;
    assert_eq!(count_mails().await, 22, "no mail sent twice");
}
