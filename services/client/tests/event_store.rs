//! The event store through its gRPC API, against a real redis-server.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use ordershop_client::{Append, Delivery, HandlerError, StartPosition, SubscribeOptions};
use ordershop_proto::eventstore::v1 as pb;
use ordershop_testkit::eventually_async;
use redis::AsyncCommands;
use serde_json::json;
use support::{event, unique};
use tokio_util::sync::CancellationToken;
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_publishers_lose_nothing_and_keep_entity_order() {
    let infra = support::infra().await;
    let topic = unique("load");
    let mut tasks = Vec::new();
    for publisher in 0..20 {
        let store = infra.event_store();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let entity = format!("entity-{publisher}");
            let mut failures = 0;
            for seq in 0..1000u64 {
                let mut append = event(&entity, json!({"publisher": publisher, "seq": seq}));
                append.expected_version = Some(seq);
                if store.publish(&topic, vec![append]).await.is_err() {
                    failures += 1;
                }
            }
            failures
        }));
    }
    let mut failures = 0;
    for task in tasks {
        failures += task.await.unwrap();
    }
    assert_eq!(failures, 0, "publishes failed");

    let (events, _) = infra.event_store().read_all(&topic, "").await.unwrap();
    assert_eq!(events.len(), 20_000);
    let mut next_seq: HashMap<String, u64> = HashMap::new();
    for e in &events {
        let data: serde_json::Value = serde_json::from_str(&e.event_data).unwrap();
        let expected = next_seq.entry(e.entity_id.clone()).or_default();
        assert_eq!(
            data["seq"],
            json!(*expected),
            "order broken for {}",
            e.entity_id
        );
        assert_eq!(e.version, *expected + 1);
        *expected += 1;
    }
}

#[tokio::test]
async fn the_same_event_id_is_stored_once() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("dedup");
    let mut append = event("a", json!({"n": 1}));
    append.event_id = uuid::Uuid::new_v4().to_string();
    let first = store.publish(&topic, vec![append.clone()]).await.unwrap();
    let second = store.publish(&topic, vec![append]).await.unwrap();
    assert!(!first[0].duplicate);
    assert!(second[0].duplicate);
    assert_eq!(first[0].entry_id, second[0].entry_id);
    let (events, _) = store.read_all(&topic, "").await.unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn a_stale_expected_version_is_refused_and_the_batch_writes_nothing() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("occ");
    store
        .publish(&topic, vec![event("a", json!({}))])
        .await
        .unwrap();

    // Second event of the batch conflicts: the first must not be stored.
    let fine = event("b", json!({}));
    let mut stale = event("a", json!({}));
    stale.expected_version = Some(0);
    let err = store.publish(&topic, vec![fine, stale]).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err}");
    let (events, _) = store.read_all(&topic, "").await.unwrap();
    assert_eq!(events.len(), 1, "a refused batch wrote something");

    let mut current = event("a", json!({}));
    current.expected_version = Some(1);
    let stored = store.publish(&topic, vec![current]).await.unwrap();
    assert_eq!(stored[0].version, 2);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_writes_nothing() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("bad");
    let cases: Vec<(&str, Append)> = vec![
        ("Bad Topic", event("a", json!({}))),
        ("", event("a", json!({}))),
        (
            &topic,
            Append {
                event_data: "{not json".into(),
                ..event("a", json!({}))
            },
        ),
        (
            &topic,
            Append {
                event_action: String::new(),
                ..event("a", json!({}))
            },
        ),
        (
            &topic,
            Append {
                event_id: "not-a-uuid".into(),
                ..event("a", json!({}))
            },
        ),
        (
            &topic,
            Append {
                event_data: format!("\"{}\"", "x".repeat(1024 * 1024 + 1)),
                ..event("a", json!({}))
            },
        ),
    ];
    for (t, append) in cases {
        let err = store.publish(t, vec![append]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{t:?}: {err}");
    }
    let heads = store.heads(&[&topic]).await.unwrap();
    assert_eq!(heads[&topic], "0-0");

    let err = store
        .read(&topic, "garbage", 10, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = store.ack(&topic, "nobody", "1-1").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
}

#[tokio::test]
async fn replay_pages_in_order() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("page");
    let batch: Vec<_> = (0..250).map(|i| event("e", json!({"i": i}))).collect();
    store.publish(&topic, batch).await.unwrap();
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let (page, next) = store
            .read(&topic, &cursor, 100, Duration::ZERO)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 100);
        seen.extend(page.into_iter().map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.event_data).unwrap()["i"]
                .as_i64()
                .unwrap()
        }));
        cursor = next;
    }
    assert_eq!(seen, (0..250).collect::<Vec<_>>());
}

fn collect_into(
    sink: Arc<Mutex<Vec<(String, u32)>>>,
) -> impl Fn(Delivery) -> std::future::Ready<Result<(), HandlerError>> {
    move |delivery| {
        sink.lock()
            .unwrap()
            .push((delivery.event.event_data, delivery.count));
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn an_event_left_unacked_by_a_dead_subscriber_goes_to_another() {
    let infra = support::infra().await;
    let topic = unique("claim");
    let group = "svc";
    // Subscriber A takes the event over the raw API and dies before acking.
    let mut raw = pb::event_store_client::EventStoreClient::connect(infra.event_store_url.clone())
        .await
        .unwrap();
    let mut stream = raw
        .subscribe(pb::SubscribeRequest {
            topics: vec![topic.clone()],
            group: group.into(),
            consumer: "a".into(),
            start: StartPosition::Beginning as i32,
            batch_size: 10,
            heads_of: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let store = infra.event_store();
    store
        .publish(&topic, vec![event("x", json!({"v": 1}))])
        .await
        .unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.delivery_count, 1);
    drop(stream);
    drop(raw);

    // Subscriber B, same group, gets it once A's claim timeout has passed.
    let got = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let options = SubscribeOptions {
        topics: vec![topic.clone()],
        group: group.into(),
        consumer: "b".into(),
        start: StartPosition::Beginning,
        heads_of: Vec::new(),
    };
    let task = store.subscribe(options, cancel.clone(), collect_into(got.clone()));
    let delivered = eventually_async("redelivery to b", DEADLINE, || {
        let got = got.clone();
        async move { got.lock().unwrap().first().cloned() }
    })
    .await;
    assert_eq!(delivered.1, 2, "second delivery");
    cancel.cancel();
    task.await.unwrap();

    // Acked by B (acks leave in batches, after the handler): nothing
    // pending any more.
    let conn = infra.redis_conn().await;
    eventually_async("the redelivered entry acked", DEADLINE, || {
        let mut conn = conn.clone();
        let key = format!("events:{topic}");
        async move {
            let pending: redis::streams::StreamPendingReply =
                conn.xpending(key, group).await.unwrap();
            (pending.count() == 0).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn deliveries_carry_heads_read_after_their_event() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let (topic, other) = (unique("heads"), unique("headsother"));
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let cancel = CancellationToken::new();
    let options = SubscribeOptions {
        topics: vec![topic.clone()],
        group: "g".into(),
        consumer: "c".into(),
        start: StartPosition::Beginning,
        heads_of: vec![topic.clone(), other.clone()],
    };
    // Subscribed (and waiting) before anything is published, so heads read
    // before the event was would miss both entries below.
    let task = store.subscribe(options, cancel.clone(), move |delivery: Delivery| {
        sink.lock().unwrap().push(delivery);
        std::future::ready(Ok(()))
    });
    // Published before the subscribed event: its position must be covered.
    let earlier = store
        .publish(&other, vec![event("o", json!({"n": 1}))])
        .await
        .unwrap();
    let trigger = store
        .publish(&topic, vec![event("t", json!({"n": 2}))])
        .await
        .unwrap();
    let delivery = eventually_async("the delivery", DEADLINE, || {
        let got = got.clone();
        async move { got.lock().unwrap().first().cloned() }
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(delivery.event.entry_id, trigger[0].entry_id);
    assert_eq!(delivery.heads[&topic], trigger[0].entry_id);
    assert_eq!(delivery.heads[&other], earlier[0].entry_id);
    assert_eq!(delivery.heads.len(), 2);

    // Naming an invalid topic for heads refuses the subscription.
    let mut raw = pb::event_store_client::EventStoreClient::connect(infra.event_store_url.clone())
        .await
        .unwrap();
    let refused = raw
        .subscribe(pb::SubscribeRequest {
            topics: vec![topic.clone()],
            group: "g".into(),
            consumer: "c".into(),
            start: StartPosition::Beginning as i32,
            batch_size: 1,
            heads_of: vec!["Not A Topic".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_service_that_was_down_gets_everything_published_meanwhile() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("down");
    let options = SubscribeOptions {
        topics: vec![topic.clone()],
        group: "late".into(),
        consumer: "one".into(),
        start: StartPosition::Beginning,
        heads_of: Vec::new(),
    };
    // Up: sees the first event. Then it stops.
    let got = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let task = store.subscribe(options.clone(), cancel.clone(), collect_into(got.clone()));
    store
        .publish(&topic, vec![event("x", json!({"n": 0}))])
        .await
        .unwrap();
    eventually_async("first event", DEADLINE, || {
        let got = got.clone();
        async move { (got.lock().unwrap().len() == 1).then_some(()) }
    })
    .await;
    cancel.cancel();
    task.await.unwrap();

    // Down: 50 events.
    let batch: Vec<_> = (1..=50).map(|n| event("x", json!({"n": n}))).collect();
    store.publish(&topic, batch).await.unwrap();

    // Back (as a new instance): receives all 50, in order, none twice.
    let cancel = CancellationToken::new();
    let restarted = SubscribeOptions {
        consumer: "two".into(),
        ..options
    };
    let task = store.subscribe(restarted, cancel.clone(), collect_into(got.clone()));
    eventually_async("the 50 missed events", DEADLINE, || {
        let got = got.clone();
        async move { (got.lock().unwrap().len() >= 51).then_some(()) }
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    let numbers: Vec<i64> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(data, _)| {
            serde_json::from_str::<serde_json::Value>(data).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers, (0..=50).collect::<Vec<_>>());
}

/// A refused event comes back, with a growing delivery count, for as long
/// as it takes — well past the poison limit — and is never dead-lettered
/// (the saga trigger a paid order waits for must not be dropped); a
/// permanent refusal is dead-lettered at once, with its reason.
#[tokio::test]
async fn a_refused_event_is_retried_until_it_applies_and_only_a_permanent_one_is_dead_lettered() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("retry");
    let refusals = support::MAX_DELIVERIES + 2;
    store
        .publish(
            &topic,
            vec![event("late", json!({})), event("invalid", json!({}))],
        )
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let log = seen.clone();
    let cancel = CancellationToken::new();
    let task = store.subscribe(
        SubscribeOptions {
            topics: vec![topic.clone()],
            group: "g".into(),
            consumer: "c".into(),
            start: StartPosition::Beginning,
            heads_of: Vec::new(),
        },
        cancel.clone(),
        move |delivery: Delivery| {
            let entity = delivery.event.entity_id.clone();
            log.lock().unwrap().push((entity.clone(), delivery.count));
            std::future::ready(if entity == "invalid" {
                Err(HandlerError::permanent("never valid"))
            } else if delivery.count <= refusals {
                Err(HandlerError::retry_after(
                    "not yet",
                    Duration::from_millis(10),
                ))
            } else {
                Ok(())
            })
        },
    );
    let conn = infra.redis_conn().await;
    eventually_async("the late event applied and acked", DEADLINE, || {
        let (seen, mut conn, topic) = (seen.clone(), conn.clone(), topic.clone());
        async move {
            let late = seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(e, _)| e == "late")
                .count();
            let pending: redis::streams::StreamPendingReply =
                conn.xpending(format!("events:{topic}"), "g").await.unwrap();
            (late as u32 == refusals + 1 && pending.count() == 0).then_some(())
        }
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let late: Vec<u32> = seen
        .iter()
        .filter(|(e, _)| e == "late")
        .map(|(_, count)| *count)
        .collect();
    assert_eq!(late, (1..=refusals + 1).collect::<Vec<_>>());
    assert_eq!(seen.iter().filter(|(e, _)| e == "invalid").count(), 1);
    let mut conn = conn.clone();
    let dead: redis::streams::StreamRangeReply = conn
        .xrange_all(ordershop_topology::dead_letter_stream(&topic))
        .await
        .unwrap();
    assert_eq!(dead.ids.len(), 1, "only the invalid event is dead-lettered");
    let fields = &dead.ids[0];
    assert_eq!(
        fields.get::<String>("entity_id").as_deref(),
        Some("invalid")
    );
    assert_eq!(
        fields.get::<String>("reason").as_deref(),
        Some("never valid")
    );
}

/// An event whose consumer dies every time it holds it is poison:
/// dead-lettered, with the reason, after the limit of deliveries in a row
/// without an answer, so it cannot hold the group up for good.
#[tokio::test]
async fn an_event_delivered_too_often_without_an_answer_is_dead_lettered() {
    let infra = support::infra().await;
    let topic = unique("poison");
    infra
        .event_store()
        .publish(&topic, vec![event("x", json!({}))])
        .await
        .unwrap();
    let subscribe = |consumer: String| {
        let url = infra.event_store_url.clone();
        let topic = topic.clone();
        async move {
            let mut raw = pb::event_store_client::EventStoreClient::connect(url)
                .await
                .unwrap();
            raw.subscribe(pb::SubscribeRequest {
                topics: vec![topic],
                group: "g".into(),
                consumer,
                start: StartPosition::Beginning as i32,
                batch_size: 10,
                heads_of: Vec::new(),
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    // Each consumer takes the event and dies without an answer; the next
    // one claims it after the claim timeout.
    for attempt in 1..=support::MAX_DELIVERIES {
        let mut stream = subscribe(format!("c{attempt}")).await;
        let delivery = stream.message().await.unwrap().unwrap();
        assert_eq!(delivery.delivery_count, attempt);
    }
    let _last = subscribe("survivor".into()).await;
    let conn = infra.redis_conn().await;
    let dead_key = ordershop_topology::dead_letter_stream(&topic);
    let dead = eventually_async("the poison event dead-lettered", DEADLINE, || {
        let (mut conn, dead_key) = (conn.clone(), dead_key.clone());
        async move {
            let dead: redis::streams::StreamRangeReply = conn.xrange_all(&dead_key).await.unwrap();
            dead.ids.into_iter().next()
        }
    })
    .await;
    let reason: String = dead.get("reason").unwrap();
    assert!(reason.contains("without an answer"), "{reason}");
    let mut conn = conn.clone();
    let pending: redis::streams::StreamPendingReply =
        conn.xpending(format!("events:{topic}"), "g").await.unwrap();
    assert_eq!(pending.count(), 0, "dead-lettered entries are acked");
}

#[tokio::test]
async fn redis_down_is_unavailable_and_publishing_recovers() {
    let mut infra = support::infra().await;
    let topic = unique("outage");
    let store = infra.event_store();
    store
        .publish(&topic, vec![event("x", json!({}))])
        .await
        .unwrap();

    infra.redis.kill();
    let mut raw = pb::event_store_client::EventStoreClient::connect(infra.event_store_url.clone())
        .await
        .unwrap();
    let status = raw
        .publish(pb::PublishRequest {
            topic: topic.clone(),
            events: vec![pb::Append {
                event: Some(pb::Event {
                    event_action: "entity_created".into(),
                    event_data: "{}".into(),
                    ..Default::default()
                }),
                expected_version: None,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    infra.redis.restart(&[]).unwrap();
    eventually_async("publishing works again", DEADLINE, || {
        let store = store.clone();
        let topic = topic.clone();
        async move {
            store
                .publish(&topic, vec![event("y", json!({}))])
                .await
                .ok()
        }
    })
    .await;
}

#[tokio::test]
async fn shared_heads_are_read_after_the_call_and_shared_by_waiting_callers() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let (a, b) = (unique("shared"), unique("sharedb"));
    let shared = ordershop_client::SharedHeads::new(store.clone(), &[&a, &b]);
    assert_eq!(shared.current().await.unwrap()[&a], "0-0");
    // Published after that read: the next call must not answer from it.
    let stored = store
        .publish(&a, vec![event("e", json!({}))])
        .await
        .unwrap();
    assert_eq!(shared.current().await.unwrap()[&a], stored[0].entry_id);

    infra.redis_admin(&["CONFIG", "RESETSTAT"]).await;
    let answers = futures::future::join_all((0..50).map(|_| shared.current())).await;
    for heads in answers {
        assert_eq!(heads.unwrap()[&a], stored[0].entry_id);
    }
    // The first caller's read, then one more for everybody who arrived
    // while it was in flight: two reads (one MGET of both head keys each),
    // not fifty, and no stream read once the head keys exist.
    let stats = infra.redis_info("commandstats").await;
    let calls = |command: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    };
    assert!(calls("mget") >= 1, "{stats}");
    assert!(
        calls("mget") <= 2,
        "{} MGET for 50 concurrent callers",
        calls("mget")
    );
    assert_eq!(calls("xrevrange"), 0, "{stats}");
}

#[tokio::test]
async fn heads_of_streams_older_than_their_head_keys_are_read_from_the_streams() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("oldhead");
    let stored = store
        .publish(&topic, vec![event("e", json!({}))])
        .await
        .unwrap();
    // As a stream written before the publish script kept head keys.
    let head_key = ordershop_topology::StreamKeys::new(&topic).head;
    infra.redis_admin(&["DEL", &head_key]).await;
    let heads = store.heads(&[topic.as_str()]).await.unwrap();
    assert_eq!(heads[&topic], stored[0].entry_id);
    let mut conn = infra.redis_conn().await;
    let kept: Option<String> = redis::AsyncCommands::get(&mut conn, &head_key)
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some(stored[0].entry_id.as_str()),
        "set for the next read"
    );
    // A topic never written to is "0-0", and so is its key until a publish.
    let empty = unique("emptyhead");
    assert_eq!(store.heads(&[empty.as_str()]).await.unwrap()[&empty], "0-0");
    let stored = store
        .publish(&empty, vec![event("e", json!({}))])
        .await
        .unwrap();
    assert_eq!(
        store.heads(&[empty.as_str()]).await.unwrap()[&empty],
        stored[0].entry_id
    );
}

/// A full Redis (maxmemory reached, noeviction) refuses writes with a
/// reason a person can act on, loses nothing it had, and takes writes
/// again once there is room.
#[tokio::test]
async fn a_full_redis_refuses_writes_readably_and_recovers() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let queue = infra.queue("sender");
    let topic = unique("full");
    store
        .publish(&topic, vec![event("before", json!({}))])
        .await
        .unwrap();
    infra
        .redis_admin(&["CONFIG", "SET", "maxmemory", "1"])
        .await;
    let refused = store
        .publish(&topic, vec![event("during", json!({}))])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    assert!(refused.to_string().contains("Redis is full"), "{refused}");
    let refused = queue.send("svc.full", "{}", "").await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    infra
        .redis_admin(&["CONFIG", "SET", "maxmemory", "0"])
        .await;
    store
        .publish(&topic, vec![event("after", json!({}))])
        .await
        .unwrap();
    queue.send("svc.full", "{}", "").await.unwrap();
    let (page, _) = store.read(&topic, "", 10, Duration::ZERO).await.unwrap();
    let entities: Vec<&str> = page.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(entities, ["before", "after"]);
}

/// Consumers of pods long gone are forgotten; one with entries pending, or
/// one still reading, stays.
#[tokio::test]
async fn idle_consumers_with_nothing_pending_are_removed_from_their_groups() {
    let infra = support::infra().await;
    let topic = unique("prune");
    let stream = format!("events:{topic}");
    infra
        .event_store()
        .publish(&topic, vec![event("x", json!({}))])
        .await
        .unwrap();
    let mut conn = infra.redis_conn().await;
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    // `gone` read nothing; `holding` holds the entry unacked.
    let () = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&stream)
        .arg("g")
        .arg("gone")
        .query_async(&mut conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("holding")
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let consumers = |conn: redis::aio::MultiplexedConnection| {
        let stream = stream.clone();
        async move {
            let mut conn = conn;
            let reply: redis::streams::StreamInfoConsumersReply =
                conn.xinfo_consumers(&stream, "g").await.unwrap();
            let mut names: Vec<String> = reply.consumers.into_iter().map(|c| c.name).collect();
            names.sort();
            names
        }
    };
    // Nobody is idle for an hour yet.
    let redis = ordershop_redis::Redis::open(infra.redis.url()).unwrap();
    let idle = Duration::from_secs(3600);
    assert_eq!(
        ordershop_event_store::housekeeping::prune_idle_consumers(&redis, idle)
            .await
            .unwrap(),
        0
    );
    assert_eq!(consumers(conn.clone()).await, ["gone", "holding"]);
    // With a threshold the two have passed, only the one without pending
    // entries goes.
    let removed = eventually_async("the idle consumer removed", DEADLINE, || {
        let redis = redis.clone();
        async move {
            let removed = ordershop_event_store::housekeeping::prune_idle_consumers(
                &redis,
                Duration::from_millis(50),
            )
            .await
            .unwrap();
            (removed > 0).then_some(removed)
        }
    })
    .await;
    assert_eq!(removed, 1);
    assert_eq!(consumers(conn.clone()).await, ["holding"]);
}
