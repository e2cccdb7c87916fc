//! `ordershop local` runs with gRPC TLS and authentication on, as the
//! operator does: a CA and key of its own, the event store and the queue
//! serving their API over TLS only, each other role its own token. A
//! process of this machine that is not one of the shop's children is not
//! served (the forged billing of #13), while the shop's own order flow
//! runs and probes and scrapes still reach every role in plaintext.

mod support;

use ordershop_client::{Append, Connector, EventStore, Queue};
use ordershop_topology::Role;
use serde_json::json;
use support::Shop;
use tonic::Code;

fn grpc_addr(shop: &Shop, role: Role) -> String {
    let file = shop
        .data_dir
        .join("run")
        .join(format!("{}.grpc.addr", role.slug()));
    let addr = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    addr.trim().to_owned()
}

/// A client of `role`'s server over TLS, trusting the shop's CA.
fn tls_channel(shop: &Shop, role: Role) -> tonic::transport::Channel {
    let ca = std::fs::read(shop.data_dir.join("run").join("grpc-ca.pem")).expect("the shop's CA");
    Connector::default()
        .with_ca(ca)
        .connect(&format!("https://{}", grpc_addr(shop, role)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_infrastructure_serves_the_shops_roles_only() {
    let shop = Shop::start().await;
    // The shop's own roles authenticate: a whole order reaches IN_STOCK.
    let (_, _, order) = shop.order_in_stock(3).await;

    // Plaintext: only health and metrics, no API.
    let plain =
        EventStore::connect(&format!("http://{}", grpc_addr(&shop, Role::EventStore))).unwrap();
    assert!(plain.healthy().await, "probes need no TLS");
    let refused = plain.heads(&["order"]).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    assert!(refused.to_string().contains("TLS"), "{refused}");

    // TLS, trusting the shop's CA, but no token.
    let store = EventStore::new(tls_channel(&shop, Role::EventStore));
    assert!(store.healthy().await);
    let forged = Append {
        event_action: "entity_created".into(),
        event_data: json!({"entity_id": "b-forged", "order_id": order, "amount": 1}).to_string(),
        entity_id: "b-forged".into(),
        ..Append::default()
    };
    let refused = store.publish("billing", vec![forged]).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    let refused = store
        .read("customer", "", 10, std::time::Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");

    let queue = Queue::new(tls_channel(&shop, Role::MessageQueue), "stranger");
    let refused = queue
        .send("billing-service.create_billings", "[]", "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    let refused = queue
        .receive(
            "mail-service.send",
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");

    // Nothing forged got in: the order is still unbilled.
    assert!(shop.get("/billings").await.as_array().unwrap().is_empty());
}
