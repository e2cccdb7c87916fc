//! The read model's lists at sizes over what one queue message carries:
//! pages that walk every entry exactly once, in order, bounded; filtered
//! lists (unbilled, unshipped, delivered) from tags kept by the fold;
//! the orders report page by page; a clear error for a whole-list request
//! that would not fit; and a cache of the first layout removed.

mod support;

use std::collections::BTreeSet;

use ordershop_client::Append;
use ordershop_topology::Role;
use redis::AsyncCommands;
use serde_json::{Value, json};
use support::{Api, Infra};

fn event(action: &str, entity_id: &str, data: Value) -> Append {
    Append {
        event_action: action.into(),
        event_data: data.to_string(),
        entity_id: entity_id.into(),
        ..Default::default()
    }
}

/// Publishes in batches the event store takes.
async fn publish(infra: &Infra, topic: &str, events: Vec<Append>) {
    for batch in events.chunks(500) {
        infra
            .publisher_of(topic)
            .publish(topic, batch.to_vec())
            .await
            .unwrap();
    }
}

/// Publishes one `entity_created` of `topic`, `entity_id` set from `id`.
async fn create(infra: &Infra, topic: &str, id: &str, mut data: Value) {
    data["entity_id"] = json!(id);
    publish(infra, topic, vec![event("entity_created", id, data)]).await;
}

/// Publishes CREATED orders of cart `cart`.
async fn create_orders(infra: &Infra, ids: &[String], cart: &str) {
    let events = ids
        .iter()
        .map(|id| {
            event(
                "entity_created",
                id,
                json!({"entity_id": id, "cart_id": cart, "status": "CREATED"}),
            )
        })
        .collect();
    publish(infra, "order", events).await;
}

/// Follows `next` from the first page; returns every item and the pages'
/// sizes.
async fn walk(api: &Api, function: &str, request: Value, limit: usize) -> (Vec<Value>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut request = request.clone();
        request["page"] = json!({"limit": limit, "cursor": cursor});
        let page = api.query(function, request).await;
        let got = page["items"].as_array().unwrap();
        sizes.push(got.len());
        items.extend(got.iter().cloned());
        match &page["next"] {
            Value::Null => return (items, sizes),
            next => cursor = next.clone(),
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["entity_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_larger_than_a_queue_message_are_read_in_pages() {
    let infra = Infra::start().await;
    let read_model = infra.spawn(Role::ReadModel, "a");
    read_model.ready().await;
    let api = infra.api();

    // 3,000 customers of ~500 bytes: 1.5 MB, over the queue's 1 MiB.
    let padding = "x".repeat(450);
    let customers: Vec<String> = (0..3000).map(|i| format!("c{i:05}")).collect();
    publish(
        &infra,
        "customer",
        customers
            .iter()
            .map(|id| {
                event(
                    "entity_created",
                    id,
                    json!({"entity_id": id, "name": format!("{id} {padding}"), "email": "a@b.c"}),
                )
            })
            .collect(),
    )
    .await;

    let whole = api
        .call(
            "read-model.get_entities",
            json!({"name": "customers", "after": api.store.heads(&["customer"]).await.unwrap()}),
        )
        .await;
    assert_eq!(whole["kind"], json!("invalid"), "{}", whole["error"]);
    assert!(
        whole["error"]
            .as_str()
            .unwrap()
            .contains("ask for it in pages"),
        "{whole}"
    );

    let (items, sizes) = walk(&api, "get_entities", json!({"name": "customer"}), 1000).await;
    assert_eq!(ids(&items), customers, "every customer once, in id order");
    assert!(
        sizes.iter().all(|&n| n * 500 <= 300 * 1024),
        "pages stay near their byte budget: {sizes:?}"
    );
    let first = api
        .query(
            "get_entities",
            json!({"name": "customer", "page": {"limit": 7}}),
        )
        .await;
    assert_eq!(first["total"], json!(3000));
    assert_eq!(first["items"].as_array().unwrap().len(), 7);
    assert_eq!(first["next"], json!("c00006"));

    // Deleted entities leave the lists; props filter page by page.
    publish(
        &infra,
        "customer",
        customers[..1000]
            .iter()
            .map(|id| {
                let mut gone = event("entity_deleted", id, json!({"entity_id": id}));
                gone.expected_version = Some(1);
                gone
            })
            .collect(),
    )
    .await;
    let (items, _) = walk(&api, "get_entities", json!({"name": "customer"}), 333).await;
    assert_eq!(ids(&items), customers[1000..]);
    let name = format!("c02500 {padding}");
    let (matching, _) = walk(
        &api,
        "get_entities",
        json!({"name": "customer", "props": {"name": name}}),
        100,
    )
    .await;
    assert_eq!(ids(&matching), ["c02500"]);
    let one = api
        .query(
            "get_entity",
            json!({"name": "customer", "props": {"name": name}}),
        )
        .await;
    assert_eq!(one["entity_id"], json!("c02500"));
    assert_eq!(
        api.query(
            "get_entity",
            json!({"name": "customer", "props": {"name": "nobody"}})
        )
        .await,
        Value::Null
    );

    // A cache of the first layout (no index, other names), as an older
    // read model left it, is removed; this one is unaffected.
    read_model.stop().await;
    let mut conn = infra.redis_conn().await;
    let old = ordershop_topology::ReadModelKeys::first_layout("customer");
    let _: () = conn.hset(&old[0], "c00001", "{}").await.unwrap();
    let _: () = conn.hset(&old[1], "c00001", 1).await.unwrap();
    let _: () = conn.set(&old[2], "1-0").await.unwrap();
    let settings = ordershop_app::Settings {
        read_model_legacy_grace: std::time::Duration::from_millis(500),
        ..support::settings()
    };
    let read_model = infra.spawn_with(Role::ReadModel, "b", settings);
    read_model.ready().await;
    let (items, _) = walk(&api, "get_entities", json!({"name": "customer"}), 1000).await;
    assert_eq!(ids(&items), customers[1000..]);
    ordershop_testkit::eventually_async(
        "the first layout's keys removed",
        support::DEADLINE,
        || {
            let mut conn = conn.clone();
            let old = old.clone();
            async move {
                let left: usize = conn.exists(&old[..]).await.ok()?;
                (left == 0).then_some(())
            }
        },
    )
    .await;
    read_model.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_lists_and_the_orders_report_come_from_tags() {
    let infra = Infra::start().await;
    let read_model = infra.spawn(Role::ReadModel, "a");
    read_model.ready().await;
    let api = infra.api();

    let orders: Vec<String> = (0..120).map(|i| format!("o{i:03}")).collect();
    create(&infra, "product", "p1", json!({"name": "Pen", "price": 2})).await;
    create(
        &infra,
        "customer",
        "ann",
        json!({"name": "Ann", "email": "a@b.c"}),
    )
    .await;
    create(
        &infra,
        "cart",
        "k1",
        json!({"customer_id": "ann", "product_ids": ["p1", "p1"]}),
    )
    .await;
    create_orders(&infra, &orders, "k1").await;
    // Even orders are billed, every fourth shipped, every eighth delivered.
    let billed: Vec<&String> = orders.iter().step_by(2).collect();
    publish(
        &infra,
        "billing",
        billed
            .iter()
            .map(|order| {
                let id = format!("b-{order}");
                event(
                    "entity_created",
                    &id,
                    json!({"entity_id": id, "order_id": order, "amount": 4}),
                )
            })
            .collect(),
    )
    .await;
    publish(
        &infra,
        "shipping",
        orders
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 == 0)
            .map(|(i, order)| {
                let id = format!("s-{order}");
                let delivered = if i % 8 == 0 { 1_700_000_000 } else { 0 };
                event(
                    "entity_created",
                    &id,
                    json!({"entity_id": id, "order_id": order, "delivered": delivered}),
                )
            })
            .collect(),
    )
    .await;
    // Moves and deletes take their tags along: b-o000 now bills o001, the
    // shipping of o008 is gone, o004's was delivered after all.
    let mut moved = event(
        "entity_updated",
        "b-o000",
        json!({"entity_id": "b-o000", "order_id": "o001", "amount": 4}),
    );
    moved.expected_version = Some(1);
    publish(&infra, "billing", vec![moved]).await;
    let mut gone = event("entity_deleted", "s-o008", json!({"entity_id": "s-o008"}));
    gone.expected_version = Some(1);
    let mut delivered = event(
        "entity_updated",
        "s-o004",
        json!({"entity_id": "s-o004", "order_id": "o004", "delivered": 5}),
    );
    delivered.expected_version = Some(1);
    publish(&infra, "shipping", vec![gone, delivered]).await;

    let unbilled_ids: BTreeSet<String> = (0..120)
        .filter(|i| (i % 2 == 1 && *i != 1) || *i == 0)
        .map(|i| format!("o{i:03}"))
        .collect();
    let shipped = |i: usize| i.is_multiple_of(4) && i != 8;
    let unshipped_ids: BTreeSet<String> = (0..120)
        .filter(|&i| !shipped(i))
        .map(|i| format!("o{i:03}"))
        .collect();
    let delivered_ids: Vec<String> = (0..120)
        .filter(|&i| shipped(i) && (i.is_multiple_of(8) || i == 4))
        .map(|i| format!("o{i:03}"))
        .collect();

    for limit in [7, 1000] {
        let (unbilled, _) = walk(&api, "get_unbilled_orders", json!({}), limit).await;
        assert_eq!(
            ids(&unbilled).into_iter().collect::<BTreeSet<_>>(),
            unbilled_ids
        );
        assert_eq!(unbilled.len(), unbilled_ids.len(), "each once");
        let (unshipped, _) = walk(&api, "get_unshipped_orders", json!({}), limit).await;
        assert_eq!(
            ids(&unshipped).into_iter().collect::<BTreeSet<_>>(),
            unshipped_ids
        );
        let (delivered, _) = walk(&api, "get_delivered_orders", json!({}), limit).await;
        assert_eq!(ids(&delivered), delivered_ids);
    }
    // The v2 shapes: maps id -> order, and a list.
    let unbilled = api.query("get_unbilled_orders", json!({})).await;
    assert_eq!(
        unbilled
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        unbilled_ids
    );
    let delivered = api.query("get_delivered_orders", json!({})).await;
    assert_eq!(ids(delivered.as_array().unwrap()), delivered_ids);

    let (report, _) = walk(&api, "get_orders_report", json!({}), 25).await;
    assert_eq!(ids(&report), orders);
    let o001 = &report[1];
    assert_eq!(o001["cart"]["customer"]["name"], json!("Ann"));
    assert_eq!(o001["cart"]["products"].as_array().unwrap().len(), 2);
    let billings: BTreeSet<&str> = o001["billings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["entity_id"].as_str().unwrap())
        .collect();
    assert_eq!(billings, BTreeSet::from(["b-o000"]));
    assert_eq!(report[0]["billings"], json!([]));
    assert_eq!(report[8]["shippings"], json!([]));
    assert_eq!(report[4]["shippings"][0]["delivered"], json!(5));

    // Mails in stream order, paged and whole.
    publish(
        &infra,
        "mail",
        (0..30)
            .map(|i| {
                event(
                    "mail_sent",
                    "",
                    json!({"recipient": format!("r{i}@b.c"), "message": "hi"}),
                )
            })
            .collect(),
    )
    .await;
    let (mails, sizes) = walk(&api, "get_mails", json!({}), 4).await;
    assert_eq!(sizes.len(), 8, "{sizes:?}");
    let whole = api.query("get_mails", json!({})).await;
    assert_eq!(&mails, whole.as_array().unwrap());
    let recipients: Vec<String> = mails
        .iter()
        .map(|mail| {
            let data: Value =
                serde_json::from_str(mail[1]["event_data"].as_str().unwrap()).unwrap();
            data["recipient"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..30).map(|i| format!("r{i}@b.c")).collect();
    assert_eq!(recipients, expected);
    read_model.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pages_are_refused() {
    let infra = Infra::start().await;
    let read_model = infra.spawn(Role::ReadModel, "a");
    read_model.ready().await;
    let api = infra.api();
    for page in [
        json!({"limit": 0}),
        json!({"limit": 5000}),
        json!("x"),
        json!({"cursor": 4}),
    ] {
        let reply = api
            .call(
                "read-model.get_entities",
                json!({"name": "customer", "page": page}),
            )
            .await;
        assert_eq!(reply["kind"], json!("invalid"), "{page}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().starts_with("page: "),
            "{reply}"
        );
    }
    read_model.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_report_pages_stay_small_once_expanded() {
    let infra = Infra::start().await;
    let read_model = infra.spawn(Role::ReadModel, "a");
    read_model.ready().await;
    let api = infra.api();
    create(
        &infra,
        "product",
        "p1",
        json!({"name": "A pen with a long name to make it weigh", "price": 2}),
    )
    .await;
    // Every order's cart holds 300 pieces: ~25 KB once expanded.
    create(
        &infra,
        "cart",
        "k1",
        json!({"customer_id": "ann", "product_ids": vec!["p1"; 300]}),
    )
    .await;
    let orders: Vec<String> = (0..120).map(|i| format!("o{i:03}")).collect();
    create_orders(&infra, &orders, "k1").await;
    let (report, sizes) = walk(&api, "get_orders_report", json!({}), 1000).await;
    assert_eq!(ids(&report), orders);
    assert!(sizes.len() >= 4, "pages cut by size: {sizes:?}");
    assert_eq!(report[7]["cart"]["products"].as_array().unwrap().len(), 300);
    let whole = api
        .call(
            "read-model.get_orders_report",
            json!({"after": api.store.heads(&["order", "cart"]).await.unwrap()}),
        )
        .await;
    assert_eq!(whole["kind"], json!("invalid"), "3 MB is not one message");
    read_model.stop().await;
}
