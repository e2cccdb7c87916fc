//! Subscription acks on the event store's `AckStream`, spoken directly
//! and through a subscription, against a real redis-server.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use ordershop_client::{Delivery, EventStore, HandlerError, StartPosition, SubscribeOptions};
use ordershop_event_store::StoreConfig;
use ordershop_proto::eventstore::v1::{self as pb, event_store_client::EventStoreClient};
use ordershop_testkit::{
    Infra, RedisServer, earlier_release::event_store_without, eventually_async,
};
use ordershop_topology::Role;
use redis::AsyncCommands;
use serde_json::json;
use support::{event, unique};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};

const DEADLINE: Duration = Duration::from_secs(20);

/// `count` entries of `topic`, read by `group` and so pending in it.
async fn pending_entries(
    conn: &mut redis::aio::MultiplexedConnection,
    topic: &str,
    group: &str,
    count: usize,
) -> Vec<String> {
    let key = format!("events:{topic}");
    let () = redis::cmd("XGROUP")
        .arg(&["CREATE", &key, group, "$", "MKSTREAM"][..])
        .query_async(conn)
        .await
        .unwrap();
    for n in 0..count {
        let _: String = conn.xadd(&key, "*", &[("n", n)]).await.unwrap();
    }
    let read: redis::streams::StreamReadReply = conn
        .xread_options(
            &[&key],
            &[">"],
            &redis::streams::StreamReadOptions::default().group(group, "reader"),
        )
        .await
        .unwrap();
    read.keys[0]
        .ids
        .iter()
        .map(|entry| entry.id.clone())
        .collect()
}

fn ack(topic: &str, group: &str, ids: &[&String]) -> pb::AckRequest {
    pb::AckRequest {
        topic: topic.to_owned(),
        group: group.to_owned(),
        entry_ids: ids.iter().map(|id| (*id).clone()).collect(),
    }
}

#[tokio::test]
async fn each_batch_on_the_stream_is_answered_in_order_as_the_call_would_answer_it() {
    let infra = Infra::start_secured().await;
    let role = Role::Shipping;
    let topic = role.subscriptions()[0].topic;
    let group = role.service_name();
    let mut conn = infra.redis_conn().await;
    let ids = pending_entries(&mut conn, topic, group, 2).await;

    let channel = Channel::from_shared(infra.event_store_url.clone())
        .unwrap()
        .connect_lazy();
    let mut client = EventStoreClient::with_interceptor(channel, infra.credentials(role));
    let (requests, outgoing) = mpsc::channel(8);
    let batches = [
        ack(topic, group, &[&ids[0]]),
        // No ids: refused, and the stream goes on.
        ack(topic, group, &[]),
        // Acked already: nothing pending by that id.
        ack(topic, group, &[&ids[0]]),
        // Another service's group: not this role's to ack.
        ack(topic, "crm-service", &[&ids[1]]),
        ack(topic, group, &[&ids[1]]),
    ];
    for batch in &batches {
        requests.send(batch.clone()).await.unwrap();
    }
    let mut answers = client
        .ack_stream(ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    for _ in &batches {
        let answer = tokio::time::timeout(DEADLINE, answers.message())
            .await
            .expect("answered within the deadline")
            .expect("a healthy stream")
            .expect("an open stream");
        got.push((Code::from(answer.code), answer.acknowledged));
    }
    assert_eq!(
        got,
        vec![
            (Code::Ok, 1),
            (Code::InvalidArgument, 0),
            (Code::NotFound, 0),
            (Code::PermissionDenied, 0),
            (Code::Ok, 1),
        ]
    );
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(format!("events:{topic}"), group)
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);
}

#[tokio::test]
async fn a_stream_without_a_role_token_is_refused() {
    let infra = Infra::start_secured().await;
    let channel = Channel::from_shared(infra.event_store_url.clone())
        .unwrap()
        .connect_lazy();
    let (_requests, outgoing) = mpsc::channel::<pb::AckRequest>(1);
    let refused = EventStoreClient::new(channel)
        .ack_stream(ReceiverStream::new(outgoing))
        .await
        .expect_err("no token, no stream");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

/// Subscribes `group` to `topic` on `store`, publishes `count` events and
/// waits until each was handled and none is left pending.
async fn handled_and_acked(
    store: EventStore,
    redis: redis::aio::MultiplexedConnection,
    count: usize,
) {
    let topic = unique("acked");
    let group = "acker";
    let handled = Arc::new(Mutex::new(0usize));
    let sink = handled.clone();
    let cancel = CancellationToken::new();
    let task = store.subscribe(
        SubscribeOptions {
            topics: vec![topic.clone()],
            group: group.into(),
            consumer: "one".into(),
            start: StartPosition::Beginning,
            heads_of: Vec::new(),
        },
        cancel.clone(),
        move |_: Delivery| {
            *sink.lock().unwrap() += 1;
            std::future::ready(Ok::<(), HandlerError>(()))
        },
    );
    for n in 0..count {
        store
            .publish(&topic, vec![event("counted", json!({ "n": n }))])
            .await
            .unwrap();
    }
    eventually_async("every event handled and acked", DEADLINE, || {
        let (mut redis, key, handled) = (redis.clone(), format!("events:{topic}"), handled.clone());
        async move {
            let pending: redis::streams::StreamPendingReply =
                redis.xpending(key, group).await.ok()?;
            (*handled.lock().unwrap() >= count && pending.count() == 0).then_some(())
        }
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
}

/// A subscription's acks against an event store without `missing`.
async fn acked_without(missing: &'static str) {
    let redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let url = event_store_without(
        missing,
        redis.url(),
        StoreConfig::default(),
        shutdown.clone(),
    )
    .await;
    let conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    handled_and_acked(EventStore::connect(&url).unwrap(), conn, 30).await;
    shutdown.cancel();
}

/// A server without the `Ack` call: acks that went by calls would stay
/// pending.
#[tokio::test]
async fn a_subscription_acks_on_the_stream() {
    acked_without("Ack").await;
}

#[tokio::test]
async fn an_event_store_without_the_ack_stream_gets_acks_by_calls() {
    acked_without("AckStream").await;
}
