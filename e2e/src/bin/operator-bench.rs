//! Measures the operator on the cluster KUBECONFIG points at: time from
//! `create` to every child created and to Ready, the reconcile duration
//! histogram, and the operator's RSS idle, with one shop and with many.
//!
//! ```text
//! cargo build --release -p ordershop-operator
//! ORDERSHOP_OPERATOR_BIN=target/release/ordershop-operator \
//!   cargo run --release -p ordershop-e2e --bin operator-bench -- [shops=50]
//! ```
//! Bulk shops are created `stopped` (their children exist, no pods): a kwok
//! node holds 110 pods, 50 running shops would need 700.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::PostParams;
use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::objects::{condition_true, expected_children, missing_or_unowned, shops};
use ordershop_e2e::operator::{Operator, Options};
use ordershop_e2e::{cluster, eventually_async, install, volumes};
use ordershop_operator::crd::{OrderShop, OrderShopSpec};

fn out(line: String) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bulk: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("the argument is the number of shops")?
        .unwrap_or(50);
    let client = cluster::connect().await;
    tokio::task::spawn_blocking(install::chart).await?;
    let mut ns = TestNamespace::create(&client, "bench").await;
    let operator = Operator::start(Options::for_namespace(&ns.name));
    let api = shops(&client, &ns.name);
    eventually_async("operator ready", Duration::from_secs(30), || {
        let operator = &operator;
        async move { (operator.metric("ordershop_operator_leader").await == Some(1.0)).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    out(format!("rss idle: {} KiB", operator.rss_kib().unwrap_or(0)));

    // Latency of single shops, one after another.
    let mut to_children = Vec::new();
    let mut to_ready = Vec::new();
    for i in 0..5 {
        let name = format!("lat{i}");
        volumes::provide_redis_volume(&client, &mut ns, &name, "1Gi").await;
        let started = Instant::now();
        let shop = api
            .create(
                &PostParams::default(),
                &OrderShop::new(&name, OrderShopSpec::default()),
            )
            .await?;
        let uid = shop.metadata.uid.clone().context("uid")?;
        let expected = expected_children(&name, true, false);
        eventually_async("children", Duration::from_secs(60), || {
            let client = client.clone();
            let (ns, uid, expected) = (ns.name.clone(), uid.clone(), expected.clone());
            async move {
                missing_or_unowned(&client, &ns, &uid, &expected)
                    .await
                    .is_empty()
                    .then_some(())
            }
        })
        .await;
        to_children.push(started.elapsed());
        eventually_async("ready", Duration::from_secs(120), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                api.get(&name)
                    .await
                    .ok()
                    .filter(|s| condition_true(s, "Ready"))
                    .map(|_| ())
            }
        })
        .await;
        to_ready.push(started.elapsed());
    }
    to_children.sort();
    to_ready.sort();
    out(format!(
        "apply -> all {} children (5 shops): {to_children:?}, median {:?}",
        expected_children("x", true, false).len(),
        to_children[2]
    ));
    out(format!(
        "apply -> Ready (5 shops): {to_ready:?}, median {:?}",
        to_ready[2]
    ));
    out(format!(
        "rss with 5 running shops: {} KiB",
        operator.rss_kib().unwrap_or(0)
    ));

    // Many shops at once.
    let started = Instant::now();
    for i in 0..bulk {
        let spec = OrderShopSpec {
            stopped: true,
            ..OrderShopSpec::default()
        };
        api.create(
            &PostParams::default(),
            &OrderShop::new(&format!("bulk{i}"), spec),
        )
        .await?;
    }
    eventually_async(
        "every bulk shop reconciled",
        Duration::from_secs(600),
        || {
            let api = api.clone();
            async move {
                let list = api.list(&Default::default()).await.ok()?;
                list.items
                    .iter()
                    .filter(|s| {
                        s.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with("bulk"))
                    })
                    .all(|s| {
                        s.status.as_ref().is_some_and(|st| {
                            st.observed_generation == s.metadata.generation
                                && st.services_ready.as_deref() == Some("13/13")
                        })
                    })
                    .then_some(())
            }
        },
    )
    .await;
    out(format!(
        "{bulk} stopped shops fully reconciled in {:?}",
        started.elapsed()
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    out(format!(
        "rss with {} shops: {} KiB",
        bulk + 5,
        operator.rss_kib().unwrap_or(0)
    ));

    let metrics = operator.metrics().await.unwrap_or_default();
    for line in metrics.lines().filter(|l| {
        l.starts_with("ordershop_operator_reconcile_duration_seconds")
            || l.starts_with("ordershop_operator_reconciles_total")
    }) {
        out(line.to_string());
    }
    Ok(())
}
