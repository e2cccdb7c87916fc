//! Event ids are stored once within a window, against a real redis-server:
//! a retried publish is recognised while its window bucket or the next is
//! current, and the records expire instead of growing forever; the one
//! hash of earlier releases is still read, and expires.

mod support;

use std::time::Duration;

use ordershop_client::{Append, EventStore};
use ordershop_event_store::{StoreConfig, housekeeping::retire_legacy_event_ids};
use ordershop_message_queue::{Channels, QueueConfig};
use ordershop_redis::Redis;
use ordershop_testkit::Infra;
use ordershop_topology::{StreamKeys, event_id_bucket};
use redis::AsyncCommands;
use serde_json::json;

/// A day, as by default: a bucket boundary (midnight UTC) falls inside a
/// test once in a very long while, and the tests step around it.
const WINDOW: Duration = Duration::from_secs(86_400);
const TOPIC: &str = "product";
const E1: &str = "6f1c2d3e-0000-4000-8000-000000000001";
const OLD: &str = "6f1c2d3e-0000-4000-8000-000000000002";
const OLDER: &str = "6f1c2d3e-0000-4000-8000-000000000003";

async fn infra() -> Infra {
    let store = StoreConfig {
        event_id_window: WINDOW,
        ..StoreConfig::default()
    };
    let queue = QueueConfig {
        channels: Channels::Any,
        ..QueueConfig::default()
    };
    Infra::start_with(store, queue).await
}

fn bucket() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    event_id_bucket(now.as_secs(), WINDOW.as_secs())
}

fn append(event_id: &str) -> Append {
    Append {
        event_id: event_id.into(),
        ..support::event("p1", json!({"name": "x"}))
    }
}

/// Publishes `event_id` once; whether the store took it for a duplicate,
/// and the entry id it answered with.
async fn publish(store: &EventStore, event_id: &str) -> (bool, String) {
    let stored = store.publish(TOPIC, vec![append(event_id)]).await.unwrap();
    (stored[0].duplicate, stored[0].entry_id.clone())
}

#[tokio::test]
async fn an_event_id_is_known_for_its_window_and_then_forgotten() {
    clear_of_a_boundary().await;
    let infra = infra().await;
    let store = infra.event_store();
    let keys = StreamKeys::new(TOPIC);
    let mut redis = infra.redis_conn().await;

    let (duplicate, first) = publish(&store, E1).await;
    assert!(!duplicate);
    let current = keys.event_ids(bucket());
    let ttl: i64 = redis.ttl(&current).await.unwrap();
    assert!(
        ttl > WINDOW.as_secs() as i64 && ttl <= 2 * WINDOW.as_secs() as i64,
        "the bucket's hash expires after the bucket that still looks at it: {ttl} s"
    );
    assert_eq!(publish(&store, E1).await, (true, first.clone()));

    // The window moves on: this bucket becomes the one before, still
    // looked at.
    let () = redis
        .rename(&current, keys.event_ids(bucket() - 1))
        .await
        .unwrap();
    assert_eq!(publish(&store, E1).await, (true, first.clone()));

    // And then it expires: the id is new again (a view still knows the
    // event, which is what keeps a late retry from changing anything).
    let () = redis.del(keys.event_ids(bucket() - 1)).await.unwrap();
    let (duplicate, again) = publish(&store, E1).await;
    assert!(!duplicate);
    assert_ne!(again, first);
}

#[tokio::test]
async fn the_hash_of_an_earlier_release_is_still_read_and_then_expires() {
    let infra = infra().await;
    let store = infra.event_store();
    let keys = StreamKeys::new(TOPIC);
    let mut redis = infra.redis_conn().await;
    // What an earlier release stored: one hash, no expiry.
    let () = redis
        .hset(&keys.legacy_event_ids, OLD, "1-1 1")
        .await
        .unwrap();
    // Still known: a retry of a publish from before the upgrade.
    assert_eq!(publish(&store, OLD).await, (true, "1-1".to_owned()));

    // Housekeeping (the event store's own, at start, or this call) gives it
    // a window bucket's expiry, once.
    retire_legacy_event_ids(&Redis::open(infra.redis.url()).unwrap(), WINDOW)
        .await
        .unwrap();
    let ttl: i64 = redis.ttl(&keys.legacy_event_ids).await.unwrap();
    assert!(
        ttl > WINDOW.as_secs() as i64 && ttl <= 2 * WINDOW.as_secs() as i64,
        "{ttl}"
    );
    let again = retire_legacy_event_ids(&Redis::open(infra.redis.url()).unwrap(), WINDOW)
        .await
        .unwrap();
    assert_eq!(again, 0, "the expiry is set once, not pushed back");

    // Written by an earlier release during a rolling upgrade: read too.
    let () = redis
        .hset(&keys.legacy_event_ids, OLDER, "1-0 1")
        .await
        .unwrap();
    assert_eq!(publish(&store, OLDER).await, (true, "1-0".to_owned()));
}

/// Returns once the current bucket has at least 30 s to go (at once but in
/// the last 30 s of a day), so the store and the test see the same bucket.
async fn clear_of_a_boundary() {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let left = WINDOW.as_secs() - now.as_secs() % WINDOW.as_secs();
        if left >= 30 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}
