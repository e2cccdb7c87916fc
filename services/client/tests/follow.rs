//! `Follow` against a real redis-server: history then live events, each
//! once and in order, for many followers, slow ones and reconnecting ones.

mod support;

use std::time::Duration;

use ordershop_client::{EventStore, Follow, Recorded};
use serde_json::json;
use support::{event, unique};
use tokio::time::{Instant, timeout_at};
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(30);

/// Publishes `count` events to `topic`, one call each, numbered from `from`.
async fn publish(store: &EventStore, topic: &str, from: u64, count: u64) {
    publish_padded(store, topic, from, count, 0).await;
}

/// Same, each event carrying `pad` bytes more.
async fn publish_padded(store: &EventStore, topic: &str, from: u64, count: u64, pad: usize) {
    let pad = "x".repeat(pad);
    for n in from..from + count {
        store
            .publish(topic, vec![event("e", json!({ "n": n, "pad": pad }))])
            .await
            .unwrap();
    }
}

/// Takes pages until `count` events of `topic` arrived (failing at the
/// deadline), and returns the events of every topic seen meanwhile.
async fn take(follow: &mut Follow, topic: &str, count: usize) -> Vec<Recorded> {
    let deadline = Instant::now() + DEADLINE;
    let mut taken = Vec::new();
    while taken
        .iter()
        .filter(|r: &&Recorded| r.topic == topic)
        .count()
        < count
    {
        let page = timeout_at(deadline, follow.next_page())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{count} events of {topic} not followed within {DEADLINE:?}; got {}",
                    taken.len()
                )
            })
            .unwrap()
            .expect("the stream ended");
        assert!(!page.is_empty(), "empty page");
        let first = &page[0].topic;
        assert!(
            page.iter().all(|r| &r.topic == first),
            "a page mixes topics"
        );
        taken.extend(page);
    }
    taken
}

fn ids(records: &[Recorded], topic: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.topic == topic)
        .map(|r| r.entry_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_get_history_then_live_events_once_and_in_order() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let (a, b) = (unique("fa"), unique("fb"));
    publish(&store, &a, 0, 30).await;
    publish(&store, &b, 0, 5).await;
    let (history, _) = store.read_all(&a, "").await.unwrap();
    let middle = history[9].entry_id.clone();

    let mut whole = store.follow(&[(&a, String::new())]).await.unwrap();
    let mut late = store.follow(&[(&a, middle)]).await.unwrap();
    let mut both = store
        .follow(&[(&a, String::new()), (&b, String::new())])
        .await
        .unwrap();
    // Live events from several publishers while the followers replay.
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let store = infra.event_store();
            let a = a.clone();
            tokio::spawn(async move { publish(&store, &a, 100 * (p + 1), 50).await })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let (all_a, _) = store.read_all(&a, "").await.unwrap();
    let (all_b, _) = store.read_all(&b, "").await.unwrap();
    assert_eq!(all_a.len(), 230);

    let expected = ids(&all_a, &a);
    assert_eq!(ids(&take(&mut whole, &a, 230).await, &a), expected);
    assert_eq!(ids(&take(&mut late, &a, 220).await, &a), expected[10..]);
    let mut both_taken = take(&mut both, &a, 230).await;
    if ids(&both_taken, &b).len() < 5 {
        both_taken.extend(take(&mut both, &b, 5 - ids(&both_taken, &b).len()).await);
    }
    assert_eq!(ids(&both_taken, &a), expected);
    assert_eq!(ids(&both_taken, &b), ids(&all_b, &b));
    assert_eq!(
        both_taken.iter().find(|r| r.topic == a).unwrap().event_data,
        all_a[0].event_data,
        "events arrive whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_stops_reading_still_gets_everything_once() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("slow");
    let mut slow = store.follow(&[(&topic, String::new())]).await.unwrap();
    let mut keen = store.follow(&[(&topic, String::new())]).await.unwrap();
    // One event per call makes about one shared page per event, and big
    // events fill the slow stream's transport window after a few: far more
    // pages than a follower may fall behind by, so the slow one (not
    // reading) loses pages of the fan-out and must replay them from Redis.
    let writer = {
        let store = infra.event_store();
        let topic = topic.clone();
        tokio::spawn(async move { publish_padded(&store, &topic, 0, 3000, 4096).await })
    };
    let keen_ids = ids(&take(&mut keen, &topic, 3000).await, &topic);
    writer.await.unwrap();
    let (all, _) = store.read_all(&topic, "").await.unwrap();
    assert_eq!(keen_ids, ids(&all, &topic));
    assert_eq!(ids(&take(&mut slow, &topic, 3000).await, &topic), keen_ids);
}

#[tokio::test]
async fn a_follower_resumes_after_its_last_entry() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("resume");
    publish(&store, &topic, 0, 10).await;
    let mut first = store.follow(&[(&topic, String::new())]).await.unwrap();
    let seen = take(&mut first, &topic, 10).await;
    drop(first);
    publish(&store, &topic, 10, 10).await;
    let last = seen.last().unwrap().entry_id.clone();
    let mut again = store.follow(&[(&topic, last)]).await.unwrap();
    let rest = take(&mut again, &topic, 10).await;
    let (all, _) = store.read_all(&topic, "").await.unwrap();
    let mut joined = ids(&seen, &topic);
    joined.extend(ids(&rest, &topic));
    assert_eq!(joined, ids(&all, &topic));
}

#[tokio::test]
async fn bad_follow_requests_are_invalid_argument() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let topic = unique("badfollow");
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("Bad Topic", String::new())],
        vec![(&topic, "garbage".into())],
        vec![(&topic, String::new()), (&topic, "1-1".into())],
    ];
    for from in cases {
        let err = store.follow(&from).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{from:?}: {err}");
    }
}
