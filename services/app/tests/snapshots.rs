//! View snapshots: a restarted service starts from its snapshot and reads
//! only the events after it, and ignores a snapshot whose events the store
//! no longer holds. Real redis-server, in-process servers, secured.

mod support;

use std::time::Duration;

use ordershop_app::{Settings, ViewSettings};
use ordershop_client::EventStore;
use ordershop_testkit::eventually_async;
use ordershop_topology::{Role, stream_key};
use serde_json::{Value, json};
use support::{Api, DEADLINE, Infra, settings};

/// A snapshot after every event, looked for every 50 ms.
fn snapshotting() -> Settings {
    snapshots_every(1)
}

/// A snapshot due after `events` events, looked for every 50 ms.
fn snapshots_every(events: u64) -> Settings {
    let base = settings();
    Settings {
        view: ViewSettings {
            snapshot_every: events,
            snapshot_check: Duration::from_millis(50),
            ..base.view.clone()
        },
        ..base
    }
}

async fn customer(api: &Api, name: &str) -> String {
    api.create(
        Role::Customer,
        "customers",
        json!({"name": name, "email": format!("{name}@example.org")}),
    )
    .await
}

async fn rename(api: &Api, id: &str, name: &str) -> Value {
    api.call(
        "customer-service.update_customer",
        json!({"entity_id": id, "name": name, "email": format!("{name}@example.org")}),
    )
    .await
}

/// Waits until the customer service's stored snapshot holds the customer
/// topic up to `head`.
async fn snapshot_reaches(owner: &EventStore, head: &str) {
    eventually_async("a snapshot up to the head", DEADLINE, || async {
        let snapshot = owner.get_snapshot("customer-service").await.unwrap()?;
        (snapshot.positions.get("customer").map(String::as_str) == Some(head)).then_some(())
    })
    .await;
}

async fn customer_entries(infra: &Infra) -> Vec<String> {
    let mut redis = infra.cache().conn();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream_key("customer"))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    entries.ids.into_iter().map(|e| e.id).collect()
}

async fn delete_entries(infra: &Infra, ids: &[String]) {
    let mut redis = infra.cache().conn();
    let deleted: usize = redis::cmd("XDEL")
        .arg(stream_key("customer"))
        .arg(ids)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(deleted, ids.len());
}

/// Publishes a customer created by someone else than the service (while it
/// is down, or behind its back); returns the publish's answer.
async fn publish_customer(infra: &Infra, name: &str) -> Vec<ordershop_client::Stored> {
    infra
        .clients_as(Role::Customer, "x")
        .event_store
        .publish(
            "customer",
            vec![ordershop_client::Append {
                event_action: "entity_created".into(),
                event_data:
                    json!({"entity_id": name, "name": name, "email": format!("{name}@example.org")})
                        .to_string(),
                entity_id: name.into(),
                expected_version: Some(0),
                ..Default::default()
            }],
        )
        .await
        .unwrap()
}

/// What a retention pass does: the customer stream loses the entries
/// before `before`, and its mark says so.
async fn trim_customers_before(infra: &Infra, before: &str) {
    let keys = ordershop_topology::StreamKeys::new("customer");
    let mut redis = infra.cache().conn();
    let _: () = redis::pipe()
        .cmd("XTRIM")
        .arg(&keys.stream)
        .arg("MINID")
        .arg(before)
        .ignore()
        .cmd("SET")
        .arg(&keys.trimmed)
        .arg(before)
        .ignore()
        .query_async(&mut redis)
        .await
        .unwrap();
}

/// A shop whose customer service stored a snapshot holding Ann and Bob,
/// and stopped.
struct Shop {
    infra: Infra,
    api: Api,
    /// The customer service's own event store client.
    owner: EventStore,
    ann: String,
    bob: String,
    /// The customer stream's entries: Ann's, then Bob's.
    entries: Vec<String>,
}

async fn two_customers_in_a_snapshot() -> Shop {
    let infra = Infra::start().await;
    let api = infra.api();
    let owner = infra.clients_as(Role::Customer, "a").event_store;
    let service = infra.spawn_with(Role::Customer, "a", snapshotting());
    service.ready().await;
    let ann = customer(&api, "ann").await;
    let bob = customer(&api, "bob").await;
    let entries = customer_entries(&infra).await;
    snapshot_reaches(&owner, &entries[1]).await;
    service.stop().await;
    Shop {
        infra,
        api,
        owner,
        ann,
        bob,
        entries,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_starts_from_the_snapshot_and_reads_only_what_came_after() {
    let Shop {
        infra,
        api,
        ann,
        bob,
        entries,
        ..
    } = two_customers_in_a_snapshot().await;

    // Only the snapshot still knows Ann: her event leaves the stream (as
    // a retention trim would take it), Bob's stays as the snapshot's last.
    delete_entries(&infra, &entries[..1]).await;
    // And one event comes after the snapshot, while the service is down.
    let cleo_reply = publish_customer(&infra, "cleo").await;
    assert_eq!(cleo_reply.len(), 1);

    let service = infra.spawn_with(Role::Customer, "b", snapshotting());
    service.ready().await;
    for (id, name) in [
        (&ann, "anna"),
        (&bob, "bobby"),
        (&"cleo".to_owned(), "cleopatra"),
    ] {
        let reply = rename(&api, id, name).await;
        assert_eq!(reply["result"], json!(true), "renaming {id}: {reply}");
    }
    service.stop().await;
}

/// A service stopping stores a snapshot of what it folded since its last
/// one, so its next start replays nothing, however far from due the next
/// periodic snapshot was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_service_stores_what_it_folded_since_its_last_snapshot() {
    let infra = Infra::start().await;
    let api = infra.api();
    let owner = infra.clients_as(Role::Customer, "a").event_store;
    let service = infra.spawn_with(Role::Customer, "a", snapshots_every(1_000_000));
    service.ready().await;
    customer(&api, "ann").await;
    customer(&api, "bob").await;
    assert!(
        owner
            .get_snapshot("customer-service")
            .await
            .unwrap()
            .is_none(),
        "no snapshot was due yet"
    );
    let head = customer_entries(&infra).await.pop().unwrap();
    service.stop().await;
    let snapshot = owner
        .get_snapshot("customer-service")
        .await
        .unwrap()
        .expect("a snapshot stored at shutdown");
    assert_eq!(snapshot.positions.get("customer"), Some(&head));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_events_the_store_lost_is_replaced_by_a_replay() {
    let Shop {
        infra,
        api,
        owner,
        ann,
        bob,
        entries,
    } = two_customers_in_a_snapshot().await;

    // Redis lost its last write (an `everysec` crash): Bob's event, the
    // last one the snapshot folded, is gone.
    delete_entries(&infra, &entries[1..]).await;
    let service = infra.spawn_with(Role::Customer, "b", snapshotting());
    service.ready().await;
    // The view is the store's, not the snapshot's: Bob is unknown...
    let reply = rename(&api, &bob, "bobby").await;
    assert_eq!(reply["kind"], json!("not_found"), "{reply}");
    assert_eq!(rename(&api, &ann, "anna").await["result"], json!(true));
    // ...and a new snapshot replaced the one ahead of the store.
    let last = customer_entries(&infra).await.pop().unwrap();
    snapshot_reaches(&owner, &last).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_snapshots_off_a_start_replays_the_store_whole() {
    let Shop {
        infra,
        api,
        ann,
        bob,
        entries,
        ..
    } = two_customers_in_a_snapshot().await;
    delete_entries(&infra, &entries[..1]).await;

    let base = settings();
    let off = Settings {
        view: ViewSettings {
            snapshot_every: 0,
            ..base.view.clone()
        },
        ..base
    };
    let service = infra.spawn_with(Role::Customer, "b", off);
    service.ready().await;
    // Ann was only in the snapshot, which this start did not read.
    assert_eq!(rename(&api, &ann, "anna").await["kind"], json!("not_found"));
    assert_eq!(rename(&api, &bob, "bobby").await["result"], json!(true));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_cannot_replay_a_trimmed_stream_refuses_to_start() {
    let Shop { infra, entries, .. } = two_customers_in_a_snapshot().await;
    // Retention trimmed Ann's event (behind the snapshot, at Bob's), and
    // then Redis lost Bob's, the snapshot's last: the snapshot is unusable
    // and the stream cannot be replayed whole.
    trim_customers_before(&infra, &entries[1]).await;
    delete_entries(&infra, &entries[1..]).await;

    // A view without Ann would answer as if she never existed: the service
    // stops instead, and says why.
    let service = infra.spawn_with(Role::Customer, "b", snapshotting());
    let err = service.ended().await.expect_err("a start on a gap");
    let text = err.to_string();
    assert!(
        text.contains("removed by retention") && text.contains("customer"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_retention_passed_restarts_from_the_snapshot() {
    let infra = Infra::start().await;
    let api = infra.api();
    // A view that only catches up when it decides, so it can be left
    // behind.
    let base = settings();
    let lagging = Settings {
        view: ViewSettings {
            follow: false,
            ..base.view.clone()
        },
        ..base
    };
    let service = infra.spawn_with(Role::Customer, "a", lagging);
    service.ready().await;
    customer(&api, "ann").await;

    // Two customers the view has not folded; retention then trims up to
    // the second (as it would behind another replica's snapshot).
    for name in ["cleo", "dora"] {
        publish_customer(&infra, name).await;
    }
    let dora = customer_entries(&infra).await.pop().unwrap();
    trim_customers_before(&infra, &dora).await;

    // Its next decision finds it cannot catch up by reading: the role ends
    // so that it restarts from the newest snapshot; the command stays
    // queued for the restarted one.
    api.queue
        .send(
            "customer-service.update_customer",
            &json!({"entity_id": "dora", "name": "Dora", "email": "dora@example.org"}).to_string(),
            "",
        )
        .await
        .unwrap();
    assert!(matches!(
        service.ended().await,
        Err(ordershop_app::AppError::StoreBehindView)
    ));
}
