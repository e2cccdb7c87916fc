//! How fast folding and deciding are on a large view (the deciders scan
//! entities linearly). Run with
//! `cargo run --release -p ordershop-core --example decide_at_scale -- 10000`.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use ordershop_core::commands::decide_create;
use ordershop_core::sagas::stock::decide_reservation;
use ordershop_core::{EntityKind, EventAction, Order, OrderStatus, RecordedEvent, Topic, View};
use serde_json::{Value, json};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut events = Vec::new();
    let mut entry = 0u64;
    let mut push = |topic: Topic, id: String, data: Value| {
        entry += 1;
        events.push(RecordedEvent {
            topic,
            entry_id: format!("{entry}-0"),
            event_id: format!("e{entry}"),
            action: EventAction::EntityCreated,
            entity_id: id,
            data,
            causation_id: None,
            version: 1,
        });
    };
    for i in 0..n {
        push(
            Topic::Customer,
            format!("c{i}"),
            json!({"entity_id": format!("c{i}"), "name": "N", "email": "n@x.y"}),
        );
        push(
            Topic::Product,
            format!("p{i}"),
            json!({"entity_id": format!("p{i}"), "name": "P", "price": 3.5}),
        );
        push(
            Topic::Inventory,
            format!("i{i}"),
            json!({"entity_id": format!("i{i}"), "product_id": format!("p{i}"), "amount": 1000}),
        );
        let products = [
            format!("p{i}"),
            format!("p{}", (i * 7) % n),
            format!("p{}", (i * 13) % n),
        ];
        push(
            Topic::Cart,
            format!("k{i}"),
            json!({"entity_id": format!("k{i}"), "customer_id": format!("c{i}"), "product_ids": products}),
        );
        push(
            Topic::Order,
            format!("o{i}"),
            json!({"entity_id": format!("o{i}"), "cart_id": format!("k{i}"), "status": "CREATED"}),
        );
    }

    let mut view = View::new(&Topic::ALL);
    let started = Instant::now();
    for e in &events {
        view.apply(e).expect("valid events");
    }
    let fold = started.elapsed();
    println!(
        "fold: {} events in {:?} ({:.0} events/s)",
        events.len(),
        fold,
        events.len() as f64 / fold.as_secs_f64()
    );

    let rounds: u32 = 200;
    let started = Instant::now();
    for i in 0..rounds {
        let order = view
            .get::<Order>(&format!("o{}", i as usize % n))
            .expect("order")
            .clone();
        let d = decide_reservation(&view, &order).expect("decides");
        assert_eq!(d.verdict, Some(OrderStatus::InStock));
    }
    println!(
        "decide_reservation: {:?} per order",
        started.elapsed() / rounds
    );

    let started = Instant::now();
    for i in 0..rounds {
        let cart = json!({"customer_id": format!("c{}", i as usize % n), "product_ids": ["p1", "p2", "p2"]});
        decide_create(EntityKind::Cart, &view, &format!("m{i}"), &cart).expect("valid cart");
    }
    println!(
        "decide_create(cart): {:?} per command",
        started.elapsed() / rounds
    );

    let started = Instant::now();
    for i in 0..rounds {
        let billing = json!({"order_id": format!("o{}", i as usize % n), "amount": 10.5});
        decide_create(EntityKind::Billing, &view, &format!("b{i}"), &billing)
            .expect("valid billing");
    }
    println!(
        "decide_create(billing): {:?} per command",
        started.elapsed() / rounds
    );
}
