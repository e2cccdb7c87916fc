//! The event store and the queue of a secured shop: a caller without a
//! token of the shop's key is not served at all, and each role may do
//! only its part of the topology (the forged-billing attack of #13 among
//! them).

use std::time::Duration;

use ordershop_client::{Append, ClientError, Credentials, EventStore, Queue, ViewSnapshot};
use ordershop_grpc_auth::GrpcKey;
use ordershop_testkit::{Infra, eventually_async};
use ordershop_topology::Role;
use serde_json::json;
use tonic::Code;

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Code {
    result.expect_err("the call is refused").code()
}

fn billing(amount: u64) -> Append {
    let id = uuid::Uuid::new_v4().to_string();
    Append {
        event_action: "entity_created".into(),
        event_data: json!({"entity_id": id, "order_id": "o1", "amount": amount}).to_string(),
        entity_id: id,
        ..Append::default()
    }
}

fn store_as(infra: &Infra, role: Role) -> EventStore {
    infra
        .event_store()
        .with_credentials(infra.credentials(role))
}

fn queue_as(infra: &Infra, role: Role) -> Queue {
    infra.queue("q").with_credentials(infra.credentials(role))
}

#[tokio::test]
async fn strangers_are_not_served() {
    let infra = Infra::start_secured().await;
    let anonymous = infra.event_store();
    assert_eq!(
        code(anonymous.publish("billing", vec![billing(1)]).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(anonymous.heads(&["order"]).await),
        Code::Unauthenticated
    );
    // A token of another shop's key, even for the right role.
    let foreign = Credentials::token(&GrpcKey::generate().token(Role::Billing)).unwrap();
    let forger = infra.event_store().with_credentials(foreign.clone());
    assert_eq!(
        code(forger.publish("billing", vec![billing(1)]).await),
        Code::Unauthenticated
    );
    let queue = infra.queue("q").with_credentials(foreign);
    assert_eq!(
        code(
            queue
                .send("billing-service.create_billings", "{}", "")
                .await
        ),
        Code::Unauthenticated
    );
    // Health stays open: probes carry no token.
    eventually_async(
        "health answers without a token",
        Duration::from_secs(20),
        || async { anonymous.healthy().await.then_some(()) },
    )
    .await;
    // Nothing was stored.
    let (events, _) = store_as(&infra, Role::ReadModel)
        .read_all("billing", "")
        .await
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn a_role_publishes_and_reads_only_its_part() {
    let infra = Infra::start_secured().await;
    // The CRM reads billings but may not make one up.
    let crm = store_as(&infra, Role::Crm);
    assert_eq!(
        code(crm.publish("billing", vec![billing(1)]).await),
        Code::PermissionDenied
    );
    store_as(&infra, Role::Billing)
        .publish("billing", vec![billing(1000)])
        .await
        .expect("the billing service publishes billings");
    assert_eq!(crm.read_all("billing", "").await.unwrap().0.len(), 1);
    // The mail service reads no customer data; heads (entry ids) are open.
    let mail = store_as(&infra, Role::Mail);
    assert_eq!(
        code(mail.read("customer", "", 10, Duration::ZERO).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(mail.follow(&[("customer", String::new())]).await),
        Code::PermissionDenied
    );
    assert!(mail.heads(&["customer"]).await.is_ok());
    // Consumer groups: only the role's own, only on its subscriptions.
    assert_eq!(
        code(crm.ack("billing", "order-service", "1-0").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(crm.ack("product", "crm-service", "1-0").await),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn a_role_keeps_and_reads_only_its_own_snapshot() {
    let infra = Infra::start_secured().await;
    let snapshot = |positions: &[(&str, &str)]| ViewSnapshot {
        format: 1,
        positions: positions
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect(),
        data: b"the order service's view".to_vec(),
        replace_newer: false,
    };
    let order = store_as(&infra, Role::Order);
    assert!(
        order
            .put_snapshot("order-service", snapshot(&[("order", "5-0")]))
            .await
            .unwrap()
    );
    // Another role can neither read it (customer data) nor plant one.
    let crm = store_as(&infra, Role::Crm);
    assert_eq!(
        code(crm.get_snapshot("order-service").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            crm.put_snapshot("order-service", snapshot(&[("order", "9-0")]))
                .await
        ),
        Code::PermissionDenied
    );
    // Nor may a role store positions of topics it does not read.
    assert_eq!(
        code(
            store_as(&infra, Role::Shipping)
                .put_snapshot("shipping-service", snapshot(&[("customer", "1-0")]))
                .await
        ),
        Code::PermissionDenied
    );
    let back = order.get_snapshot("order-service").await.unwrap().unwrap();
    assert_eq!(back.data, b"the order service's view");
}

#[tokio::test]
async fn a_role_sends_and_serves_only_its_channels() {
    let infra = Infra::start_secured().await;
    let channel = "billing-service.create_billings";
    // Only the gateway (and the sagas, on their channels) send.
    assert_eq!(
        code(
            queue_as(&infra, Role::Customer)
                .send(channel, "{}", "")
                .await
        ),
        Code::PermissionDenied
    );
    let gateway = queue_as(&infra, Role::ApiGateway);
    let id = gateway.send(channel, "{}", "").await.unwrap();
    // Only the billing service takes billing commands, or answers them.
    let thief = queue_as(&infra, Role::Crm);
    let wait = Duration::from_millis(100);
    let lease = Duration::from_secs(10);
    assert_eq!(
        code(thief.receive(channel, wait, lease).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(thief.respond(channel, &id, "[]").await),
        Code::PermissionDenied
    );
    assert_eq!(code(thief.ack(channel, &id).await), Code::PermissionDenied);

    let billing = queue_as(&infra, Role::Billing);
    // An answer to a message that is not (or no longer) pending is refused,
    // so no reply can be planted for a caller to take.
    assert_eq!(
        code(
            billing
                .respond(channel, "00000000-0000-0000-0000-000000000000", "[]")
                .await
        ),
        Code::NotFound
    );
    let message = billing
        .receive(channel, wait, lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.id, id);
    billing.respond(channel, &id, "[\"b1\"]").await.unwrap();
    // A retried answer is accepted and changes nothing.
    billing.respond(channel, &id, "[\"other\"]").await.unwrap();
    let reply = gateway
        .await_response(channel, &id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply, "[\"b1\"]");
    // Waiting for replies is the sender's: the CRM never sends billings.
    assert_eq!(
        code(thief.await_response(channel, &id, wait).await),
        Code::PermissionDenied
    );
}
