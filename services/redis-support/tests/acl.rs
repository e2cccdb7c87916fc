//! The per-role ACL users of `services/topology`, on a real redis-server:
//! the config lines load, each role reaches its own keys and nothing else.

use ordershop_redis::{Redis, RedisOptions};
use ordershop_testkit::RedisServer;
use ordershop_topology::Role;

async fn as_role(server: &RedisServer, role: Role) -> redis::aio::ConnectionManager {
    let options = RedisOptions {
        username: Some(role.slug().to_owned()),
        password: Some(format!("pw{}", role.slug().replace('-', ""))),
        ..RedisOptions::default()
    };
    Redis::open_with(server.url(), &options).unwrap().conn()
}

async fn run(conn: &mut redis::aio::ConnectionManager, command: &[&str]) -> Result<(), String> {
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async::<redis::Value>(conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn each_role_reaches_its_own_keys_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl.conf");
    let lines: String = Role::ALL
        .into_iter()
        .filter_map(|role| role.redis_acl_line(&format!("pw{}", role.slug().replace('-', ""))))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let server = RedisServer::spawn(&["--include", file.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{e}"));

    let mut store = as_role(&server, Role::EventStore).await;
    run(&mut store, &["XADD", "events:order", "*", "k", "v"])
        .await
        .unwrap();
    run(&mut store, &["HSET", "{events:order}:versions", "o1", "1"])
        .await
        .unwrap();
    run(
        &mut store,
        &[
            "EVAL",
            "return redis.call('GET', KEYS[1])",
            "1",
            "{events:order}:head",
        ],
    )
    .await
    .unwrap();
    // Retention reads the read model's checkpoints, and nothing else of it.
    run(&mut store, &["GET", "{readmodel.2:order}:checkpoint"])
        .await
        .unwrap();
    for refused in [
        &["LLEN", "queue:{order-service.create_orders}:waiting"][..],
        &["HGET", "{readmodel.2:order}:entities", "x"],
        &["LPUSH", "queue:{order-service.create_orders}:waiting", "x"],
        &["SET", "{readmodel.2:order}:checkpoint", "x"],
        &[
            "EVAL",
            "return redis.call('SET', KEYS[1], 'x')",
            "1",
            "{readmodel.2:order}:checkpoint",
        ],
        &["CONFIG", "GET", "*"],
        &["FLUSHALL"],
        &["KEYS", "*"],
    ] {
        let err = run(&mut store, refused).await.expect_err(refused[0]);
        assert!(
            err.contains("NOPERM") || err.contains("permission"),
            "{refused:?}: {err}"
        );
    }

    let mut queue = as_role(&server, Role::MessageQueue).await;
    run(
        &mut queue,
        &["LPUSH", "queue:{order-service.create_orders}:waiting", "m1"],
    )
    .await
    .unwrap();
    run(
        &mut queue,
        &["SADD", "queue:channels", "order-service.create_orders"],
    )
    .await
    .unwrap();
    assert!(run(&mut queue, &["XLEN", "events:order"]).await.is_err());
    assert!(
        run(&mut queue, &["XADD", "events:order", "*", "k", "v"])
            .await
            .is_err()
    );

    let mut cache = as_role(&server, Role::ReadModel).await;
    run(
        &mut cache,
        &["SET", "{readmodel.2:order}:checkpoint", "1-0"],
    )
    .await
    .unwrap();
    assert!(run(&mut cache, &["XLEN", "events:order"]).await.is_err());
    assert!(run(&mut cache, &["LLEN", "queue:channels"]).await.is_err());

    // A wrong password is refused, not let in as the default user.
    let wrong = RedisOptions {
        username: Some("event-store".into()),
        password: Some("guess".into()),
        ..RedisOptions::default()
    };
    assert!(
        Redis::open_with(server.url(), &wrong)
            .unwrap()
            .ping()
            .await
            .is_err()
    );
}
