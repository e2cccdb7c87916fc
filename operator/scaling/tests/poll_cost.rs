//! What a poll costs: commands and round trips for the 13 OrderShop roles
//! (asserted), and the time a poll takes against a loaded loopback Redis
//! (printed; run with `--nocapture` to read it, and bounded by the poll
//! interval so a regression that makes a poll outgrow it fails).

mod support;

use std::time::{Duration, Instant};

use ordershop_scaling::{
    MeasureOptions, Measurement, PollCost, consumer_groups, ensure_groups, measure_all,
};
use ordershop_topology::{QueueKeys, Role};
use redis::aio::ConnectionManager;
use support::{connect, private_redis, read_group};

/// The operator's default poll interval: a poll must fit well inside it.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

fn distinct_streams() -> usize {
    let mut streams: Vec<String> = consumer_groups(&Role::ALL)
        .into_iter()
        .map(|g| g.stream)
        .collect();
    streams.sort();
    streams.dedup();
    streams.len()
}

fn channel_count() -> usize {
    Role::ALL.iter().map(|r| r.channels().len()).sum()
}

async fn poll(conn: &mut ConnectionManager, options: &MeasureOptions) -> Measurement {
    measure_all(conn, &Role::ALL, options)
        .await
        .expect("measuring")
}

/// Median and slowest of `n` polls.
async fn time_polls(
    conn: &mut ConnectionManager,
    options: &MeasureOptions,
    n: usize,
) -> (Duration, Duration, PollCost) {
    let mut times = Vec::with_capacity(n);
    let mut cost = PollCost::default();
    for _ in 0..n {
        let start = Instant::now();
        cost = poll(conn, options).await.cost;
        times.push(start.elapsed());
    }
    times.sort();
    (times[n / 2], times[n - 1], cost)
}

#[tokio::test]
async fn a_poll_of_every_role_is_one_round_trip_unless_a_lag_must_be_counted() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    ensure_groups(&mut conn, &Role::ALL).await.unwrap();
    let (streams, channels, groups) = (
        distinct_streams(),
        channel_count(),
        consumer_groups(&Role::ALL).len(),
    );
    assert_eq!(
        (streams, channels, groups),
        (4, 30, 8),
        "the topology changed: update the docs in measure.rs"
    );

    let plain = poll(&mut conn, &MeasureOptions::default()).await.cost;
    assert_eq!(
        plain,
        PollCost {
            round_trips: 1,
            commands: 2 * streams + 3 * channels
        }
    );

    // A nil lag on one group: one more round trip, one more command.
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                redis::cmd("XADD")
                    .arg("events:customer")
                    .arg("*")
                    .arg("e")
                    .arg("1")
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
            );
        }
        ids
    };
    let _: i64 = redis::cmd("XDEL")
        .arg("events:customer")
        .arg(&ids[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    let nil = poll(&mut conn, &MeasureOptions::default()).await.cost;
    assert_eq!(
        nil,
        PollCost {
            round_trips: 2,
            commands: plain.commands + 1
        }
    );

    // With ages on: TIME, and one probe per group that lags (only crm on
    // events:customer here).
    let aged = poll(
        &mut conn,
        &MeasureOptions {
            undelivered_age: true,
            ..MeasureOptions::default()
        },
    )
    .await
    .cost;
    assert_eq!(
        aged,
        PollCost {
            round_trips: 2,
            commands: plain.commands + 2
        }
    );
    eprintln!(
        "poll of 13 roles ({streams} streams, {groups} groups, {channels} channels): \
         {plain:?}; with a nil lag: {nil:?}; with ages: {aged:?}"
    );
}

/// A loaded shop: 2,000 entries per stream, 50 consumer instances per group
/// each holding 2 pending entries, 100 waiting, 5 in-flight and 2 delayed
/// messages per channel.
async fn load(conn: &mut ConnectionManager) {
    ensure_groups(conn, &Role::ALL).await.unwrap();
    let mut streams: Vec<String> = consumer_groups(&Role::ALL)
        .into_iter()
        .map(|g| g.stream)
        .collect();
    streams.sort();
    streams.dedup();
    for stream in &streams {
        let mut pipe = redis::pipe();
        for i in 0..2_000 {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("event")
                .arg(format!("payload of event {i}"))
                .ignore();
        }
        let _: () = pipe.query_async(conn).await.unwrap();
    }
    for group in consumer_groups(&Role::ALL) {
        for instance in 0..50 {
            let consumer = format!("{}-{instance}", group.role.slug());
            read_group(conn, &group.stream, group.group, &consumer, 2).await;
        }
    }
    let mut pipe = redis::pipe();
    for role in Role::ALL {
        for channel in role.channels() {
            let keys = QueueKeys::new(&channel);
            let waiting: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
            pipe.cmd("LPUSH").arg(&keys.waiting).arg(&waiting).ignore();
            pipe.cmd("LPUSH")
                .arg(&keys.inflight)
                .arg(&["f1", "f2", "f3", "f4", "f5"])
                .ignore();
            pipe.cmd("ZADD")
                .arg(&keys.delayed)
                .arg(1)
                .arg("d1")
                .arg(2)
                .arg("d2")
                .ignore();
        }
    }
    let _: () = pipe.query_async(conn).await.unwrap();
}

#[tokio::test]
async fn a_poll_of_a_loaded_shop_fits_well_inside_the_poll_interval() {
    let server = private_redis();
    let mut conn = connect(&server).await;
    load(&mut conn).await;

    let check = poll(&mut conn, &MeasureOptions::default()).await;
    let crm = check.backlog(Role::Crm).unwrap().observation();
    assert_eq!((crm.lag, crm.pending), (4 * (2_000 - 100), 4 * 100));

    let (median, slowest, cost) = time_polls(&mut conn, &MeasureOptions::default(), 200).await;
    eprintln!(
        "loaded shop, 50 consumer instances per group: {cost:?}, median {median:?}, slowest {slowest:?} of 200 polls"
    );
    assert!(median < POLL_INTERVAL / 5, "median poll {median:?}");

    let aged = MeasureOptions {
        undelivered_age: true,
        ..MeasureOptions::default()
    };
    let (median, slowest, cost) = time_polls(&mut conn, &aged, 200).await;
    eprintln!("  with undelivered ages: {cost:?}, median {median:?}, slowest {slowest:?}");
    assert!(median < POLL_INTERVAL / 5, "median poll {median:?}");

    // Worst case: every group's lag is nil and counted (about 1,900 entries
    // each, counted inside Redis).
    let mut streams: Vec<String> = consumer_groups(&Role::ALL)
        .into_iter()
        .map(|g| g.stream)
        .collect();
    streams.sort();
    streams.dedup();
    for stream in &streams {
        let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: i64 = redis::cmd("XDEL")
            .arg(stream)
            .arg(&last[0].0)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let (median, slowest, cost) = time_polls(&mut conn, &MeasureOptions::default(), 50).await;
    assert_eq!(cost.round_trips, 2);
    eprintln!(
        "  every lag nil and counted: {cost:?}, median {median:?}, slowest {slowest:?} of 50 polls"
    );
    assert!(median < POLL_INTERVAL / 2, "median poll {median:?}");
}
