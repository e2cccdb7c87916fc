//! Measures the workers end to end, everything in this process (event
//! store and queue servers, every worker role) against a private
//! redis-server:
//!
//! 1. the latency of one sync command (`customer-service.create_customers`
//!    through the queue, reply included), one at a time;
//! 2. full order flows (customer, cart, order, IN_STOCK, billing, SHIPPED,
//!    delivery, DELIVERED) with many clients at once: flows per second and
//!    the latency of a flow and of its commands.
//!
//! Run: `cargo run --release -p ordershop-app --example order_flows -- [flows] [clients]`
//! (defaults 400 flows, 32 clients).
#![allow(clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use ordershop_app::Settings;
use ordershop_client::EventStore;
use ordershop_core::ids::keyed_entity_id;
use ordershop_event_store::StoreConfig;
use ordershop_message_queue::QueueConfig;
use serde_json::{Value, json};
use support::{Api, Infra, WORKERS, all_ready};
use tokio::sync::watch;

/// Order id -> its status, from one tail of the `order` topic, so waiting
/// flows cost no polling.
type Statuses = Arc<Mutex<HashMap<String, watch::Sender<String>>>>;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let flows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(400);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);

    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // The servers' production timeouts: a benchmark must not redeliver
    // work that is merely queued.
    let infra = Infra::start_with(StoreConfig::default(), QueueConfig::default()).await;
    let tails = std::env::var("TAILS").map_or(true, |v| v != "0");
    let consumers = std::env::var("CONSUMERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let settings = Settings {
        concurrency: 8,
        saga_consumers: consumers,
        view: ordershop_app::ViewSettings {
            tails,
            ..Default::default()
        },
        ..Settings::default()
    };
    println!("views tail the store: {tails}; saga consumers: {consumers}");
    let roles: Vec<_> = WORKERS
        .iter()
        .map(|role| infra.spawn_with(*role, "a", settings.clone()))
        .collect();
    all_ready(&roles).await;
    let api = infra.api();

    // 1. One command at a time.
    let mut single = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        api.create(
            ordershop_topology::Role::Customer,
            "customers",
            json!({"name": format!("Solo{i}"), "email": "solo@example.org"}),
        )
        .await;
        single.push(started.elapsed());
    }
    report("sync create_customers, one at a time", &mut single);

    // Products with ample stock, shared by every flow.
    let products = api
        .ok(
            ordershop_topology::Role::Product,
            "create_products",
            json!(
                (0..10)
                    .map(|i| json!({"name": format!("P{i}"), "price": 1.5}))
                    .collect::<Vec<_>>()
            ),
        )
        .await;
    let products: Vec<String> = products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    for product in &products {
        api.create(
            ordershop_topology::Role::Inventory,
            "inventories",
            json!({"product_id": product, "amount": 1_000_000}),
        )
        .await;
    }

    let statuses: Statuses = Arc::default();
    tokio::spawn(watch_orders(api.store.clone(), statuses.clone()));

    // 2. Full flows, `clients` at a time.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let commands = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let per_flow: Vec<Vec<Duration>> = join_all((0..clients).map(|_| {
        let api = api.clone();
        let products = products.clone();
        let statuses = statuses.clone();
        let next = next.clone();
        let commands = commands.clone();
        tokio::spawn(async move {
            let mut durations = Vec::new();
            loop {
                let number = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if number >= flows {
                    break;
                }
                let flow = Instant::now();
                let mut timed = Vec::new();
                one_flow(&api, number, &products, &statuses, &mut timed).await;
                durations.push(flow.elapsed());
                commands.lock().unwrap().extend(timed);
            }
            durations
        })
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let elapsed = started.elapsed();
    let mut per_flow: Vec<Duration> = per_flow.into_iter().flatten().collect();
    println!(
        "{} full order flows with {clients} clients in {:.2?}: {:.0} flows/s",
        per_flow.len(),
        elapsed,
        per_flow.len() as f64 / elapsed.as_secs_f64()
    );
    report("full flow (5 commands + 3 saga waits)", &mut per_flow);
    let mut commands = commands.lock().unwrap().clone();
    report("sync command under that load", &mut commands);

    for role in roles {
        role.stop().await;
    }
}

/// Customer, cart of two products, order, wait IN_STOCK, billing, wait
/// SHIPPED (the saga ships), deliver, wait DELIVERED.
async fn one_flow(
    api: &Api,
    number: usize,
    products: &[String],
    statuses: &Statuses,
    timed: &mut Vec<Duration>,
) {
    use ordershop_topology::Role;
    let mut timed_create = async |role: Role, plural: &str, payload: Value| {
        let started = Instant::now();
        let id = api.create(role, plural, payload).await;
        timed.push(started.elapsed());
        id
    };
    let n = number % products.len();
    let customer = timed_create(
        Role::Customer,
        "customers",
        json!({"name": "Flow", "email": "flow@example.org"}),
    )
    .await;
    let cart = timed_create(
        Role::Cart,
        "carts",
        json!({"customer_id": customer, "product_ids": [products[n], products[(n + 1) % products.len()]]}),
    )
    .await;
    let order = timed_create(Role::Order, "orders", json!({"cart_id": cart})).await;
    let mut status = subscribe(statuses, &order);
    wait_status(&mut status, "IN_STOCK").await;
    timed_create(
        Role::Billing,
        "billings",
        json!({"order_id": order, "amount": 3.0}),
    )
    .await;
    wait_status(&mut status, "SHIPPED").await;
    let shipping = keyed_entity_id("shipping", &order, 0);
    let started = Instant::now();
    api.ok(
        Role::Shipping,
        "update_shipping",
        json!({"entity_id": shipping, "order_id": order, "delivered": 1_700_000_000}),
    )
    .await;
    timed.push(started.elapsed());
    wait_status(&mut status, "DELIVERED").await;
}

fn subscribe(statuses: &Statuses, order: &str) -> watch::Receiver<String> {
    statuses
        .lock()
        .unwrap()
        .entry(order.to_string())
        .or_insert_with(|| watch::Sender::new(String::new()))
        .subscribe()
}

async fn wait_status(status: &mut watch::Receiver<String>, wanted: &str) {
    tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| s == wanted))
        .await
        .unwrap_or_else(|_| panic!("no {wanted} within 30 s"))
        .unwrap();
}

async fn watch_orders(store: EventStore, statuses: Statuses) {
    let mut after = String::new();
    loop {
        let Ok((events, next)) = store
            .read("order", &after, 1000, Duration::from_millis(500))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        for event in &events {
            let data: Value = serde_json::from_str(&event.event_data).unwrap_or_default();
            let status = data["status"].as_str().unwrap_or_default().to_string();
            statuses
                .lock()
                .unwrap()
                .entry(event.entity_id.clone())
                .or_insert_with(|| watch::Sender::new(String::new()))
                .send_replace(status);
        }
        if !next.is_empty() {
            after = next;
        }
    }
}

fn report(what: &str, durations: &mut [Duration]) {
    durations.sort();
    let at = |q: f64| durations[((durations.len() as f64 * q) as usize).min(durations.len() - 1)];
    println!(
        "{what}: n={} p50={:.2?} p90={:.2?} p99={:.2?} max={:.2?}",
        durations.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        durations[durations.len() - 1]
    );
}
