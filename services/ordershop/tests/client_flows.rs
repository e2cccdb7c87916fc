//! The reference client's flows and the defects it could not catch, over
//! real HTTP against the shop as `ordershop local` starts it. Every test
//! uses entities of its own, so they pass on a Redis that already holds
//! data, and waits by polling with a deadline.

mod support;

use futures::future::join_all;
use ordershop_testkit::eventually_async;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{DEADLINE, Shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_clients_ten_flows() {
    let shop = Shop::shared().await;
    ordershop_testkit::scenarios::reference_flows(shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_in_stock_order_restores_its_stock() {
    let shop = Shop::shared().await;
    let (products, customers) = shop.seed(1, 5).await;
    let cart = shop
        .create_one(
            "cart",
            json!({"customer_id": customers[0], "product_ids": [products[0], products[0]]}),
        )
        .await;
    let order = shop.create_one("order", json!({"cart_id": cart})).await;
    shop.wait_status(&order, "IN_STOCK").await;
    assert_eq!(shop.stock_of(&products[0]).await, 3);
    let (status, _) = shop.delete("order", &order).await;
    assert_eq!(status, StatusCode::OK);
    eventually_async("stock back at 5", DEADLINE, || async {
        (shop.stock_of(&products[0]).await == 5).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_billing_amount_is_a_client_error_and_writes_nothing() {
    let shop = Shop::shared().await;
    let (_, _, order) = shop.order_in_stock(5).await;
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
    let (products, customers) = shop.seed(2, 2).await;
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
    assert_eq!(shop.stock_of(&products[0]).await, 0);
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
