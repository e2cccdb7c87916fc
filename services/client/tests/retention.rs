//! Retention against a real redis-server: a stream is trimmed only behind
//! every reader that still needs it (the viewers' snapshots, the read
//! model's checkpoint, the consumer groups), and a reader behind the trim
//! is refused instead of handed a gap.

mod support;

use std::collections::BTreeMap;

use ordershop_client::ViewSnapshot;
use ordershop_event_store::retention::{TopicRetention, trim_topic};
use ordershop_redis::Redis;
use ordershop_topology::{EntryId, ReadModelKeys, Role, StreamKeys, snapshot_key};
use serde_json::json;
use tonic::Code;

const TOPIC: &str = "billing";

async fn trim(infra: &support::Infra) -> TopicRetention {
    let redis = Redis::open(infra.redis.url()).unwrap();
    trim_topic(&mut redis.conn(), TOPIC).await.unwrap()
}

/// Delivers up to `count` new entries to the group `saga`.
async fn deliver(infra: &support::Infra, stream: &str, count: usize) {
    let count = count.to_string();
    redis(
        infra,
        &[
            "XREADGROUP",
            "GROUP",
            "saga",
            "c1",
            "COUNT",
            &count,
            "STREAMS",
            stream,
            ">",
        ],
    )
    .await;
}

fn trimmed(before: EntryId, removed: u64) -> TopicRetention {
    TopicRetention::Trimmed { before, removed }
}

fn held(outcome: TopicRetention) -> String {
    match outcome {
        TopicRetention::Held(why) => why,
        other => panic!("expected the topic held whole, got {other:?}"),
    }
}

async fn redis(infra: &support::Infra, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut infra.redis_conn().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stream_is_trimmed_behind_its_oldest_reader_only() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let stored = store
        .publish(
            TOPIC,
            (0..10)
                .map(|i| support::event(&format!("b{i}"), json!({"n": i})))
                .collect(),
        )
        .await
        .unwrap();
    let ids: Vec<String> = stored.into_iter().map(|s| s.entry_id).collect();

    // Nobody has said what they still need: everything stays.
    let viewers: Vec<Role> = Role::viewers(TOPIC).collect();
    assert!(viewers.len() >= 2, "{viewers:?}");
    assert!(held(trim(&infra).await).contains("has stored no snapshot of billing"));

    // Every viewer's snapshot, one of them behind the others.
    for (n, viewer) in viewers.iter().enumerate() {
        let at = if n == 0 { &ids[3] } else { &ids[6] };
        let snapshot = ViewSnapshot {
            format: 1,
            positions: BTreeMap::from([(TOPIC.to_owned(), at.clone())]),
            data: b"view".to_vec(),
            replace_newer: false,
        };
        assert!(
            store
                .put_snapshot(viewer.service_name(), snapshot)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        held(trim(&infra).await),
        "the read model has not folded billing yet"
    );
    let checkpoint = ReadModelKeys::new(TOPIC).checkpoint;
    redis(&infra, &["SET", &checkpoint, &ids[8]]).await;

    // A subscription whose group does not exist yet would start at the
    // first entry kept: the topic stays whole until it does.
    let keys = StreamKeys::new(TOPIC);
    assert!(held(trim(&infra).await).contains("has not been created yet"));
    for subscriber in Role::ALL
        .into_iter()
        .filter(|r| r.subscriptions().iter().any(|s| s.topic == TOPIC))
    {
        redis(
            &infra,
            &[
                "XGROUP",
                "CREATE",
                &keys.stream,
                subscriber.service_name(),
                "$",
            ],
        )
        .await;
    }

    // A consumer group with the first five entries pending holds them.
    redis(&infra, &["XGROUP", "CREATE", &keys.stream, "saga", "0"]).await;
    deliver(&infra, &keys.stream, 5).await;
    let first = EntryId::parse(&ids[0]).unwrap();
    assert_eq!(trim(&infra).await, trimmed(first, 0));
    // Nothing removed, no mark: readers from the start are served.
    assert_eq!(store.read_all(TOPIC, "").await.unwrap().0.len(), 10);

    // Three acknowledged: the oldest snapshot (at the fourth) now decides.
    redis(
        &infra,
        &["XACK", &keys.stream, "saga", &ids[0], &ids[1], &ids[2]],
    )
    .await;
    let fourth = EntryId::parse(&ids[3]).unwrap();
    assert_eq!(trim(&infra).await, trimmed(fourth, 3));
    let left = store.read_all(TOPIC, &ids[2]).await.unwrap().0;
    assert_eq!(
        left.iter().map(|r| r.entry_id.clone()).collect::<Vec<_>>(),
        ids[3..],
        "a reader that has everything removed goes on"
    );
    // From the snapshot on, as a restarted viewer reads.
    assert_eq!(store.read_all(TOPIC, &ids[3]).await.unwrap().0.len(), 6);
    assert_eq!(
        store
            .follow(&[(TOPIC, ids[3].clone())])
            .await
            .unwrap()
            .next_page()
            .await
            .unwrap()
            .unwrap()
            .len(),
        6
    );

    // A reader that would miss removed entries is refused, with why.
    for after in ["", ids[1].as_str()] {
        let err = store.read_all(TOPIC, after).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(err.to_string().contains("removed by retention"), "{err}");
        let err = store
            .follow(&[(TOPIC, after.to_owned())])
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    }

    // A dead letter of an entry still in the stream holds it: a redrive
    // rewinds its group there.
    redis(
        &infra,
        &[
            "XADD", &keys.dead, "*", "entry_id", &ids[5], "group", "saga",
        ],
    )
    .await;
    // The group is done with everything.
    deliver(&infra, &keys.stream, 100).await;
    let mut ack = vec!["XACK", keys.stream.as_str(), "saga"];
    ack.extend(ids[3..].iter().map(String::as_str));
    redis(&infra, &ack).await;
    let sixth = EntryId::parse(&ids[5]).unwrap();
    assert_eq!(
        trim(&infra).await,
        trimmed(fourth, 0),
        "the oldest snapshot still needs the fourth"
    );
    redis(
        &infra,
        &[
            "HSET",
            &snapshot_key(viewers[0].service_name()),
            "pos:billing",
            &ids[7],
        ],
    )
    .await;
    assert_eq!(
        trim(&infra).await,
        trimmed(sixth, 2),
        "the dead letter's entry stays"
    );
    redis(&infra, &["DEL", &keys.dead]).await;

    // The mark never moves back, and trimming again removes nothing more.
    redis(&infra, &["SET", &keys.trimmed, "99999999999999-0"]).await;
    let seventh = EntryId::parse(&ids[6]).unwrap();
    assert_eq!(trim(&infra).await, trimmed(seventh, 1));
    let mark = redis(&infra, &["GET", &keys.trimmed]).await;
    assert_eq!(mark, redis::Value::BulkString(b"99999999999999-0".to_vec()));
}
