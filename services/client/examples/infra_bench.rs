//! Event store and queue throughput through gRPC, side by side with raw
//! `redis-benchmark` on the same Redis in the same run.
//!
//! `cargo run --release -p ordershop-client --example infra_bench [-- OPS]`
//!
//! Starts a private redis-server, the event store and the queue in this
//! process, then for 1, 8 and 32 concurrent clients measures: gRPC publish
//! (one event per call) vs raw `XADD`, and a sync queue round trip
//! (call → handler → response) vs raw `LMOVE`. Prints a Markdown table.
#![allow(clippy::print_stdout)]

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use ordershop_client::{Append, ServeOptions};
use ordershop_testkit::Infra;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

struct Row {
    what: &'static str,
    clients: usize,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[tokio::main]
async fn main() {
    let ops: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let infra = Infra::start().await;
    let store = infra.event_store();
    let queue = infra.queue("bench");
    while !(store.healthy().await && queue.healthy().await) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One responder serving the bench channel with ample concurrency.
    let cancel = CancellationToken::new();
    let mut options = ServeOptions::new("bench-service.echo");
    options.concurrency = 32;
    let _servers = queue.serve(
        options,
        cancel.clone(),
        |m| async move { Ok(Some(m.payload)) },
    );

    let mut rows = Vec::new();
    for clients in [1usize, 8, 32] {
        let publish = measure(clients, ops, {
            let store = store.clone();
            move |i| {
                let store = store.clone();
                async move {
                    let append = Append {
                        event_action: "entity_created".into(),
                        event_data: format!("{{\"n\":{i}}}"),
                        entity_id: format!("e{}", i % 1000),
                        ..Default::default()
                    };
                    store.publish("bench", vec![append]).await.unwrap();
                }
            }
        })
        .await;
        rows.push(Row {
            what: "gRPC publish",
            clients,
            ..publish
        });
        rows.push(raw(
            infra.redis.port(),
            clients,
            ops,
            "raw XADD",
            &["XADD", "rawbench", "*", "event_data", "{\"n\":1}"],
        ));

        let call = measure(clients, ops / 4, {
            let queue = queue.clone();
            move |i| {
                let queue = queue.clone();
                async move {
                    queue
                        .call(
                            "bench-service.echo",
                            &format!("{{\"n\":{i}}}"),
                            "",
                            Duration::from_secs(10),
                        )
                        .await
                        .unwrap();
                }
            }
        })
        .await;
        rows.push(Row {
            what: "gRPC queue round trip",
            clients,
            ..call
        });
        seed_list(infra.redis.url()).await;
        rows.push(raw(
            infra.redis.port(),
            clients,
            ops,
            "raw LMOVE",
            &["LMOVE", "rawlist", "rawlist", "RIGHT", "LEFT"],
        ));
    }
    cancel.cancel();

    println!("| operation | clients | ops/s | p50 ms | p99 ms | vs raw |");
    println!("|---|---:|---:|---:|---:|---:|");
    for chunk in rows.chunks(4) {
        let pairs = [(&chunk[0], &chunk[1]), (&chunk[2], &chunk[3])];
        for (ours, raw) in pairs {
            for row in [ours, raw] {
                let ratio = if std::ptr::eq(row, ours) {
                    format!("{:.0}%", 100.0 * ours.ops_per_sec / raw.ops_per_sec)
                } else {
                    String::new()
                };
                println!(
                    "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
                    row.what, row.clients, row.ops_per_sec, row.p50_ms, row.p99_ms, ratio
                );
            }
        }
    }
}

/// Runs `ops` operations spread over `clients` tasks; latency per operation.
async fn measure<F, Fut>(clients: usize, ops: usize, op: F) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = ()> + Send,
{
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(ops)));
    let started = Instant::now();
    let per_client = ops / clients;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                op(c * per_client + i).await;
                mine.push(t.elapsed());
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let mut all = latencies.lock().await.clone();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    Row {
        what: "",
        clients,
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

async fn seed_list(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let items: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    redis::cmd("DEL")
        .arg("rawlist")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("RPUSH")
        .arg("rawlist")
        .arg(items)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

/// `redis-benchmark --csv` for one command at the same concurrency.
fn raw(port: u16, clients: usize, ops: usize, what: &'static str, command: &[&str]) -> Row {
    let output = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-c",
            &clients.to_string(),
            "-n",
            &ops.to_string(),
            "--csv",
        ])
        .args(command)
        .output()
        .expect("redis-benchmark (Debian package redis-tools)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default().replace('"', "");
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // rps, avg, min, p50, p95, p99, max
    Row {
        what,
        clients,
        ops_per_sec: fields.first().copied().unwrap_or(0.0),
        p50_ms: fields.get(3).copied().unwrap_or(0.0),
        p99_ms: fields.get(5).copied().unwrap_or(0.0),
    }
}
