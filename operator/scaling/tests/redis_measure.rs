//! Measurement and group creation against a real, private redis-server.

mod support;

use std::time::Duration;

use ordershop_scaling::{
    Cause, ChannelState, GroupOutcome, GroupRef, Kinds, Lag, MeasureError, MeasureOptions, Policy,
    Sample, ScalerState, StreamState, UnixMillis, consumer_groups, create_groups, decide,
    ensure_groups, measure_all,
};
use ordershop_testkit::eventually_async;
use ordershop_topology::{QueueKeys, Role};
use redis::aio::ConnectionManager;
use support::{connect, private_redis, read_group, reported_lag, xadd};

const ORDER_STREAM: &str = "events:order";
const INVENTORY_GROUP: &str = "inventory-service";

/// The one group of the inventory role (on `events:order`).
async fn inventory_state(conn: &mut ConnectionManager, options: &MeasureOptions) -> StreamState {
    let measurement = measure_all(conn, &[Role::Inventory], options)
        .await
        .expect("measuring");
    let backlog = measurement
        .backlog(Role::Inventory)
        .expect("inventory measured");
    assert_eq!(backlog.streams.len(), 1);
    backlog.streams[0].state.clone()
}

fn measured(state: &StreamState) -> (Lag, u64) {
    match state {
        StreamState::Measured(group) => (group.lag, group.pending),
        other => panic!("expected a measured group, got {other:?}"),
    }
}

#[tokio::test]
async fn lag_and_pending_of_a_group() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Inventory]).await.unwrap();
    xadd(&mut conn, ORDER_STREAM, 10).await;
    let read = read_group(&mut conn, ORDER_STREAM, INVENTORY_GROUP, "inventory-0", 4).await;
    let acked: i64 = redis::cmd("XACK")
        .arg(ORDER_STREAM)
        .arg(INVENTORY_GROUP)
        .arg(&read[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(acked, 1);

    let state = inventory_state(&mut conn, &MeasureOptions::default()).await;
    assert_eq!(measured(&state), (Lag::Reported(6), 3));
    let measurement = measure_all(&mut conn, &[Role::Inventory], &MeasureOptions::default())
        .await
        .unwrap();
    let Sample::Measured(obs) = measurement.sample(Role::Inventory) else {
        panic!("inventory must be measured");
    };
    assert_eq!((obs.lag, obs.pending, obs.exact), (6, 3, true));
    assert_eq!(obs.describe(), "backlog 9 (lag 6 + pending 3)");
}

#[tokio::test]
async fn a_consumer_that_read_but_never_acked_blocks_scale_in() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Shipping]).await.unwrap();
    xadd(&mut conn, "events:billing", 5).await;
    let read = read_group(
        &mut conn,
        "events:billing",
        "shipping-service",
        "shipping-0",
        10,
    )
    .await;
    assert_eq!(read.len(), 5);

    let measurement = measure_all(&mut conn, &[Role::Shipping], &MeasureOptions::default())
        .await
        .unwrap();
    let backlog = measurement.backlog(Role::Shipping).unwrap();
    assert_eq!(measured(&backlog.streams[0].state), (Lag::Reported(0), 5));

    // KEDA's lag mode would see 0 here and scale in, to zero if allowed.
    let policy = Policy {
        min_replicas: 0,
        ..Policy::default()
    };
    let mut state = ScalerState::default();
    let decision = decide(&policy, &mut state, &backlog.sample(), 3, UnixMillis(1_000));
    assert_eq!((decision.desired, decision.cause), (3, Cause::WorkInFlight));
}

#[tokio::test]
async fn queue_lists_waiting_in_flight_and_delayed() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    let create = QueueKeys::new("order-service.create_orders");
    let status = QueueKeys::new("order-service.set_status");
    let _: () = redis::pipe()
        .cmd("LPUSH")
        .arg(&create.waiting)
        .arg(&["m1", "m2", "m3"])
        .ignore()
        .cmd("LPUSH")
        .arg(&create.inflight)
        .arg(&["m4", "m5"])
        .ignore()
        .cmd("ZADD")
        .arg(&create.delayed)
        .arg(1)
        .arg("m6")
        .ignore()
        .cmd("LPUSH")
        .arg(&status.waiting)
        .arg("m7")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    let measurement = measure_all(&mut conn, &[Role::Order], &MeasureOptions::default())
        .await
        .unwrap();
    let backlog = measurement.backlog(Role::Order).unwrap();
    assert_eq!(backlog.channels.len(), Role::Order.channels().len());
    let create_orders = backlog
        .channels
        .iter()
        .find(|c| c.channel == "order-service.create_orders")
        .unwrap();
    assert_eq!(
        create_orders.state,
        ChannelState::Measured {
            waiting: 3,
            in_flight: 2,
            delayed: 1
        }
    );
    let obs = backlog.observation();
    assert_eq!((obs.waiting, obs.in_flight, obs.delayed), (4, 2, 1));
    // The order role's streams do not exist yet: exactly zero, with a note.
    assert!(obs.exact);
    assert_eq!(obs.backlog(), 7);
    assert!(
        obs.notes
            .iter()
            .any(|n| n == "events:billing does not exist yet: backlog 0 for order-service")
    );
}

#[tokio::test]
async fn nil_lag_after_xdel_is_counted_never_zero() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Inventory]).await.unwrap();
    let ids = xadd(&mut conn, ORDER_STREAM, 10).await;
    read_group(&mut conn, ORDER_STREAM, INVENTORY_GROUP, "inventory-0", 2).await;
    let _: i64 = redis::cmd("XDEL")
        .arg(ORDER_STREAM)
        .arg(&ids[5])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        reported_lag(&mut conn, ORDER_STREAM, INVENTORY_GROUP).await,
        None,
        "precondition: Redis reports a nil lag after XDEL past the last delivered ID"
    );

    let state = inventory_state(&mut conn, &MeasureOptions::default()).await;
    // 10 added - 2 delivered - 1 deleted.
    assert_eq!(measured(&state), (Lag::Counted(7), 2));

    // With a cap below the lag: a lower bound, said as such.
    let capped = MeasureOptions {
        nil_lag_cap: 3,
        ..MeasureOptions::default()
    };
    let measurement = measure_all(&mut conn, &[Role::Inventory], &capped)
        .await
        .unwrap();
    let backlog = measurement.backlog(Role::Inventory).unwrap();
    assert_eq!(measured(&backlog.streams[0].state).0, Lag::AtLeast(4));
    let obs = backlog.observation();
    assert!(!obs.exact);
    assert_eq!(obs.describe(), "backlog at least 6 (lag 4 + pending 2)");
    assert_eq!(measurement.cost.round_trips, 2);
}

#[tokio::test]
async fn a_lag_inflated_by_xtrim_is_counted() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Inventory]).await.unwrap();
    xadd(&mut conn, ORDER_STREAM, 10).await;
    read_group(&mut conn, ORDER_STREAM, INVENTORY_GROUP, "inventory-0", 2).await;
    // Trim away the 2 delivered entries and 4 never delivered ones.
    let _: i64 = redis::cmd("XTRIM")
        .arg(ORDER_STREAM)
        .arg("MAXLEN")
        .arg(4)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        reported_lag(&mut conn, ORDER_STREAM, INVENTORY_GROUP).await,
        Some(8),
        "precondition: Redis 7 still counts the trimmed entries it will never deliver"
    );
    let measurement = measure_all(&mut conn, &[Role::Inventory], &MeasureOptions::default())
        .await
        .unwrap();
    let backlog = measurement.backlog(Role::Inventory).unwrap();
    assert_eq!(measured(&backlog.streams[0].state), (Lag::Counted(4), 2));
    let obs = backlog.observation();
    assert!(obs.exact);
    assert_eq!(
        obs.notes,
        vec![
            "inventory-service on events:order: Redis reports lag 8, more than the 4 entries of the \
             stream (trimmed past the last delivered ID); counted 4 undelivered entries"
        ]
    );
}

#[tokio::test]
async fn a_trimmed_stream_read_from_the_start_keeps_the_reported_lag() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Inventory]).await.unwrap();
    xadd(&mut conn, ORDER_STREAM, 10).await;
    let _: i64 = redis::cmd("XTRIM")
        .arg(ORDER_STREAM)
        .arg("MAXLEN")
        .arg(4)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Redis gets this one right: no second round trip is spent on it.
    let measurement = measure_all(&mut conn, &[Role::Inventory], &MeasureOptions::default())
        .await
        .unwrap();
    let state = &measurement.backlog(Role::Inventory).unwrap().streams[0].state;
    assert_eq!(measured(state), (Lag::Reported(4), 0));
    assert_eq!(measurement.cost.round_trips, 1);
}

#[tokio::test]
async fn nil_lag_of_a_group_set_to_an_arbitrary_id_is_counted() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Inventory]).await.unwrap();
    let ids = xadd(&mut conn, ORDER_STREAM, 10).await;
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(ORDER_STREAM)
        .arg(INVENTORY_GROUP)
        .arg(&ids[2])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        reported_lag(&mut conn, ORDER_STREAM, INVENTORY_GROUP).await,
        None,
        "precondition: Redis reports a nil lag after XGROUP SETID"
    );
    let state = inventory_state(&mut conn, &MeasureOptions::default()).await;
    assert_eq!(measured(&state), (Lag::Counted(7), 0));
}

#[tokio::test]
async fn a_missing_stream_is_zero_with_a_reason() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    let measurement = measure_all(&mut conn, &[Role::Inventory], &MeasureOptions::default())
        .await
        .unwrap();
    let backlog = measurement.backlog(Role::Inventory).unwrap();
    assert_eq!(backlog.streams[0].state, StreamState::StreamMissing);
    let obs = backlog.observation();
    assert!(obs.exact);
    assert_eq!(obs.backlog(), 0);
    assert_eq!(
        obs.notes,
        vec!["events:order does not exist yet: backlog 0 for inventory-service"]
    );
}

#[tokio::test]
async fn a_missing_group_is_reported_then_created_and_counts_from_the_start() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    // Events written before any consumer group exists.
    xadd(&mut conn, ORDER_STREAM, 5).await;

    let measurement = measure_all(&mut conn, &[Role::Inventory], &MeasureOptions::default())
        .await
        .unwrap();
    assert_eq!(
        measurement.backlog(Role::Inventory).unwrap().streams[0].state,
        StreamState::GroupMissing
    );
    let obs = measurement.backlog(Role::Inventory).unwrap().observation();
    assert!(!obs.exact, "a missing group must not read as an exact 0");
    assert_eq!(obs.lag, 0, "stream length is never used as a guess");
    let missing = measurement.missing_groups();
    assert_eq!(missing, vec![GroupRef::new(Role::Inventory, "order")]);

    let created = create_groups(&mut conn, &missing).await.unwrap();
    assert_eq!(created[0].outcome, GroupOutcome::Created);
    let state = inventory_state(&mut conn, &MeasureOptions::default()).await;
    assert_eq!(measured(&state), (Lag::Reported(5), 0));
}

#[tokio::test]
async fn ensure_groups_creates_every_group_once() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    let first = ensure_groups(&mut conn, &Role::ALL).await.unwrap();
    assert_eq!(first.len(), consumer_groups(&Role::ALL).len());
    assert!(first.iter().all(|g| g.outcome == GroupOutcome::Created));
    let again = ensure_groups(&mut conn, &Role::ALL).await.unwrap();
    assert!(
        again
            .iter()
            .all(|g| g.outcome == GroupOutcome::AlreadyExisted)
    );

    // Every consumer's groups now measure as exact zeros.
    let consumers: Vec<Role> = Role::ALL.into_iter().filter(|r| r.is_consumer()).collect();
    let measurement = measure_all(&mut conn, &consumers, &MeasureOptions::default())
        .await
        .unwrap();
    assert!(measurement.missing_groups().is_empty());
    for backlog in &measurement.backlogs {
        let obs = backlog.observation();
        assert!(
            obs.exact && obs.backlog() == 0,
            "{:?}: {obs:?}",
            backlog.role
        );
    }
}

#[tokio::test]
async fn keys_of_the_wrong_type_are_unreadable_not_zero() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    let mail = QueueKeys::new("mail-service.send");
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(ORDER_STREAM)
        .arg("not a stream")
        .ignore()
        .cmd("SET")
        .arg(&mail.waiting)
        .arg("not a list")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let group_error = create_groups(&mut conn, &[GroupRef::new(Role::Inventory, "order")])
        .await
        .unwrap_err();
    assert!(
        group_error.to_string().contains("WRONGTYPE"),
        "{group_error}"
    );

    let measurement = measure_all(
        &mut conn,
        &[Role::Inventory, Role::Mail],
        &MeasureOptions::default(),
    )
    .await
    .unwrap();
    let inventory = measurement.backlog(Role::Inventory).unwrap();
    assert!(
        matches!(&inventory.streams[0].state, StreamState::Unreadable(e) if e.starts_with("WRONGTYPE")),
        "{:?}",
        inventory.streams[0].state
    );
    let mail_backlog = measurement.backlog(Role::Mail).unwrap();
    assert!(
        matches!(&mail_backlog.channels[0].state, ChannelState::Unreadable(e) if e.starts_with("WRONGTYPE"))
    );
    assert!(!inventory.observation().exact && !mail_backlog.observation().exact);
}

#[tokio::test]
async fn age_of_the_oldest_undelivered_entry_on_the_redis_clock() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Inventory]).await.unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let now_ms = secs * 1_000 + micros / 1_000;
    for (ms, seq) in [(now_ms - 5_000, 0), (now_ms - 4_000, 0)] {
        let _: String = redis::cmd("XADD")
            .arg(ORDER_STREAM)
            .arg(format!("{ms}-{seq}"))
            .arg("event")
            .arg("e")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let options = MeasureOptions {
        undelivered_age: true,
        ..MeasureOptions::default()
    };
    let measurement = measure_all(&mut conn, &[Role::Inventory], &options)
        .await
        .unwrap();
    let StreamState::Measured(group) =
        &measurement.backlog(Role::Inventory).unwrap().streams[0].state
    else {
        panic!("inventory must be measured");
    };
    assert_eq!(group.lag, Lag::Reported(2));
    let age = group.oldest_undelivered_age_ms.expect("age measured");
    assert!((5_000..15_000).contains(&age), "age {age} ms");
    assert_eq!(measurement.cost.round_trips, 2);
    assert!(measurement.server_time.is_some());
}

#[tokio::test]
async fn redis_unreachable_is_an_error_that_holds_the_last_decision() {
    let mut server = private_redis();
    let mut conn = connect(&server).await;
    let roles = [Role::Mail];
    let policy = Policy::default();
    let mut state = ScalerState::default();
    let mail = QueueKeys::new("mail-service.send");
    let _: () = redis::cmd("RPUSH")
        .arg(&mail.waiting)
        .arg(vec!["m"; 250])
        .query_async(&mut conn)
        .await
        .unwrap();
    let options = MeasureOptions::default();
    let measured = measure_all(&mut conn, &roles, &options).await.unwrap();
    let first = decide(
        &policy,
        &mut state,
        &measured.sample(Role::Mail),
        1,
        UnixMillis(0),
    );
    assert_eq!(first.desired, 3);

    server.kill();
    let error: MeasureError = measure_all(&mut conn, &roles, &options).await.unwrap_err();
    let held = decide(
        &policy,
        &mut state,
        &Sample::from(&error),
        3,
        UnixMillis(500),
    );
    assert_eq!((held.desired, held.cause), (3, Cause::MeasurementFailed));
    assert!(
        held.reason
            .starts_with("backlog unknown (Redis could not be read"),
        "{}",
        held.reason
    );

    // Back (without persistence the list is gone): the connection manager
    // reconnects and the measurement reads again.
    server.restart(&[]).expect("restarting redis-server");
    let back = eventually_async(
        "measuring after Redis came back",
        Duration::from_secs(10),
        || {
            let (mut conn, options) = (conn.clone(), options.clone());
            async move { measure_all(&mut conn, &roles, &options).await.ok() }
        },
    )
    .await;
    assert_eq!(back.backlog(Role::Mail).unwrap().observation().backlog(), 0);
}

#[tokio::test]
async fn a_resp3_connection_measures_the_same() {
    let server = private_redis();
    let mut setup = connect(&server).await;
    ensure_groups(&mut setup, &[Role::Inventory]).await.unwrap();
    let ids = xadd(&mut setup, ORDER_STREAM, 6).await;
    read_group(&mut setup, ORDER_STREAM, INVENTORY_GROUP, "inventory-0", 1).await;
    let _: i64 = redis::cmd("XDEL")
        .arg(ORDER_STREAM)
        .arg(&ids[3])
        .query_async(&mut setup)
        .await
        .unwrap();

    let client = redis::Client::open(format!("{}?protocol=resp3", server.url())).unwrap();
    let mut resp3 = client.get_multiplexed_async_connection().await.unwrap();
    let options = MeasureOptions {
        undelivered_age: true,
        ..MeasureOptions::default()
    };
    let measurement = measure_all(&mut resp3, &[Role::Inventory], &options)
        .await
        .unwrap();
    let StreamState::Measured(group) =
        &measurement.backlog(Role::Inventory).unwrap().streams[0].state
    else {
        panic!("inventory must be measured over RESP3");
    };
    assert_eq!((group.lag, group.pending), (Lag::Counted(4), 1));
    assert!(group.oldest_undelivered_age_ms.is_some());
}

/// A process that reports one kind of backlog reads only those keys (so its
/// Redis user may be limited to them): the event store its groups, the
/// queue its channels.
#[tokio::test]
async fn one_kind_reads_only_its_own_keys() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &[Role::Order]).await.unwrap();
    let all = measure_all(&mut conn, &[Role::Order], &MeasureOptions::default())
        .await
        .unwrap();
    let order = all.backlog(Role::Order).unwrap();
    assert!(!order.streams.is_empty() && !order.channels.is_empty());

    for (kinds, streams, channels) in [
        (Kinds::Streams, true, false),
        (Kinds::Channels, false, true),
    ] {
        let options = MeasureOptions {
            kinds,
            ..MeasureOptions::default()
        };
        let one = measure_all(&mut conn, &[Role::Order], &options)
            .await
            .unwrap();
        let backlog = one.backlog(Role::Order).unwrap();
        assert_eq!(!backlog.streams.is_empty(), streams, "{kinds:?}");
        assert_eq!(!backlog.channels.is_empty(), channels, "{kinds:?}");
        assert!(one.cost.commands < all.cost.commands, "{kinds:?}");
    }
}
