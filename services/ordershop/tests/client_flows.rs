//! The reference client's flows and the defects it could not catch, over
//! real HTTP against the shop as `ordershop local` starts it. Every test
//! uses entities of its own, so they pass on a Redis that already holds
//! data, and waits by polling with a deadline.

mod support;

use std::collections::HashSet;

use futures::future::join_all;
use ordershop_testkit::eventually_async;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{DEADLINE, Shop, seed, stock_of};

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

fn count_ours(all: &Value, ours: &[String]) -> usize {
    let ids = ids_in(all);
    ours.iter().filter(|id| ids.contains(*id)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_clients_ten_flows() {
    let shop = Shop::shared().await;

    // 1-3. Seed 10 products, their inventories and 10 customers.
    let (products, customers) = seed(shop, 10, 100).await;
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
    assert_eq!(stock_of(shop, &products[1]).await, 100 - 2);
    // Product 0: once in cart 0, twice in cart 9.
    assert_eq!(stock_of(shop, &products[0]).await, 100 - 3);

    // 7. Delete an order: its stock comes back, and the read sees it.
    let (status, _) = shop.delete("order", &order_ids[9]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shop.get(&format!("/order/{}", order_ids[9])).await,
        Value::Null
    );
    eventually_async("stock of order 9 restored", DEADLINE, || async {
        (stock_of(shop, &products[0]).await == 100 - 1).then_some(())
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
    eventually_async("22 mails", DEADLINE, || async {
        (count_mails().await >= 22).then_some(())
    })
    .await;
    assert_eq!(count_mails().await, 22, "no mail sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_in_stock_order_restores_its_stock() {
    let shop = Shop::shared().await;
    let (products, customers) = seed(shop, 1, 5).await;
    let cart = shop
        .create_one(
            "cart",
            json!({"customer_id": customers[0], "product_ids": [products[0], products[0]]}),
        )
        .await;
    let order = shop.create_one("order", json!({"cart_id": cart})).await;
    shop.wait_status(&order, "IN_STOCK").await;
    assert_eq!(stock_of(shop, &products[0]).await, 3);
    let (status, _) = shop.delete("order", &order).await;
    assert_eq!(status, StatusCode::OK);
    eventually_async("stock back at 5", DEADLINE, || async {
        (stock_of(shop, &products[0]).await == 5).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_billing_amount_is_a_client_error_and_writes_nothing() {
    let shop = Shop::shared().await;
    let (products, customers) = seed(shop, 1, 5).await;
    let cart = shop
        .create_one(
            "cart",
            json!({"customer_id": customers[0], "product_ids": [products[0]]}),
        )
        .await;
    let order = shop.create_one("order", json!({"cart_id": cart})).await;
    shop.wait_status(&order, "IN_STOCK").await;
    let (status, body) = shop
        .request(
            Method::POST,
            "/billing",
            Some(json!({"order_id": order, "amount": 11.0})),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(body["error"], json!("amount is not accurate"));
    let billings = shop.get("/billings").await;
    assert!(
        !billings
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["order_id"] == json!(order)),
        "a refused billing was stored"
    );
    assert_eq!(
        shop.get(&format!("/order/{order}")).await["status"],
        json!("IN_STOCK")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_for_the_last_units_leave_exactly_one_in_stock() {
    let shop = Shop::shared().await;
    let (products, customers) = seed(shop, 2, 2).await;
    // Four carts each want both remaining units of product 0.
    let carts: Vec<Value> = (0..4)
        .map(
            |i| json!({"customer_id": customers[i % 2], "product_ids": [products[0], products[0]]}),
        )
        .collect();
    let cart_ids = shop.create("cart", Value::Array(carts)).await;
    let creates = cart_ids
        .iter()
        .map(|c| shop.create_one("order", json!({"cart_id": c})));
    let orders = join_all(creates).await;
    let mut statuses = Vec::new();
    for order in &orders {
        let path = format!("/order/{order}");
        let status = eventually_async("a stock verdict", DEADLINE, || async {
            let status = shop.get(&path).await["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (status == "IN_STOCK" || status == "OUT_OF_STOCK").then_some(status)
        })
        .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "IN_STOCK").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(stock_of(shop, &products[0]).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_unknown_entities_are_null() {
    let shop = Shop::shared().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(shop.get(&format!("/customer/{unknown}")).await, Value::Null);

    let (status, body) = shop
        .request(Method::POST, "/customer", Some(json!({"name": "no email"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string());

    let (status, body) = shop
        .put(
            "customer",
            &unknown,
            json!({"name": "x", "email": "x@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], json!("could not find customer"));

    let raw = reqwest::Client::new()
        .post(format!("{}/customer", shop.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let body: Value = raw.json().await.expect("a JSON error body");
    assert!(body["error"].is_string());
}
