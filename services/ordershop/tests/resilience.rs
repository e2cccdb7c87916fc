//! Crashes mid-flow: `kill -9` of a domain service and of the read model,
//! with the supervisor restarting them. The flow completes, nothing happens
//! twice, and the read model comes back with the same state. A service away
//! for long delays the flow but never drops a step of it.

mod support;

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use ordershop_testkit::eventually_async;
use reqwest::Method;
use serde_json::{Value, json};
use support::{DEADLINE, Shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_services_finish_the_flow_without_double_effects() {
    let shop = Shop::start().await;
    let (products, customers) = shop.seed(1, 10).await;
    let cart = shop
        .create_one("cart", json!({"customer_id": customers[0], "product_ids": [products[0], products[0], products[0]]}))
        .await;

    // The order arrives while the order and inventory services are dead:
    // the async create waits in the queue, the reservation in the group.
    let order_pid = shop.kill_role("order");
    let inventory_pid = shop.kill_role("inventory");
    let (_, reply) = shop
        .request(Method::POST, "/orders", Some(json!({"cart_id": cart})))
        .await;
    assert!(
        reply["result"].is_string(),
        "async create answers a message id: {reply}"
    );
    shop.wait_restarted("order", order_pid).await;
    shop.wait_restarted("inventory", inventory_pid).await;

    let order_id = eventually_async("the order to exist", DEADLINE, || async {
        let orders = shop.get("/orders").await;
        orders
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["cart_id"] == json!(cart))
            .and_then(|o| o["entity_id"].as_str().map(str::to_owned))
    })
    .await;
    shop.wait_status(&order_id, "IN_STOCK").await;

    // Kill the inventory service again right after; redeliveries of the
    // order event must not reserve twice.
    let pid = shop.kill_role("inventory");
    shop.wait_restarted("inventory", pid).await;
    let orders = shop.get("/orders").await;
    let for_cart = orders
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["cart_id"] == json!(cart))
        .count();
    assert_eq!(for_cart, 1, "one order for the cart");
    assert_eq!(
        shop.stock_of(&products[0]).await,
        7,
        "stock taken exactly once"
    );

    // The read model: kill -9, restart, identical state.
    let before: Value = shop.get("/report").await;
    let pid = shop.kill_role("read-model");
    shop.wait_restarted("read-model", pid).await;
    let after = eventually_async("the read model back", DEADLINE, || async {
        let (status, body) = shop.request(Method::GET, "/report", None).await;
        status.is_success().then_some(body["result"].clone())
    })
    .await;
    assert_eq!(before, after, "read model state changed across a restart");
    assert_eq!(shop.stock_of(&products[0]).await, 7);
}

/// A saga trigger that comes too early is retried for as long as it takes:
/// with the inventory service stopped (SIGSTOP) for longer than the sagas
/// used to try before dead-lettering (5 deliveries, pauses of 0.5–4 s), an
/// order created and billed meanwhile still ships once it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_billed_while_the_inventory_is_away_ships_when_it_is_back() {
    let shop = Shop::start().await;
    let (products, customers) = shop.seed(1, 5).await;
    let cart = shop
        .create_one(
            "cart",
            json!({"customer_id": customers[0], "product_ids": [products[0]]}),
        )
        .await;
    let inventory = Pid::from_raw(shop.pid_of("inventory"));
    kill(inventory, Signal::SIGSTOP).expect("SIGSTOP");
    let order = shop.create_one("order", json!({"cart_id": cart})).await;
    // Accepted before the stock verdict: the order workflow waits for it.
    shop.create_one("billing", json!({"order_id": order, "amount": 10.0}))
        .await;
    // The outage to survive: the billing's status trigger is refused again
    // and again meanwhile (the order is not IN_STOCK yet).
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        shop.get(&format!("/order/{order}")).await["status"],
        json!("CREATED")
    );
    kill(inventory, Signal::SIGCONT).expect("SIGCONT");
    shop.wait_status(&order, "SHIPPED").await;
    assert_eq!(shop.stock_of(&products[0]).await, 4);
}
