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

/// Lists over what one queue message carries (the read model's reply was
/// refused past 1 MiB, and `/mails/sent`, `/report` and every list answered
/// 504 from then on): whole lists stream, pages walk each entry once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_larger_than_a_queue_message_answer_whole_and_in_pages() {
    let shop = Shop::shared().await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let padding = "x".repeat(450);
    let mut ours = std::collections::BTreeSet::new();
    for batch in 0..5 {
        let customers: Vec<Value> = (0..500)
            .map(|i| json!({"name": format!("{tag} {batch}-{i} {padding}"), "email": "big@example.org"}))
            .collect();
        ours.extend(shop.create("customer", json!(customers)).await);
    }
    assert_eq!(ours.len(), 2500);

    let whole = shop.get("/customers").await;
    let listed: std::collections::BTreeSet<String> = whole
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["entity_id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        listed.is_superset(&ours),
        "every new customer in the whole list"
    );

    let mut walked = Vec::new();
    let mut path = "/customers?limit=300".to_owned();
    loop {
        let (status, page) = shop.request(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let items = page["result"].as_array().unwrap();
        assert!(items.len() <= 300);
        walked.extend(
            items
                .iter()
                .map(|c| c["entity_id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/customers?limit=300&after={next}"),
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<String> = walked.iter().cloned().collect();
    assert_eq!(unique.len(), walked.len(), "no customer twice in a walk");
    assert!(unique.is_superset(&ours));

    // The welcome mails alone are over 1 MiB; the report's bounded form is
    // what the live UI loads.
    let mails = shop.get("/mails/sent").await;
    assert!(mails.as_array().is_some());
    let (status, report) = shop.request(Method::GET, "/report?limit=5", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["result"]["customers"].as_array().unwrap().len(), 5);
    assert!(
        report["total"]["customers"].as_u64().unwrap() >= 2500,
        "{}",
        report["total"]
    );
    let (status, body) = shop.request(Method::GET, "/customers?limit=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
