//! Keeping followers current: the `Follow` stream against one long-polling
//! `Read` loop per follower (what views, read-model folds and the live push
//! did before), side by side in one run on the same Redis.
//!
//! `cargo run --release -p ordershop-client --example follow_bench [-- EVENTS]`
//!
//! For 1, 8 and 32 followers of one topic, four publishers append EVENTS
//! events (default 4000) one per call while every follower keeps up. Per
//! mode it prints how long until every follower had every event, the lag
//! from a publish call's start to each follower holding the event, and the
//! CPU spent (this process: event store, publishers, followers; plus
//! redis-server) and Redis commands per event delivered to one follower.
#![allow(clippy::print_stdout)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ordershop_client::{Append, EventStore};
use ordershop_testkit::Infra;

const PUBLISHERS: usize = 4;
/// How long a follower may go without the last event before the bench
/// gives up (a broken mode, not a slow one).
const STALL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    LongPollRead,
    Follow,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::LongPollRead => "long-poll Read per follower",
            Mode::Follow => "Follow stream",
        }
    }
}

struct Outcome {
    elapsed: Duration,
    lags_ms: Vec<f64>,
    cpu_us_per_delivery: f64,
    redis_cmds_per_delivery: f64,
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4000);
    let infra = Infra::start().await;
    let store = infra.event_store();
    while !store.healthy().await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let redis_pid = redis_pid(&infra).await;

    println!(
        "| followers | mode | all delivered in s | lag p50 ms | lag p99 ms | CPU µs per delivery | Redis commands per delivery |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for followers in [1usize, 8, 32] {
        for mode in [Mode::LongPollRead, Mode::Follow] {
            let topic = format!("followbench{}x{followers}", mode as u8);
            let outcome = run(&infra, &store, redis_pid, &topic, mode, followers, events).await;
            let mut lags = outcome.lags_ms;
            lags.sort_by(f64::total_cmp);
            let pct = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];
            println!(
                "| {followers} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} |",
                mode.label(),
                outcome.elapsed.as_secs_f64(),
                pct(0.50),
                pct(0.99),
                outcome.cpu_us_per_delivery,
                outcome.redis_cmds_per_delivery,
            );
        }
    }
    infra.shutdown.cancel();
}

async fn run(
    infra: &Infra,
    store: &EventStore,
    redis_pid: u32,
    topic: &str,
    mode: Mode,
    followers: usize,
    events: usize,
) -> Outcome {
    // When each event's publish call started, by its number.
    let published: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; events]));
    let cpu_before = cpu_ticks(std::process::id()) + cpu_ticks(redis_pid);
    let cmds_before = redis_commands(infra).await;
    let started = Instant::now();

    let tasks: Vec<_> = (0..followers)
        .map(|_| {
            let store = store.clone();
            let topic = topic.to_owned();
            let published = published.clone();
            tokio::spawn(async move { follow(&store, &topic, mode, events, &published).await })
        })
        .collect();
    // Followers attach before the first publish, as long-lived ones would.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let store = store.clone();
            let topic = topic.to_owned();
            let published = published.clone();
            tokio::spawn(async move {
                for n in (p..events).step_by(PUBLISHERS) {
                    published.lock().unwrap()[n] = Some(Instant::now());
                    let append = Append {
                        event_action: "entity_created".into(),
                        event_data: format!("{{\"n\":{n}}}"),
                        entity_id: format!("e{n}"),
                        ..Default::default()
                    };
                    store.publish(&topic, vec![append]).await.unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let mut lags_ms = Vec::with_capacity(events * followers);
    for task in tasks {
        lags_ms.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let deliveries = (events * followers) as f64;
    let cpu_ticks_used = cpu_ticks(std::process::id()) + cpu_ticks(redis_pid) - cpu_before;
    let cmds_used = redis_commands(infra).await - cmds_before;
    Outcome {
        elapsed,
        lags_ms,
        cpu_us_per_delivery: cpu_ticks_used as f64 * 1e6 / clock_ticks_per_s() / deliveries,
        redis_cmds_per_delivery: cmds_used as f64 / deliveries,
    }
}

/// One follower: takes events until it has all of them; returns the lag
/// of each (publish call start → held here).
async fn follow(
    store: &EventStore,
    topic: &str,
    mode: Mode,
    events: usize,
    published: &Mutex<Vec<Option<Instant>>>,
) -> Vec<f64> {
    let mut lags = Vec::with_capacity(events);
    let mut take = |page: Vec<ordershop_client::Recorded>| {
        let now = Instant::now();
        for record in page {
            let n: usize =
                serde_json::from_str::<serde_json::Value>(&record.event_data).unwrap()["n"]
                    .as_u64()
                    .unwrap() as usize;
            let start = published.lock().unwrap()[n].expect("held before published");
            lags.push(now.duration_since(start).as_secs_f64() * 1000.0);
        }
    };
    match mode {
        Mode::LongPollRead => {
            let mut cursor = String::new();
            let mut held = 0;
            while held < events {
                let (page, next) = tokio::time::timeout(
                    STALL,
                    store.read(topic, &cursor, 1000, Duration::from_secs(1)),
                )
                .await
                .expect("follower stalled")
                .unwrap();
                held += page.len();
                cursor = next;
                take(page);
            }
        }
        Mode::Follow => {
            let mut stream = store.follow(&[(topic, String::new())]).await.unwrap();
            let mut held = 0;
            while held < events {
                let page = tokio::time::timeout(STALL, stream.next_page())
                    .await
                    .expect("follower stalled")
                    .unwrap()
                    .expect("stream ended");
                held += page.len();
                take(page);
            }
        }
    }
    lags
}

/// User + system CPU of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn clock_ticks_per_s() -> f64 {
    // Linux reports /proc times in USER_HZ, 100 on every supported arch.
    100.0
}

async fn redis_pid(infra: &Infra) -> u32 {
    redis_info(infra, "server", "process_id")
        .await
        .expect("redis-server reports its process id") as u32
}

/// Commands Redis has served so far.
async fn redis_commands(infra: &Infra) -> u64 {
    redis_info(infra, "stats", "total_commands_processed")
        .await
        .unwrap_or(0)
}

/// One numeric field of an `INFO` section.
async fn redis_info(infra: &Infra, section: &str, field: &str) -> Option<u64> {
    let info = infra.redis_info(section).await;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}
