//! Shared by the test binaries that talk to a real redis-server.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use ordershop_testkit::RedisServer;
use redis::{Value, aio::ConnectionManager};

/// A private redis-server for one test, whatever `REDIS_URL` says: these
/// tests write the same keys, so they must not share a server. Panics with
/// an install hint when redis-server is missing.
pub(crate) fn private_redis() -> RedisServer {
    RedisServer::spawn(&[]).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) async fn connect(server: &RedisServer) -> ConnectionManager {
    let client = redis::Client::open(server.url()).expect("redis URL");
    ConnectionManager::new(client)
        .await
        .expect("connecting to the test redis-server")
}

/// Appends `n` events to a stream, returning their IDs.
pub(crate) async fn xadd(conn: &mut ConnectionManager, stream: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("event")
            .arg(format!("e{i}"))
            .query_async(conn)
            .await
            .expect("XADD");
        ids.push(id);
    }
    ids
}

/// Reads up to `count` new entries as `consumer` of `group` without
/// acknowledging them; returns their IDs.
pub(crate) async fn read_group(
    conn: &mut ConnectionManager,
    stream: &str,
    group: &str,
    consumer: &str,
    count: usize,
) -> Vec<String> {
    let reply: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    // [[stream, [[id, [field, value]], ...]]] or nil when nothing is new.
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    let Some(Value::Array(stream_reply)) = streams.into_iter().next() else {
        panic!("unexpected XREADGROUP reply");
    };
    let Some(Value::Array(entries)) = stream_reply.into_iter().nth(1) else {
        panic!("unexpected XREADGROUP reply");
    };
    entries
        .into_iter()
        .map(|entry| match entry {
            Value::Array(parts) => match parts.into_iter().next() {
                Some(Value::BulkString(id)) => String::from_utf8(id).expect("UTF-8 ID"),
                other => panic!("unexpected entry ID {other:?}"),
            },
            other => panic!("unexpected entry {other:?}"),
        })
        .collect()
}

/// The `lag` field Redis itself reports for a group, to check that a test
/// really produced the case it is about.
pub(crate) async fn reported_lag(
    conn: &mut ConnectionManager,
    stream: &str,
    group: &str,
) -> Option<i64> {
    let reply: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
        .expect("XINFO GROUPS");
    let Value::Array(groups) = reply else {
        panic!("unexpected XINFO GROUPS reply {reply:?}");
    };
    for group_reply in groups {
        let Value::Array(fields) = group_reply else {
            panic!("unexpected group {group_reply:?}");
        };
        let field = |name: &str| {
            fields
                .chunks(2)
                .find(|pair| pair[0] == Value::BulkString(name.as_bytes().to_vec()))
                .map(|pair| pair[1].clone())
        };
        if field("name") == Some(Value::BulkString(group.as_bytes().to_vec())) {
            return match field("lag") {
                Some(Value::Int(n)) => Some(n),
                _ => None,
            };
        }
    }
    panic!("group {group} not on {stream}");
}
