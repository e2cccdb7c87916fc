//! Backlog autoscaling on a real control plane, in external-Redis mode
//! against a loopback `redis-server` per test (the operator runs out of
//! cluster, so only an external Redis is reachable to it):
//! a backlog raises exactly its consumer's replicas within the reaction
//! bound; draining lowers them only after the stabilization window; work
//! in flight blocks scale-in; dry run and pause change nothing but status;
//! a Redis that stops answering holds the last decision and says why; a
//! restarted operator keeps the window; a managed Redis the operator cannot
//! reach is reported, not guessed.
//!
//! ```text
//! e2e/cluster.sh up && eval "$(e2e/cluster.sh env)"
//! cargo build -p ordershop-operator
//! cargo test -p ordershop-e2e --test autoscaling
//! # the benchmarks (reaction time p50/p95, CPU at 50 consumers):
//! cargo build --release -p ordershop-operator
//! ORDERSHOP_OPERATOR_BIN=$PWD/target/release/ordershop-operator \
//!   cargo test -p ordershop-e2e --test autoscaling -- --ignored --nocapture --test-threads=1
//! ```

#[path = "autoscaling/support.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::PostParams;
use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::objects::replicas_managers;
use ordershop_e2e::operator::{Operator, Options};
use ordershop_e2e::tools::kubectl;
use ordershop_e2e::{cluster, eventually_async, install, volumes};
use ordershop_operator::crd::{OrderShop, OrderShopSpec};
use ordershop_topology::Role;
use serde_json::json;
use support::{Shop, autoscaling};

/// Poll interval of the functional tests' OrderShops.
const POLL_MS: i32 = 500;
/// How long a crossing may take to show in the Deployment in these tests:
/// a poll interval plus the API round trips, with headroom for a machine
/// shared with builds. The benchmark below measures the real distribution.
const REACTION_BOUND: Duration = Duration::from_secs(4);
/// Stabilization window of the functional tests.
const WINDOW_S: i32 = 4;
const WINDOW: Duration = Duration::from_secs(WINDOW_S as u64);

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_backlog_scales_only_its_consumer_and_falls_after_the_window() {
    let shop = Shop::start(
        "as-queue",
        POLL_MS,
        &[
            (Role::Inventory, autoscaling(1, 6, 10, WINDOW_S)),
            (Role::Order, autoscaling(1, 6, 10, WINDOW_S)),
        ],
    )
    .await;
    shop.wait_replicas(Role::Inventory, 1, Instant::now(), support::SETTLE)
        .await;
    let mut redis = shop.redis().await;

    // The operator created the groups it measures, before any consumer ran.
    let on_order = support::groups(&mut redis, "order").await;
    assert!(
        on_order.contains(&"inventory-service".to_string()),
        "the autoscaler must create inventory's group on events:order, found {on_order:?}"
    );

    // 45 waiting messages / 10 per replica → 5 replicas, at once.
    let pushed = Instant::now();
    support::push_waiting(&mut redis, Role::Inventory, 45).await;
    let reaction = shop
        .wait_replicas(Role::Inventory, 5, pushed, REACTION_BOUND)
        .await;
    eprintln!("reaction to a crossing (poll {POLL_MS} ms): {reaction:?}");
    assert_eq!(
        shop.replicas(Role::Order).await,
        Some(1),
        "order has no backlog"
    );
    assert_eq!(
        shop.replicas(Role::Mail).await,
        Some(1),
        "mail is not autoscaled"
    );
    assert_eq!(
        replicas_managers(&shop.deployment(Role::Inventory).await),
        ["ordershop-autoscaler"],
        "the autoscaler's field manager owns the replicas of an autoscaled role"
    );

    // Status: the parts, desired vs current, the last scale and why.
    let entry = shop
        .wait_status("status shows the scale", Role::Inventory, |s| {
            (s.desired_replicas == Some(5)
                && s.current_replicas == Some(5)
                && s.last_scale_time.is_some())
            .then(|| s.clone())
        })
        .await;
    assert_eq!(entry.backlog, Some(45));
    let parts = entry
        .autoscaling
        .as_ref()
        .and_then(|a| a.measured.clone())
        .expect("parts");
    assert_eq!(
        (parts.waiting, parts.lag, parts.pending, parts.in_flight),
        (45, 0, 0, 0)
    );
    assert!(parts.exact);
    let reason = entry.last_scale_reason.clone().unwrap_or_default();
    assert_eq!(reason, "backlog 45 (waiting 45) / target 10 → 5, up from 1");
    assert_eq!(shop.shop().await.unwrap().status.unwrap().backlog, Some(45));

    // One Event for the scale, with its numbers; gauges for inputs and decision.
    shop.wait_event("ScaledUp", &format!("inventory: {reason}"))
        .await;
    assert_eq!(
        shop.consumer_metric("ordershop_operator_consumer_waiting", Role::Inventory)
            .await,
        Some(45.0)
    );
    assert_eq!(
        shop.consumer_metric("ordershop_operator_consumer_backlog", Role::Inventory)
            .await,
        Some(45.0)
    );
    assert_eq!(
        shop.consumer_metric(
            "ordershop_operator_consumer_decided_replicas",
            Role::Inventory
        )
        .await,
        Some(5.0)
    );
    assert_eq!(
        shop.consumer_metric("ordershop_operator_consumer_lag", Role::Order)
            .await,
        Some(0.0)
    );

    // Drained: the replicas fall to the min, but only after the window.
    support::drain_waiting(&mut redis, Role::Inventory).await;
    let drained = Instant::now();
    let fell_after = shop
        .wait_replicas(Role::Inventory, 1, drained, WINDOW + REACTION_BOUND * 2)
        .await;
    eprintln!("scale-in after the drain: {fell_after:?} (window {WINDOW:?})");
    assert!(
        fell_after >= WINDOW - shop.poll,
        "scaled in {fell_after:?} after the drain, before the {WINDOW:?} window could pass"
    );
    shop.wait_event(
        "ScaledDown",
        "inventory: backlog 0 / target 10 → 1, down from 5",
    )
    .await;

    // A hand scale below the min is undone at the next decision.
    kubectl(&[
        "scale",
        "deployment/shop-inventory",
        "--replicas=0",
        "-n",
        &shop.ns.name,
    ]);
    shop.wait_replicas(Role::Inventory, 1, Instant::now(), REACTION_BOUND)
        .await;

    // Autoscaling off: the reconcile owns the replicas again, the
    // autoscaler's status fields go away.
    shop.patch_spec(
        json!({"services": {"order": {"replicas": 2, "autoscaling": {"enabled": false}}}}),
    )
    .await;
    shop.wait_replicas(Role::Order, 2, Instant::now(), support::SETTLE)
        .await;
    assert_eq!(
        replicas_managers(&shop.deployment(Role::Order).await),
        ["ordershop-operator"]
    );
    shop.wait_status("autoscaler fields removed", Role::Order, |s| {
        (s.autoscaling.is_none() && s.backlog.is_none() && s.desired_replicas == Some(2))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_lag_and_pending_count_and_work_in_flight_blocks_scale_in() {
    let shop = Shop::start(
        "as-stream",
        POLL_MS,
        &[
            (Role::Inventory, autoscaling(1, 6, 10, WINDOW_S)),
            (Role::Mail, autoscaling(1, 6, 10, WINDOW_S)),
        ],
    )
    .await;
    let mut redis = shop.redis().await;

    // Stream: 25 undelivered events for inventory's group → 3 replicas;
    // crm's group is not autoscaled and is not created by the autoscaler.
    let pushed = Instant::now();
    support::add_events(&mut redis, "order", 25).await;
    let reaction = shop
        .wait_replicas(Role::Inventory, 3, pushed, REACTION_BOUND)
        .await;
    eprintln!("reaction to a stream lag: {reaction:?}");
    // Queue: 30 waiting for mail → 3 replicas.
    support::push_waiting(&mut redis, Role::Mail, 30).await;
    shop.wait_replicas(Role::Mail, 3, Instant::now(), REACTION_BOUND)
        .await;

    // Delivered but unacknowledged entries are still backlog (KEDA's lag
    // mode would see 0 here).
    let delivered = support::deliver(&mut redis, Role::Inventory, "order", 25).await;
    assert_eq!(delivered.len(), 25);
    support::receive(&mut redis, Role::Mail, 30).await;
    shop.wait_status("pending counted", Role::Inventory, |s| {
        let parts = s.autoscaling.as_ref()?.measured.as_ref()?;
        (parts.lag == 0 && parts.pending == 25).then_some(())
    })
    .await;
    assert_eq!(shop.replicas(Role::Inventory).await, Some(3));

    // All but 2 acknowledged: one replica would do, but no scale-in while
    // work is in flight, however long the window has passed.
    support::ack(&mut redis, Role::Inventory, "order", &delivered[..23]).await;
    support::ack_in_flight(&mut redis, Role::Mail, 28).await;
    let acked = Instant::now();
    for role in [Role::Inventory, Role::Mail] {
        shop.wait_status("held by work in flight past the window", role, |s| {
            let decision = s.autoscaling.as_ref()?.decision.as_ref()?;
            (decision.cause == "WorkInFlight" && acked.elapsed() > WINDOW + shop.poll)
                .then(|| decision.message.clone())
        })
        .await;
        assert_eq!(
            shop.replicas(role).await,
            Some(3),
            "{} scaled in while work was in flight",
            role.slug()
        );
    }
    assert_eq!(
        shop.consumer_metric("ordershop_operator_consumer_pending", Role::Inventory)
            .await,
        Some(2.0)
    );
    assert_eq!(
        shop.consumer_metric("ordershop_operator_consumer_in_flight", Role::Mail)
            .await,
        Some(2.0)
    );
    shop.wait_event(
        "WorkInFlight",
        "inventory: backlog 2 (pending 2) / target 10 → 1, holding 3",
    )
    .await;

    // The last entries done: down to the min.
    support::ack(&mut redis, Role::Inventory, "order", &delivered[23..]).await;
    support::ack_in_flight(&mut redis, Role::Mail, 2).await;
    for role in [Role::Inventory, Role::Mail] {
        shop.wait_replicas(role, 1, Instant::now(), WINDOW + REACTION_BOUND * 2)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lag_redis_cannot_report_is_counted_and_said_so() {
    let shop = Shop::start(
        "as-nil",
        POLL_MS,
        &[(Role::Inventory, autoscaling(1, 6, 10, WINDOW_S))],
    )
    .await;
    let mut redis = shop.redis().await;
    // 40 events, 2 delivered, then one undelivered entry deleted: Redis 7
    // reports the group's lag as nil (KEDA reads 0 and goes inactive).
    // One script, so no measurement sees a state in between (it would scale
    // to 4 on 40 and never emit the event below).
    support::add_deliver_and_delete(&mut redis, Role::Inventory, "order", (40, 2, 10)).await;
    let pushed = Instant::now();

    // 37 undelivered + 2 pending = 39 → 4 replicas.
    shop.wait_replicas(Role::Inventory, 4, pushed, support::SETTLE)
        .await;
    let parts = shop
        .wait_status("the counted lag in status", Role::Inventory, |s| {
            s.autoscaling
                .as_ref()?
                .measured
                .clone()
                .filter(|p| p.lag == 37)
        })
        .await;
    assert_eq!(parts.pending, 2);
    assert!(parts.exact, "every undelivered entry was counted");
    assert!(
        parts.notes.iter().any(|n| n
            == "inventory-service on events:order: Redis reports lag nil; counted 37 undelivered entries"),
        "the status must say the lag was counted, not reported: {:?}",
        parts.notes
    );
    shop.wait_event(
        "ScaledUp",
        "inventory: backlog 39 (lag 37 + pending 2) / target 10 → 4",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_and_paused_change_nothing_but_status() {
    let shop = Shop::start(
        "as-dry",
        POLL_MS,
        &[
            (Role::Order, {
                let mut a = autoscaling(1, 6, 10, WINDOW_S);
                a.dry_run = true;
                a
            }),
            (Role::Cart, {
                let mut a = autoscaling(1, 6, 10, WINDOW_S);
                a.paused = true;
                a
            }),
        ],
    )
    .await;
    let condition = shop.wait_scaling("True", "BacklogMeasured").await;
    assert!(
        condition
            .message
            .contains("dry run (decisions published, not applied): order")
            && condition.message.contains("paused: cart"),
        "{}",
        condition.message
    );
    let mut redis = shop.redis().await;
    support::push_waiting(&mut redis, Role::Order, 45).await;
    support::push_waiting(&mut redis, Role::Cart, 45).await;

    // Dry run: the decision is published...
    let decision = shop
        .wait_status("dry-run decision published", Role::Order, |s| {
            let d = s.autoscaling.as_ref()?.decision.clone()?;
            (s.desired_replicas == Some(5)).then_some(d)
        })
        .await;
    assert!(decision.dry_run);
    assert!(
        decision.message.starts_with("dry run: backlog 45"),
        "{}",
        decision.message
    );
    shop.wait_event(
        "ScaledUp",
        "order: dry run: backlog 45 (waiting 45) / target 10 → 5, up from 1",
    )
    .await;
    assert_eq!(
        shop.consumer_metric("ordershop_operator_consumer_decided_replicas", Role::Order)
            .await,
        Some(5.0)
    );
    // ... and not acted on: the status is written after the scale in the
    // same poll, so a live scaler would have scaled by now.
    assert_eq!(shop.replicas(Role::Order).await, Some(1));
    assert_eq!(
        shop.service_status(Role::Order)
            .await
            .and_then(|s| s.last_scale_time),
        None,
        "nothing was scaled"
    );

    // Paused: measured, reported, held.
    let paused = shop
        .wait_status("paused decision", Role::Cart, |s| {
            let d = s.autoscaling.as_ref()?.decision.clone()?;
            (d.cause == "Paused" && s.backlog == Some(45)).then_some(d)
        })
        .await;
    assert_eq!(paused.desired_replicas, 1, "{}", paused.message);
    assert_eq!(shop.replicas(Role::Cart).await, Some(1));

    // Dry run off: the same backlog is acted on at once.
    shop.patch_spec(json!({"services": {"order": {"autoscaling": {"dryRun": false}}}}))
        .await;
    shop.wait_replicas(
        Role::Order,
        5,
        Instant::now(),
        REACTION_BOUND + support::SETTLE / 4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_stops_answering_holds_the_last_decision_and_says_why() {
    let mut shop = Shop::start(
        "as-down",
        POLL_MS,
        &[(Role::Inventory, autoscaling(1, 6, 10, WINDOW_S))],
    )
    .await;
    let mut redis = shop.redis().await;
    support::push_waiting(&mut redis, Role::Inventory, 45).await;
    shop.wait_replicas(Role::Inventory, 5, Instant::now(), REACTION_BOUND)
        .await;

    shop.redis.kill();
    let killed = Instant::now();
    let condition = shop.wait_scaling("False", "BacklogUnavailable").await;
    assert!(
        condition
            .message
            .contains("holding the last decisions: inventory 5"),
        "{}",
        condition.message
    );
    assert!(
        condition
            .message
            .contains(&format!("127.0.0.1:{}", shop.redis.port())),
        "{}",
        condition.message
    );
    shop.wait_event(
        "BacklogUnavailable",
        "holding the last decisions: inventory 5",
    )
    .await;
    // Held past the window: an outage is no evidence of an empty backlog.
    let held = shop
        .wait_status("held past the window", Role::Inventory, |s| {
            let decision = s.autoscaling.as_ref()?.decision.clone()?;
            (decision.cause == "MeasurementFailed" && killed.elapsed() > WINDOW + shop.poll)
                .then_some(decision)
        })
        .await;
    assert_eq!(held.desired_replicas, 5, "{}", held.message);
    assert_eq!(shop.replicas(Role::Inventory).await, Some(5));
    assert!(
        shop.operator
            .metrics()
            .await
            .unwrap_or_default()
            .contains("ordershop_operator_autoscaler_polls_total{result=\"unavailable\"}"),
        "failed polls are counted"
    );

    // Back, empty (no persistence): readable again, and the held count
    // stays in the window, so scale-in waits for a window of real numbers.
    shop.redis
        .restart(&["--requirepass", support::PASSWORD])
        .unwrap_or_else(|e| panic!("{e}"));
    let restarted = Instant::now();
    shop.wait_scaling("True", "BacklogMeasured").await;
    shop.wait_event("BacklogReadable", "measuring the backlog of inventory")
        .await;
    let fell_after = shop
        .wait_replicas(Role::Inventory, 1, restarted, WINDOW + REACTION_BOUND * 3)
        .await;
    assert!(
        fell_after >= WINDOW - shop.poll,
        "scaled in {fell_after:?} after Redis came back, within the window"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_operator_keeps_the_stabilization_window() {
    const LONG_WINDOW_S: i32 = 15;
    let long_window = Duration::from_secs(LONG_WINDOW_S as u64);
    let mut shop = Shop::start(
        "as-restart",
        POLL_MS,
        &[(Role::Customer, autoscaling(1, 6, 10, LONG_WINDOW_S))],
    )
    .await;
    let mut redis = shop.redis().await;
    support::push_waiting(&mut redis, Role::Customer, 45).await;
    shop.wait_replicas(Role::Customer, 5, Instant::now(), REACTION_BOUND)
        .await;
    support::drain_waiting(&mut redis, Role::Customer).await;
    let drained = Instant::now();
    shop.wait_status("stabilizing", Role::Customer, |s| {
        (s.autoscaling.as_ref()?.decision.as_ref()?.cause == "Stabilizing").then_some(())
    })
    .await;

    // A new operator process (same identity and Lease): without the window
    // in the status it would scale in at its first poll.
    shop.operator.kill();
    shop.operator = Operator::start(Options::for_namespace(&shop.ns.name));
    let fell_after = shop
        .wait_replicas(
            Role::Customer,
            1,
            drained,
            long_window + support::SETTLE / 2,
        )
        .await;
    assert!(
        fell_after >= long_window - shop.poll,
        "the restarted operator scaled in {fell_after:?} after the drain, inside the {long_window:?} window"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_managed_redis_out_of_reach_is_reported_and_nothing_is_guessed() {
    let client = cluster::connect().await;
    install::chart();
    let mut ns = TestNamespace::create(&client, "as-managed").await;
    volumes::provide_redis_volume(&client, &mut ns, "shop", "1Gi").await;
    let _operator = Operator::start(Options::for_namespace(&ns.name));
    let mut spec = OrderShopSpec::default();
    spec.services.billing.autoscaling = autoscaling(2, 6, 10, WINDOW_S);
    Api::<OrderShop>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &OrderShop::new("shop", spec))
        .await
        .expect("creating the OrderShop");
    let api = Api::<OrderShop>::namespaced(client.clone(), &ns.name);
    let condition = eventually_async(
        "Scaling=False for the managed Redis",
        support::SETTLE,
        || {
            let api = api.clone();
            async move {
                api.get("shop")
                    .await
                    .ok()?
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| {
                        c.type_ == "Scaling"
                            && c.status == "False"
                            && c.message.contains("shop-redis.")
                    })
            }
        },
    )
    .await;
    assert_eq!(condition.reason, "BacklogUnavailable");
    assert!(
        condition.message.contains("outside the cluster"),
        "the message must say why the managed Redis is unreachable: {}",
        condition.message
    );
    // Nothing is guessed: without a measurement only the policy's bounds
    // apply (minReplicas 2 over the Deployment's default 1), never a backlog.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    eventually_async("billing at its min replicas", support::SETTLE, || {
        let deployments = deployments.clone();
        async move {
            let replicas = deployments.get("shop-billing").await.ok()?.spec?.replicas;
            (replicas == Some(2)).then_some(())
        }
    })
    .await;
    let decision = eventually_async("billing's held decision in status", support::SETTLE, || {
        let api = api.clone();
        async move {
            api.get("shop")
                .await
                .ok()?
                .status?
                .services
                .into_iter()
                .find(|s| s.name == "billing")?
                .autoscaling?
                .decision
        }
    })
    .await;
    assert_eq!(decision.cause, "MeasurementFailed", "{}", decision.message);
}

/// Every role that consumes work, autoscaled alike.
fn all_consumers(
    spec: &ordershop_operator::crd::AutoscalingSpec,
) -> Vec<(Role, ordershop_operator::crd::AutoscalingSpec)> {
    Role::ALL
        .into_iter()
        .filter(|r| r.is_consumer())
        .map(|r| (r, spec.clone()))
        .collect()
}

/// Puts `n` units of backlog on `role`: queue messages, or (crm, which
/// serves no queue) events of a topic only crm subscribes to.
/// Dead letters of any topic or channel show in the operator's metrics and
/// raise the `DeadLetters` condition, naming where they are; gone, the
/// condition clears.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_counted_and_raise_a_condition() {
    let shop = Shop::start(
        "as-dead",
        POLL_MS,
        &[(Role::Inventory, autoscaling(1, 6, 10, WINDOW_S))],
    )
    .await;
    shop.wait_condition("DeadLetters", "False", "NoDeadLetters")
        .await;
    let mut redis = shop.redis().await;
    let billing = ordershop_topology::StreamKeys::new("billing").dead;
    let mail = ordershop_topology::QueueKeys::new("mail-service.send").dead;
    for _ in 0..2 {
        let _: String = redis::cmd("XADD")
            .arg(&billing)
            .arg("*")
            .arg(&["event_id", "e"])
            .query_async(&mut redis)
            .await
            .expect("XADD");
    }
    let _: i64 = redis::cmd("LPUSH")
        .arg(&mail)
        .arg("m1")
        .query_async(&mut redis)
        .await
        .expect("LPUSH");

    let kept = shop
        .wait_condition("DeadLetters", "True", "DeadLettersKept")
        .await;
    assert!(
        kept.message
            .starts_with("3 dead letter(s): topic billing 2, channel mail-service.send 1"),
        "{}",
        kept.message
    );
    let gauge = format!(
        "ordershop_operator_dead_letters{{namespace=\"{}\",ordershop=\"shop\",kind=\"topic\",name=\"billing\"}} 2",
        shop.ns.name
    );
    let text = shop.operator.metrics().await.unwrap_or_default();
    assert!(text.contains(&gauge), "missing {gauge} in\n{text}");

    let _: i64 = redis::cmd("DEL")
        .arg(&billing)
        .arg(&mail)
        .query_async(&mut redis)
        .await
        .expect("DEL");
    shop.wait_condition("DeadLetters", "False", "NoDeadLetters")
        .await;
}

async fn push_backlog(redis: &mut redis::aio::MultiplexedConnection, role: Role, n: usize) {
    if role.channels().is_empty() {
        support::add_events(redis, "customer", n).await;
    } else {
        support::push_waiting(redis, role, n).await;
    }
}

/// Reaction time from a backlog crossing to the Deployment's new replica
/// count, one trial per consumer (10) at each poll interval: the default
/// 1000 ms and 500 ms. The push lands at a random phase of the poll cycle.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test -p ordershop-e2e --test autoscaling -- --ignored --nocapture"]
async fn benchmark_reaction_time() {
    let consumers = all_consumers(&autoscaling(1, 10, 10, 600));
    let shop = Shop::start("as-bench-react", 1000, &consumers).await;
    let mut redis = shop.redis().await;
    // (poll interval, units pushed, replicas expected after the push)
    for (poll_ms, push, expected) in [(1000u64, 15, 2), (500, 20, 4)] {
        shop.patch_spec(json!({"autoscaling": {"pollIntervalMs": poll_ms}}))
            .await;
        eventually_async(
            "the new poll interval in effect",
            support::SETTLE,
            || async {
                shop.scaling()
                    .await
                    .filter(|c| c.message.contains(&format!("every {poll_ms} ms")))
            },
        )
        .await;
        let mut samples = Vec::new();
        for (role, _) in &consumers {
            let phase = Duration::from_millis(rand::random_range(0..poll_ms));
            tokio::time::sleep(phase).await;
            let pushed = Instant::now();
            push_backlog(&mut redis, *role, push).await;
            let took = shop
                .wait_replicas(*role, expected, pushed, Duration::from_secs(10))
                .await;
            eprintln!("  poll {poll_ms} ms, {}: {took:?}", role.slug());
            samples.push(took);
        }
        eprintln!(
            "reaction at poll {poll_ms} ms over {} trials: p50 {:?}, p95 {:?}, max {:?}",
            samples.len(),
            support::percentile(&samples, 50),
            support::percentile(&samples, 95),
            support::percentile(&samples, 100),
        );
    }
}

/// Utime + stime of a process in clock ticks, from /proc.
fn cpu_ticks(pid: u32) -> u64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/<pid>/stat");
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Commands Redis executed so far, over all databases, except INFO itself.
async fn redis_calls(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .expect("INFO");
    info.lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

async fn measured_polls(operator: &Operator) -> f64 {
    let text = operator.metrics().await.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("ordershop_operator_autoscaler_polls_total{result=\"measured\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The operator's CPU with 5 OrderShops × 10 autoscaled consumers polled
/// every second (50 consumers), against the same shops without autoscaling;
/// and the Redis commands one poll of one OrderShop costs.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test -p ordershop-e2e --test autoscaling -- --ignored --nocapture"]
async fn benchmark_operator_cpu_at_50_consumers() {
    const SHOPS: usize = 5;
    const MEASURE: Duration = Duration::from_secs(60);
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "as-bench-cpu").await;
    let redis_server = ordershop_testkit::RedisServer::spawn(&["--requirepass", support::PASSWORD])
        .unwrap_or_else(|e| panic!("{e}"));
    let operator = Operator::start(Options::for_namespace(&ns.name));
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "redis-auth"},
        "stringData": {"password": support::PASSWORD}
    }))
    .expect("Secret");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the Secret");
    let api = Api::<OrderShop>::namespaced(client.clone(), &ns.name);
    let mut off = autoscaling(1, 10, 1_000, 60);
    off.enabled = false;
    for i in 0..SHOPS {
        let mut spec = OrderShopSpec::default();
        spec.redis.external = Some(ordershop_operator::crd::ExternalRedisSpec {
            url: format!("redis://127.0.0.1:{}/{i}", redis_server.port()),
            password_secret_ref: Some(ordershop_operator::crd::SecretKeyRef {
                name: "redis-auth".into(),
                key: "password".into(),
            }),
            ca_secret_ref: None,
        });
        let mut shop = serde_json::to_value(OrderShop::new(&format!("s{i}"), spec)).expect("JSON");
        for (role, _) in all_consumers(&off) {
            shop["spec"]["services"][camel(role)]["autoscaling"] =
                serde_json::to_value(&off).expect("JSON");
        }
        api.create(
            &PostParams::default(),
            &serde_json::from_value(shop).expect("OrderShop"),
        )
        .await
        .expect("creating an OrderShop");
    }
    // A steady backlog below the target on every consumer: the polls do
    // real work, the replicas stay put.
    let mut redis = Vec::new();
    for i in 0..SHOPS {
        let url = format!(
            "redis://:{}@127.0.0.1:{}/{i}",
            support::PASSWORD,
            redis_server.port()
        );
        let mut conn = redis::Client::open(url)
            .expect("URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connecting");
        for (role, _) in all_consumers(&off) {
            push_backlog(&mut conn, role, 50).await;
        }
        support::add_events(&mut conn, "order", 50).await;
        redis.push(conn);
    }
    eventually_async("every OrderShop reconciled", support::SETTLE * 2, || {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .all(|s| s.status.as_ref().is_some_and(|st| st.services.len() == 13))
                .then_some(())
        }
    })
    .await;
    let ticks = clock_ticks_per_second();
    let cpu_over = |seconds: Duration, before: u64, after: u64| {
        (after - before) as f64 / ticks as f64 / seconds.as_secs_f64() * 100.0
    };

    // Baseline: the same shops, no autoscaling.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = cpu_ticks(operator.pid());
    tokio::time::sleep(MEASURE / 2).await;
    let baseline = cpu_over(MEASURE / 2, before, cpu_ticks(operator.pid()));

    // 50 consumers, polled every second.
    let on = json!({"enabled": true});
    let services: serde_json::Map<String, serde_json::Value> = all_consumers(&off)
        .into_iter()
        .map(|(role, _)| (camel(role).to_string(), json!({ "autoscaling": on })))
        .collect();
    for i in 0..SHOPS {
        api.patch(
            &format!("s{i}"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"services": services}})),
        )
        .await
        .expect("enabling autoscaling");
    }
    eventually_async("every OrderShop measured", support::SETTLE, || {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .all(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        st.conditions
                            .iter()
                            .any(|c| c.type_ == "Scaling" && c.status == "True")
                    })
                })
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = cpu_ticks(operator.pid());
    let polls_before = measured_polls(&operator).await;
    let calls_before = redis_calls(&mut redis[0]).await;
    tokio::time::sleep(MEASURE).await;
    let after = cpu_ticks(operator.pid());
    let polls = measured_polls(&operator).await - polls_before;
    let calls = redis_calls(&mut redis[0]).await - calls_before;
    let autoscaling_cpu = cpu_over(MEASURE, before, after);
    let text = operator.metrics().await.unwrap_or_default();
    let operator_commands: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ordershop_operator_autoscaler_redis_commands_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let all_polls = measured_polls(&operator).await;
    eprintln!("operator CPU, {SHOPS} OrderShops, no autoscaling: {baseline:.2} % of one core");
    eprintln!(
        "operator CPU, {SHOPS} OrderShops x 10 consumers at 1 s: {autoscaling_cpu:.2} % of one core over {MEASURE:?}"
    );
    eprintln!(
        "polls: {polls} in {MEASURE:?} ({:.2}/s); Redis commands per poll of one OrderShop: {:.1} (server side), {:.1} (operator's count)",
        polls / MEASURE.as_secs_f64(),
        calls as f64 / polls,
        operator_commands / all_polls,
    );
    eprintln!("operator RSS: {} KiB", operator.rss_kib().unwrap_or(0));
    assert!(
        polls >= MEASURE.as_secs_f64() * SHOPS as f64 * 0.8,
        "polls fell behind: {polls}"
    );
    drop(ns);
}

/// The spec's camelCase field of a consumer role (`read-model` → `readModel`).
fn camel(role: Role) -> &'static str {
    match role {
        Role::ReadModel => "readModel",
        other => other.slug(),
    }
}
