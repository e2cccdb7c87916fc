//! The workers against real servers: a redis-server per test, in-process
//! event store and queue servers, and the roles of `ordershop-app`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use ordershop_app::{Settings, ViewSettings};
use ordershop_testkit::eventually_async;
use ordershop_topology::{
    QueueKeys, READ_MODEL_KEY_PATTERN, Role, TOPICS, channel_name, stream_key,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use support::{Api, DEADLINE, Infra, all_ready, stocked_cart};

fn error_kind(reply: &Value) -> &str {
    reply["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {reply}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_its_commands_through_the_queue() {
    let infra = Infra::start().await;
    let roles = infra.spawn_all();
    all_ready(&roles).await;
    let api = infra.api();

    // customer: create, update, read back at once, refusals.
    let reply = api
        .call(
            "customer-service.create_customers",
            json!({"name": "Ann", "email": "ann@example.org"}),
        )
        .await;
    let customer = reply["result"][0].as_str().unwrap().to_string();
    assert!(reply["positions"]["customer"].is_string(), "{reply}");
    let updated = api
        .ok(
            Role::Customer,
            "update_customer",
            json!({"entity_id": customer, "name": "Anna", "email": "ann@example.org"}),
        )
        .await;
    assert_eq!(updated, json!(true));
    assert_eq!(
        api.entity("customer", &customer).await["name"],
        json!("Anna")
    );
    let unknown = api
        .call(
            "customer-service.update_customer",
            json!({"entity_id": "nope", "name": "X", "email": "x@y.z"}),
        )
        .await;
    assert_eq!(error_kind(&unknown), "not_found");
    assert_eq!(unknown["error"], json!("could not find customer"));
    let missing = api
        .call(
            "customer-service.create_customers",
            json!({"name": "NoMail"}),
        )
        .await;
    assert_eq!(error_kind(&missing), "invalid");

    // product: a batch is all or nothing.
    let batch = api
        .call(
            "product-service.create_products",
            json!([{"name": "Pen", "price": 2.5}, {"name": "Bad"}]),
        )
        .await;
    assert_eq!(error_kind(&batch), "invalid");
    assert!(
        api.entities("product").await.is_empty(),
        "half a batch was written"
    );
    let products = api
        .ok(
            Role::Product,
            "create_products",
            json!([{"name": "Pen", "price": 2.5}, {"name": "Ink", "price": 4}]),
        )
        .await;
    let pen = products[0].as_str().unwrap().to_string();
    let ink = products[1].as_str().unwrap().to_string();
    assert_eq!(api.entity("product", &ink).await["price"], json!(4.0));

    // inventory, cart (with the stock rule), order.
    api.create(
        Role::Inventory,
        "inventories",
        json!({"product_id": pen, "amount": 3}),
    )
    .await;
    let greedy = api
        .call(
            "cart-service.create_carts",
            json!({"customer_id": customer, "product_ids": [pen, pen, pen, pen]}),
        )
        .await;
    assert_eq!(error_kind(&greedy), "conflict");
    assert_eq!(
        greedy["error"],
        json!(format!("product {pen} is out of stock"))
    );
    let cart = api
        .create(
            Role::Cart,
            "carts",
            json!({"customer_id": customer, "product_ids": [pen, pen]}),
        )
        .await;
    let order = api.order_in_stock(&cart).await;

    // billing: the amount must be the cart's sum.
    let wrong = api
        .call(
            "billing-service.create_billings",
            json!({"order_id": order, "amount": 1}),
        )
        .await;
    assert_eq!(wrong["error"], json!("amount is not accurate"));
    let billing = api
        .create(
            Role::Billing,
            "billings",
            json!({"order_id": order, "amount": 5.0}),
        )
        .await;
    assert_eq!(api.entity("billing", &billing).await["amount"], json!(5.0));

    // shipping: created by the saga, updated through the queue.
    let shipping = eventually_async("the saga's shipping", DEADLINE, || async {
        let found = api
            .query(
                "get_entity",
                json!({"name": "shipping", "props": {"order_id": order}}),
            )
            .await;
        found["entity_id"].as_str().map(str::to_string)
    })
    .await;
    api.order_reaches(&order, "SHIPPED").await;
    // A customer whose order is on its way cannot leave.
    let needed = api
        .call(
            "customer-service.delete_customer",
            json!({"entity_id": customer}),
        )
        .await;
    assert_eq!(error_kind(&needed), "conflict", "{needed}");
    let delivered = api
        .ok(
            Role::Shipping,
            "update_shipping",
            json!({"entity_id": shipping, "order_id": order, "delivered": 1_700_000_000}),
        )
        .await;
    assert_eq!(delivered, json!(true));
    api.order_reaches(&order, "DELIVERED").await;

    // delete: a free customer goes.
    let bob = api
        .create(
            Role::Customer,
            "customers",
            json!({"name": "Bob", "email": "bob@example.org"}),
        )
        .await;
    api.ok(Role::Customer, "delete_customer", json!({"entity_id": bob}))
        .await;
    assert_eq!(api.entity("customer", &bob).await, Value::Null);

    // mail: one event per key, however often it is sent.
    let request = json!({"to": "x@example.org", "msg": "Dear X!", "key": "test:1"});
    let first = api.call("mail-service.send", request.clone()).await;
    let again = api.call("mail-service.send", request).await;
    assert_eq!(first["result"], json!(true));
    assert_eq!(first["positions"]["mail"], again["positions"]["mail"]);

    // Read-model queries of the contract.
    let unbilled = api.query("get_unbilled_orders", json!({})).await;
    assert!(unbilled.as_object().unwrap().is_empty(), "{unbilled}");
    let delivered = api.query("get_delivered_orders", json!({})).await;
    assert_eq!(delivered[0]["entity_id"], json!(order));
    let by_ids = api
        .query(
            "get_entities",
            json!({"name": "products", "ids": [ink, pen, ink, "nope"]}),
        )
        .await;
    let names: Vec<&str> = by_ids
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ink", "Pen", "Ink"]);
    let unknown = api
        .call(
            "read-model.get_entity",
            json!({"name": "unicorn", "id": "x"}),
        )
        .await;
    assert_eq!(error_kind(&unknown), "invalid");

    for role in roles {
        role.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_saga_runs_to_delivered_and_mails_every_step() {
    let infra = Infra::start().await;
    let roles = infra.spawn_all();
    all_ready(&roles).await;
    let api = infra.api();

    let (_, _, inventory, cart) = stocked_cart(&api, 5, 2).await;
    let order = api.order_in_stock(&cart).await;
    assert_eq!(
        api.entity("inventory", &inventory).await["amount"],
        json!(3)
    );

    api.create(
        Role::Billing,
        "billings",
        json!({"order_id": order, "amount": 5}),
    )
    .await;
    // CLEARED is passed through quickly: the saga creates the shipping.
    api.order_reaches(&order, "SHIPPED").await;
    let shippings = api
        .query(
            "get_entities",
            json!({"name": "shipping", "props": {"order_id": order}}),
        )
        .await;
    let shippings = shippings.as_array().unwrap();
    assert_eq!(shippings.len(), 1, "exactly one shipping: {shippings:?}");
    assert_eq!(shippings[0]["delivered"], json!(0));
    let shipping = shippings[0]["entity_id"].as_str().unwrap();
    api.ok(
        Role::Shipping,
        "update_shipping",
        json!({"entity_id": shipping, "order_id": order, "delivered": 1_700_000_000}),
    )
    .await;
    api.order_reaches(&order, "DELIVERED").await;

    // The status history went through every state, once each.
    let history = order_statuses(&api, &order).await;
    assert_eq!(
        history,
        ["CREATED", "IN_STOCK", "CLEARED", "SHIPPED", "DELIVERED"]
    );

    // Everything settled first, so a late duplicate mail would be counted.
    let mut conn = infra.redis_conn().await;
    drained(&api, &mut conn).await;
    let mails = api.mails().await;
    let messages: Vec<Value> = mails
        .iter()
        .map(|m| serde_json::from_str(m[1]["event_data"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    for message in &messages {
        assert_eq!(message["recipient"], json!("ann@example.org"));
        let text = message["message"].as_str().unwrap();
        assert!(text.starts_with("Dear Ann!\n\n"), "{text}");
        assert!(text.ends_with("\n\nCheers"), "{text}");
    }
    // Mails of different steps may be stored in either order.
    for needle in [
        "Welcome to Ordershop.",
        "Please transfer € 5 ",
        "We've just received € 5 ",
        "We've just shipped order",
    ] {
        let count = messages
            .iter()
            .filter(|m| m["message"].as_str().unwrap().contains(needle))
            .count();
        assert_eq!(count, 1, "{needle:?} in {messages:?}");
    }
    for role in roles {
        role.stop().await;
    }
}

/// The statuses an order went through, from its events.
async fn order_statuses(api: &Api, order: &str) -> Vec<String> {
    let (events, _) = api.store.read_all("order", "").await.unwrap();
    events
        .iter()
        .filter(|e| e.entity_id == order)
        .map(|e| {
            let data: Value = serde_json::from_str(&e.event_data).unwrap();
            data["status"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_racing_for_the_last_units_get_exactly_that_many_in_stock() {
    let infra = Infra::start().await;
    let mut roles = infra.spawn_all();
    // A second inventory and order service: the race crosses processes.
    // These keep no follow stream and read what they lack before each
    // decision (the other way to stay current), so both ways decide in the
    // same race.
    let reading = || Settings {
        view: ViewSettings {
            follow: false,
            ..support::settings().view
        },
        ..support::settings()
    };
    roles.push(infra.spawn_with(Role::Inventory, "b", reading()));
    roles.push(infra.spawn_with(Role::Order, "b", reading()));
    all_ready(&roles).await;
    let api = infra.api();

    let (customer, product, inventory, _) = stocked_cart(&api, 3, 1).await;
    // Six one-piece carts for three pieces (the helper's cart makes one).
    let mut carts = Vec::new();
    for _ in 0..6 {
        carts.push(
            api.create(
                Role::Cart,
                "carts",
                json!({"customer_id": customer, "product_ids": [product]}),
            )
            .await,
        );
    }
    let orders: Vec<String> = join_all(carts.iter().map(|cart| {
        let api = api.clone();
        async move {
            api.create(Role::Order, "orders", json!({"cart_id": cart}))
                .await
        }
    }))
    .await;
    let statuses = eventually_async("every order decided", DEADLINE, || async {
        let mut statuses = BTreeMap::new();
        for order in &orders {
            let status = api.entity("order", order).await["status"].clone();
            if status == json!("CREATED") {
                return None;
            }
            *statuses
                .entry(status.as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        Some(statuses)
    })
    .await;
    assert_eq!(statuses.get("IN_STOCK"), Some(&3), "{statuses:?}");
    assert_eq!(statuses.get("OUT_OF_STOCK"), Some(&3), "{statuses:?}");
    assert_eq!(
        api.entity("inventory", &inventory).await["amount"],
        json!(0)
    );

    for role in roles {
        role.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_saga_events_change_nothing_twice() {
    let infra = Infra::start().await;
    let roles = infra.spawn_all();
    all_ready(&roles).await;
    let api = infra.api();
    let (_, _, inventory, cart) = stocked_cart(&api, 5, 2).await;
    let order = api.order_in_stock(&cart).await;
    api.create(
        Role::Billing,
        "billings",
        json!({"order_id": order, "amount": 5}),
    )
    .await;
    api.order_reaches(&order, "SHIPPED").await;
    eventually_async("four mails", DEADLINE, || async {
        (api.mails().await.len() == 4).then_some(())
    })
    .await;
    let mut conn = infra.redis_conn().await;
    drained(&api, &mut conn).await;
    let lengths_before = stream_lengths(&mut conn).await;
    let state_before = api.everything().await;

    // Every saga group sees its whole history again.
    for role in [Role::Inventory, Role::Order, Role::Shipping, Role::Crm] {
        for sub in role.subscriptions() {
            let _: () = redis::cmd("XGROUP")
                .arg("SETID")
                .arg(stream_key(sub.topic))
                .arg(role.service_name())
                .arg("0")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    drained(&api, &mut conn).await;

    assert_eq!(
        stream_lengths(&mut conn).await,
        lengths_before,
        "new events appeared"
    );
    assert_eq!(api.everything().await, state_before);
    assert_eq!(
        api.entity("inventory", &inventory).await["amount"],
        json!(3)
    );
    for role in roles {
        role.stop().await;
    }
}

/// Waits until every saga group has handled and acked everything, and the
/// queue channels the sagas feed are empty.
async fn drained(api: &Api, conn: &mut redis::aio::MultiplexedConnection) {
    eventually_async("sagas drained", DEADLINE, || {
        let mut conn = conn.clone();
        async move {
            let heads = api.store.heads(TOPICS).await.ok()?;
            for role in [Role::Inventory, Role::Order, Role::Shipping, Role::Crm] {
                for sub in role.subscriptions() {
                    let groups: redis::streams::StreamInfoGroupsReply =
                        conn.xinfo_groups(stream_key(sub.topic)).await.ok()?;
                    let group = groups
                        .groups
                        .iter()
                        .find(|g| g.name == role.service_name())?;
                    if group.pending > 0 || group.last_delivered_id != heads[sub.topic] {
                        return None;
                    }
                }
            }
            for channel in [
                channel_name(Role::Order.service_name(), "set_status"),
                channel_name(Role::Mail.service_name(), "send"),
            ] {
                let keys = QueueKeys::new(&channel);
                let waiting: usize = conn.llen(&keys.waiting).await.ok()?;
                let inflight: usize = conn.llen(&keys.inflight).await.ok()?;
                let delayed: usize = conn.zcard(&keys.delayed).await.ok()?;
                if waiting + inflight + delayed > 0 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
}

async fn stream_lengths(conn: &mut redis::aio::MultiplexedConnection) -> Vec<usize> {
    let mut lengths = Vec::new();
    for topic in TOPICS {
        lengths.push(conn.xlen(stream_key(topic)).await.unwrap());
    }
    lengths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_survives_restarts_and_rebuilds_a_flushed_cache() {
    let infra = Infra::start().await;
    let mut roles = infra.spawn_all();
    all_ready(&roles).await;
    let api = infra.api();
    let (_, _, _, cart) = stocked_cart(&api, 5, 2).await;
    api.order_in_stock(&cart).await;
    let mut conn = infra.redis_conn().await;
    drained(&api, &mut conn).await;
    let before = api.everything().await;
    assert_eq!(before["order"][0]["status"], json!("IN_STOCK"));

    // Restart: the new instance resumes from the checkpoints.
    let at = roles
        .iter()
        .position(|r| r.role == Role::ReadModel)
        .unwrap();
    let read_model = roles.remove(at);
    read_model.stop().await;
    let restarted = infra.spawn(Role::ReadModel, "b");
    restarted.ready().await;
    assert_eq!(api.everything().await, before);

    // Writes while the read model is down are caught up after a restart.
    restarted.stop().await;
    let late = api
        .create(
            Role::Customer,
            "customers",
            json!({"name": "Late", "email": "late@example.org"}),
        )
        .await;
    let first = infra.spawn(Role::ReadModel, "a");
    let second = infra.spawn(Role::ReadModel, "b");
    assert_eq!(api.entity("customer", &late).await["name"], json!("Late"));
    drained(&api, &mut conn).await;
    let mut after_restart = before.clone();
    let everything = api.everything().await;
    after_restart.insert("customer".into(), everything["customer"].clone());
    after_restart.insert("mails".into(), everything["mails"].clone());
    assert_eq!(everything, after_restart);

    // Flush: both replicas rebuild the same state into the shared cache.
    let keys: Vec<String> = conn
        .scan_match::<_, String>(READ_MODEL_KEY_PATTERN)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert!(!keys.is_empty());
    let _: () = conn.del(&keys).await.unwrap();
    assert_eq!(api.everything().await, everything);
    for key in keys {
        let exists: bool = conn.exists(&key).await.unwrap();
        assert!(exists, "{key} was not rebuilt");
    }
    first.stop().await;
    second.stop().await;
    for role in roles {
        role.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_of_a_service_have_no_double_effects() {
    let infra = Infra::start().await;
    let roles = vec![
        infra.spawn(Role::Product, "a"),
        infra.spawn(Role::Product, "b"),
        infra.spawn(Role::Customer, "a"),
        infra.spawn(Role::Customer, "b"),
    ];
    all_ready(&roles).await;
    let api = infra.api();
    let product = api
        .create(
            Role::Product,
            "products",
            json!({"name": "Pen", "price": 1}),
        )
        .await;

    // Twenty updates of one product race across both replicas: each is
    // applied exactly once, on top of the one before.
    let updates = join_all((2..22).map(|price| {
        let api = api.clone();
        let product = product.clone();
        async move {
            api.call(
                "product-service.update_product",
                json!({"entity_id": product, "name": "Pen", "price": price}),
            )
            .await
        }
    }))
    .await;
    for reply in &updates {
        assert_eq!(reply["result"], json!(true), "{reply}");
    }
    let (events, _) = api.store.read_all("product", "").await.unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=21).collect::<Vec<u64>>());

    // Creates sent twice each (a client retry with the same key) and
    // served by both replicas: one customer per create.
    let sends = join_all((0..20).map(|i| {
        let api = api.clone();
        async move {
            let payload = json!({"name": format!("C{i}"), "email": "c@example.org"}).to_string();
            let key = format!("create-customer-{i}");
            let a = api
                .queue
                .send("customer-service.create_customers", &payload, &key)
                .await
                .unwrap();
            let b = api
                .queue
                .send("customer-service.create_customers", &payload, &key)
                .await
                .unwrap();
            assert_eq!(a, b);
            a
        }
    }))
    .await;
    for id in &sends {
        let reply = api
            .queue
            .await_response(
                "customer-service.create_customers",
                id,
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert!(reply["result"][0].is_string(), "{reply}");
    }
    let (customers, _) = api.store.read_all("customer", "").await.unwrap();
    assert_eq!(customers.len(), 20);
    for role in roles {
        role.stop().await;
    }
}

/// Redis restarted without its last writes (possible with appendfsync
/// everysec when a slow fsync held the file back): the store is now behind
/// a service's view, which cannot unfold what it folded. The service must
/// not decide on that view forever (every append would conflict): it ends
/// with an error, its supervisor restarts it, and the new one replays the
/// store as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_view_is_ahead_of_the_store_restarts_and_replays_it() {
    let infra = Infra::start().await;
    let product = infra.spawn(Role::Product, "a");
    product.ready().await;
    let api = infra.api();
    let kept = api
        .create(
            Role::Product,
            "products",
            json!({"name": "Kept", "price": 1}),
        )
        .await;
    let lost = api
        .create(
            Role::Product,
            "products",
            json!({"name": "Lost", "price": 2}),
        )
        .await;

    // What Redis would look like after losing the last append: the entry,
    // its version and event id gone, the head back at the one before.
    let mut conn = infra.redis_conn().await;
    let keys = ordershop_topology::StreamKeys::new("product");
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&keys.stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (last, fields) = entries.last().unwrap();
    let event_id = &fields.iter().find(|(k, _)| k == "event_id").unwrap().1;
    let (before, _) = &entries[entries.len() - 2];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let window = ordershop_event_store::StoreConfig::default().event_id_window;
    let bucket = ordershop_topology::event_id_bucket(now.as_secs(), window.as_secs());
    let _: () = redis::pipe()
        .cmd("XDEL")
        .arg(&keys.stream)
        .arg(last)
        .ignore()
        .cmd("HDEL")
        .arg(&keys.versions)
        .arg(&lost)
        .ignore()
        // The store's record of the event id, in the window bucket it
        // was stored in: this one or, just past a boundary, the one before.
        .cmd("HDEL")
        .arg(keys.event_ids(bucket))
        .arg(event_id)
        .ignore()
        .cmd("HDEL")
        .arg(keys.event_ids(bucket - 1))
        .arg(event_id)
        .ignore()
        .cmd("SET")
        .arg(&keys.head)
        .arg(before)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    // Its next decision catches up, finds the store behind and ends the
    // role; the command stays queued for the restarted one.
    api.queue
        .send(
            "product-service.update_product",
            &json!({"entity_id": kept, "name": "Kept", "price": 3}).to_string(),
            "",
        )
        .await
        .unwrap();
    assert!(matches!(
        product.ended().await,
        Err(ordershop_app::AppError::StoreBehindView)
    ));

    // Restarted, it replays the store as it is: the lost product is gone,
    // the update applies.
    let product = infra.spawn(Role::Product, "a");
    product.ready().await;
    api.ok(
        Role::Product,
        "update_product",
        json!({"entity_id": kept, "name": "Kept", "price": 3}),
    )
    .await;
    let reply = api
        .call(
            "product-service.update_product",
            json!({"entity_id": lost, "name": "Lost", "price": 4}),
        )
        .await;
    assert_eq!(error_kind(&reply), "not_found", "{reply}");
    product.stop().await;
}
