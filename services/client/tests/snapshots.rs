//! View snapshots kept by the event store, against a real redis-server:
//! stored whole in chunks, never replaced by an older one unless asked.

mod support;

use std::collections::BTreeMap;

use ordershop_client::ViewSnapshot;
use tonic::Code;

fn snapshot(positions: &[(&str, &str)], data: Vec<u8>) -> ViewSnapshot {
    ViewSnapshot {
        format: 7,
        positions: positions
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect::<BTreeMap<_, _>>(),
        data,
        replace_newer: false,
    }
}

/// Bytes no compression or chunking bug would reproduce by accident.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7919 % 251) as u8).collect()
}

#[tokio::test]
async fn a_snapshot_larger_than_a_message_comes_back_whole() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let name = support::unique("svc");
    assert_eq!(store.get_snapshot(&name).await.unwrap(), None);

    // Several chunks and a partial last one; gRPC's default message limit
    // is 4 MiB.
    let data = pattern(9 * 1024 * 1024 + 123);
    let first = snapshot(&[("order", "10-0"), ("cart", "0-0")], data);
    assert!(store.put_snapshot(&name, first.clone()).await.unwrap());
    assert_eq!(store.get_snapshot(&name).await.unwrap(), Some(first));

    // An empty one is a snapshot too.
    let empty = snapshot(&[("order", "11-0"), ("cart", "0-0")], Vec::new());
    assert!(store.put_snapshot(&name, empty.clone()).await.unwrap());
    assert_eq!(store.get_snapshot(&name).await.unwrap(), Some(empty));
}

#[tokio::test]
async fn an_older_snapshot_never_replaces_a_newer_one_unless_asked() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let name = support::unique("svc");
    let newer = snapshot(&[("order", "20-5"), ("cart", "3-0")], b"newer".to_vec());
    assert!(store.put_snapshot(&name, newer.clone()).await.unwrap());
    // Behind on one topic (compared as numbers: "9-0" < "20-5"), even if
    // ahead on the other: refused, the newer one stays.
    let older = snapshot(&[("order", "9-0"), ("cart", "100-0")], b"older".to_vec());
    assert!(!store.put_snapshot(&name, older.clone()).await.unwrap());
    assert_eq!(store.get_snapshot(&name).await.unwrap(), Some(newer));
    // A service that found the stored one unusable replaces it.
    let forced = ViewSnapshot {
        replace_newer: true,
        ..older.clone()
    };
    assert!(store.put_snapshot(&name, forced).await.unwrap());
    assert_eq!(store.get_snapshot(&name).await.unwrap(), Some(older));
}

#[tokio::test]
async fn bad_names_and_positions_are_refused() {
    let infra = support::infra().await;
    let store = infra.event_store();
    let refused = |result: Result<bool, ordershop_client::ClientError>| result.unwrap_err().code();
    assert_eq!(
        refused(
            store
                .put_snapshot("Bad Name", snapshot(&[("order", "1-0")], vec![1]))
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        refused(
            store
                .put_snapshot("svc", snapshot(&[("order", "yesterday")], vec![1]))
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        store.get_snapshot("Bad Name").await.unwrap_err().code(),
        Code::InvalidArgument
    );
}
