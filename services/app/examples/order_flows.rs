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
//! (defaults 400 flows, 32 clients). `FOLLOW=0` makes the views read what
//! they lack before each decision instead of following the store;
//! `CONSUMERS=n` sets the consumers per saga subscription.
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
use support::{Api, Infra, all_ready, workers};
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
    let follow = std::env::var("FOLLOW").map_or(true, |v| v != "0");
    let consumers = std::env::var("CONSUMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Settings::default().saga_consumers);
    let settings = Settings {
        concurrency: 8,
        saga_consumers: consumers,
        view: ordershop_app::ViewSettings {
            follow,
            ..Default::default()
        },
        ..Settings::default()
    };
    println!("views follow the store: {follow}; saga consumers: {consumers}");
    let roles: Vec<_> = workers()
        .map(|role| infra.spawn_with(role, "a", settings.clone()))
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

    infra.redis_admin(&["CONFIG", "RESETSTAT"]).await;

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

    saga_delays(&api.store).await;
    let stats = infra.redis_info("commandstats").await;
    report_redis(&stats, per_flow.len());

    for role in roles {
        role.stop().await;
    }
}

/// Redis commands per flow, the busiest first: how much work a flow costs
/// the one Redis behind everything.
fn report_redis(stats: &str, flows: usize) {
    let mut calls: Vec<(String, u64)> = stats
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let count = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), count))
        })
        .collect();
    calls.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let total: u64 = calls.iter().map(|(_, c)| c).sum();
    let top: Vec<String> = calls
        .iter()
        .take(12)
        .map(|(name, count)| format!("{name} {:.1}", *count as f64 / flows as f64))
        .collect();
    println!(
        "redis commands per flow: {:.0} ({})",
        total as f64 / flows as f64,
        top.join(", ")
    );
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

/// How long each saga step took, from the stream entry ids (which are the
/// store's millisecond clock): the time between an event and the event the
/// saga wrote in reaction.
async fn saga_delays(store: &EventStore) {
    let millis = |entry: &str| -> u64 { entry.split('-').next().unwrap().parse().unwrap() };
    let data = |event: &ordershop_client::Recorded| -> Value {
        serde_json::from_str(&event.event_data).unwrap()
    };
    let (orders, _) = store.read_all("order", "").await.unwrap();
    let (billings, _) = store.read_all("billing", "").await.unwrap();
    let (shippings, _) = store.read_all("shipping", "").await.unwrap();
    // order id -> (status -> ms)
    let mut status_at: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for event in &orders {
        let status = data(event)["status"].as_str().unwrap().to_string();
        status_at
            .entry(event.entity_id.clone())
            .or_default()
            .insert(status, millis(&event.entry_id));
    }
    let mut billed_at = HashMap::new();
    for event in billings
        .iter()
        .filter(|e| e.event_action == "entity_created")
    {
        billed_at.insert(
            data(event)["order_id"].as_str().unwrap().to_string(),
            millis(&event.entry_id),
        );
    }
    let mut shipping_at = HashMap::new();
    let mut delivered_at = HashMap::new();
    for event in &shippings {
        let order = data(event)["order_id"].as_str().unwrap().to_string();
        match event.event_action.as_str() {
            "entity_created" => shipping_at.insert(order, millis(&event.entry_id)),
            _ => delivered_at.insert(order, millis(&event.entry_id)),
        };
    }
    let mut steps: Vec<(&str, Vec<Duration>)> = vec![
        (
            "order created -> IN_STOCK (inventory saga + set_status)",
            Vec::new(),
        ),
        ("billing created -> CLEARED (order saga)", Vec::new()),
        (
            "billing created -> shipping created (shipping saga)",
            Vec::new(),
        ),
        ("shipping created -> SHIPPED (order saga)", Vec::new()),
        ("delivered -> DELIVERED (order saga)", Vec::new()),
    ];
    for (order, at) in &status_at {
        let (Some(billed), Some(shipped), Some(delivered)) = (
            billed_at.get(order),
            shipping_at.get(order),
            delivered_at.get(order),
        ) else {
            continue;
        };
        let pairs = [
            (at.get("CREATED"), at.get("IN_STOCK")),
            (Some(billed), at.get("CLEARED")),
            (Some(billed), Some(shipped)),
            (Some(shipped), at.get("SHIPPED")),
            (Some(delivered), at.get("DELIVERED")),
        ];
        for ((_, delays), (from, to)) in steps.iter_mut().zip(pairs) {
            if let (Some(from), Some(to)) = (from, to) {
                delays.push(Duration::from_millis(to.saturating_sub(*from)));
            }
        }
    }
    for (what, mut delays) in steps {
        if !delays.is_empty() {
            report(what, &mut delays);
        }
    }
}
