//! TEMPORARY: runs the gateway with sample data for screenshots. Not kept.
mod support;

use std::time::Duration;

use ordershop_gateway::GatewayConfig;
use serde_json::json;
use support::{FakeDomain, Infra};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn preview() {
    let infra = Infra::start().await;
    let mail = json!(["1-0", {"event_id": "m1", "event_action": "mail_sent", "event_data": "{\"recipient\":\"ann@example.org\",\"message\":\"Dear Ann!\\n\\nWelcome to OrderShop.\\n\\nCheers\"}"}]);
    let _domain = FakeDomain::start(&infra, &["read-model.get_entities", "read-model.get_mails"], move |channel, payload| {
        if channel == "read-model.get_mails" { return json!({"result": [mail.clone()]}); }
        let list = match payload["name"].as_str().unwrap() {
            "customer" => json!([{"entity_id": "3f2a4c1e-0b7d-4f8a-9c1e-2d3b4a5c6d7e", "name": "Ann", "email": "ann@example.org"}, {"entity_id": "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "name": "Bob", "email": "bob@example.org"}]),
            "product" => json!([{"entity_id": "a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d", "name": "Green tea", "price": 3.5}, {"entity_id": "b1b2c3d4-2222-4a6b-8c7d-9e0f1a2b3c4d", "name": "Teapot", "price": 24.0}]),
            "inventory" => json!([{"entity_id": "c1b2c3d4-3333-4a6b-8c7d-9e0f1a2b3c4d", "product_id": "a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d", "amount": 98}]),
            "cart" => json!([{"entity_id": "d1b2c3d4-4444-4a6b-8c7d-9e0f1a2b3c4d", "customer_id": "3f2a4c1e-0b7d-4f8a-9c1e-2d3b4a5c6d7e", "product_ids": ["a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d", "a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d"]}]),
            "order" => json!([{"entity_id": "e1b2c3d4-5555-4a6b-8c7d-9e0f1a2b3c4d", "cart_id": "d1b2c3d4-4444-4a6b-8c7d-9e0f1a2b3c4d", "status": "CLEARED"}]),
            "billing" => json!([{"entity_id": "f1b2c3d4-6666-4a6b-8c7d-9e0f1a2b3c4d", "order_id": "e1b2c3d4-5555-4a6b-8c7d-9e0f1a2b3c4d", "amount": 7.0}]),
            _ => json!([]),
        };
        json!({"result": list})
    });
    let listener = TcpListener::bind("127.0.0.1:5055").await.unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(ordershop_gateway::run(listener, infra.clients(), GatewayConfig::default(), shutdown.clone()));
    let events = [
        ("customer", "entity_created", json!({"entity_id": "3f2a4c1e-0b7d-4f8a-9c1e-2d3b4a5c6d7e", "name": "Ann", "email": "ann@example.org"})),
        ("mail", "mail_sent", json!({"recipient": "ann@example.org", "message": "Dear Ann!\n\nWelcome to OrderShop.\n\nCheers"})),
        ("product", "entity_created", json!({"entity_id": "a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d", "name": "Green tea", "price": 3.5})),
        ("inventory", "entity_created", json!({"entity_id": "c1b2c3d4-3333-4a6b-8c7d-9e0f1a2b3c4d", "product_id": "a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d", "amount": 100})),
        ("cart", "entity_created", json!({"entity_id": "d1b2c3d4-4444-4a6b-8c7d-9e0f1a2b3c4d", "customer_id": "3f2a4c1e-0b7d-4f8a-9c1e-2d3b4a5c6d7e", "product_ids": ["a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d", "a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d"]})),
        ("order", "entity_created", json!({"entity_id": "e1b2c3d4-5555-4a6b-8c7d-9e0f1a2b3c4d", "cart_id": "d1b2c3d4-4444-4a6b-8c7d-9e0f1a2b3c4d", "status": "CREATED"})),
        ("inventory", "entity_updated", json!({"entity_id": "c1b2c3d4-3333-4a6b-8c7d-9e0f1a2b3c4d", "product_id": "a1b2c3d4-1111-4a6b-8c7d-9e0f1a2b3c4d", "amount": 98})),
        ("order", "entity_updated", json!({"entity_id": "e1b2c3d4-5555-4a6b-8c7d-9e0f1a2b3c4d", "cart_id": "d1b2c3d4-4444-4a6b-8c7d-9e0f1a2b3c4d", "status": "IN_STOCK"})),
        ("billing", "entity_created", json!({"entity_id": "f1b2c3d4-6666-4a6b-8c7d-9e0f1a2b3c4d", "order_id": "e1b2c3d4-5555-4a6b-8c7d-9e0f1a2b3c4d", "amount": 7.0})),
        ("order", "entity_updated", json!({"entity_id": "e1b2c3d4-5555-4a6b-8c7d-9e0f1a2b3c4d", "cart_id": "d1b2c3d4-4444-4a6b-8c7d-9e0f1a2b3c4d", "status": "CLEARED"})),
        ("customer", "entity_deleted", json!({"entity_id": "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "name": "Bob", "email": "bob@example.org"})),
    ];
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(150) {
        for (topic, action, data) in events.iter() {
            infra.publish(topic, action, data.clone()).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    shutdown.cancel();
}
