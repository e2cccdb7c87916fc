//! Switching autoscaling on for a consumer that runs several replicas never
//! drops it below its count, also in `dryRun` and `paused` (where the
//! autoscaler never writes), and switching it off hands the count back to
//! the spec without a dip either.
//!
//! The danger: with autoscaling on, the reconcile's server-side apply
//! leaves `replicas` out, and an apply that drops a field no other manager
//! owns removes it, so the Deployment falls back to the default of 1 until
//! the autoscaler writes. Each transition here is watched by reading the
//! Deployment every ~20 ms while it happens.
//!
//! ```text
//! e2e/cluster.sh up && eval "$(e2e/cluster.sh env)"
//! cargo build -p ordershop-operator
//! cargo test -p ordershop-e2e --test handover
//! ```

// Shared with tests/autoscaling.rs; this binary uses only part of it.
#[allow(dead_code)]
#[path = "autoscaling/support.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use ordershop_e2e::eventually_async;
use ordershop_e2e::objects::replicas_managers;
use ordershop_operator::autoscale::AUTOSCALER_FIELD_MANAGER;
use ordershop_topology::Role;
use serde_json::{Value, json};
use support::{Shop, autoscaling};

const POLL_MS: i32 = 500;
/// The count every watched consumer runs at before and after each switch.
const COUNT: i32 = 3;
/// Long enough that an idle consumer must not be scaled in during a test:
/// scale-in waits a full window from the switch.
const LONG_WINDOW_S: i64 = 600;
/// How long each switch is watched: the reconcile reacts within a second,
/// and the autoscaler polls several times meanwhile.
const WATCH: Duration = Duration::from_secs(6);
const EVERY: Duration = Duration::from_millis(20);

/// The `autoscaling` of a consumer switched on, as a merge patch.
fn enabled(dry_run: bool, paused: bool) -> Value {
    json!({
        "enabled": true,
        "minReplicas": 1,
        "maxReplicas": 6,
        "targetBacklogPerReplica": 10,
        "scaleDownStabilizationSeconds": LONG_WINDOW_S,
        "scaleDownMaxStep": 100,
        "scaleDownIntervalSeconds": 0,
        "dryRun": dry_run,
        "paused": paused,
    })
}

/// The spec's camelCase key of a consumer.
fn key(role: Role) -> &'static str {
    match role {
        Role::ReadModel => "readModel",
        other => other.slug(),
    }
}

/// Reads `name`'s `spec.replicas` every [`EVERY`] until `until`; `None` for
/// a failed read.
async fn sample_replicas(api: Api<Deployment>, name: String, until: Instant) -> Vec<Option<i32>> {
    let mut seen = Vec::new();
    while Instant::now() < until {
        let replicas = api.get(&name).await.ok().and_then(|d| d.spec?.replicas);
        seen.push(replicas);
        tokio::time::sleep(EVERY).await;
    }
    seen
}

/// Applies `spec` (a merge patch of `spec`) while `role`'s replicas are
/// sampled for [`WATCH`], and asserts they never fell below [`COUNT`].
async fn switch_without_dip(shop: &Shop, what: &str, role: Role, spec: Value) {
    let api: Api<Deployment> = Api::namespaced(shop.client.clone(), &shop.ns.name);
    let started = Instant::now();
    let (seen, ()) = tokio::join!(
        sample_replicas(api, shop.deployment_name(role), started + WATCH),
        async {
            // A few samples of the count before the switch.
            tokio::time::sleep(EVERY * 5).await;
            shop.patch_spec(spec).await;
        }
    );
    let read: Vec<i32> = seen.iter().flatten().copied().collect();
    eprintln!(
        "{what}: {} reads of {} ({} failed), min {:?}, max {:?}",
        read.len(),
        role.slug(),
        seen.len() - read.len(),
        read.iter().min(),
        read.iter().max()
    );
    assert!(
        read.len() >= 20,
        "{what}: too few reads of the Deployment to tell ({})",
        read.len()
    );
    let dips: Vec<(usize, i32)> = seen
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.filter(|n| *n < COUNT).map(|n| (i, n)))
        .collect();
    assert!(
        dips.is_empty(),
        "{what}: {} fell below {COUNT} at reads (index, replicas) {dips:?}",
        role.slug()
    );
}

/// Waits until exactly `managers` own `role`'s replicas.
async fn wait_owners(shop: &Shop, role: Role, managers: &[&str]) {
    eventually_async(
        &format!("{} replicas owned by {managers:?}", role.slug()),
        support::SETTLE,
        || async move {
            let mut owners = replicas_managers(&shop.deployment(role).await);
            owners.sort();
            (owners == managers).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_autoscaling_on_and_off_never_dips_below_the_running_count() {
    // Mail is autoscaled only so that the autoscaler runs and reports from
    // the start (Shop::start waits for its first measurement).
    let shop = Shop::start(
        "handover",
        POLL_MS,
        &[(Role::Mail, autoscaling(1, 3, 10, 600))],
    )
    .await;
    let watched = [Role::Order, Role::Billing, Role::Shipping];
    let services: serde_json::Map<String, Value> = watched
        .iter()
        .map(|role| (key(*role).to_string(), json!({ "replicas": COUNT })))
        .collect();
    shop.patch_spec(json!({ "services": services })).await;
    for role in watched {
        shop.wait_replicas(role, COUNT, Instant::now(), support::SETTLE)
            .await;
        wait_owners(&shop, role, &[ordershop_operator::FIELD_MANAGER]).await;
    }

    // On, acting: no backlog, but the window holds the count.
    switch_without_dip(
        &shop,
        "autoscaling on",
        Role::Order,
        json!({"services": {"order": {"replicas": null, "autoscaling": enabled(false, false)}}}),
    )
    .await;
    wait_owners(&shop, Role::Order, &[AUTOSCALER_FIELD_MANAGER]).await;

    // On in dry run and paused: the autoscaler never writes, and owns the
    // count all the same.
    switch_without_dip(
        &shop,
        "autoscaling on, dry run",
        Role::Billing,
        json!({"services": {"billing": {"replicas": null, "autoscaling": enabled(true, false)}}}),
    )
    .await;
    wait_owners(&shop, Role::Billing, &[AUTOSCALER_FIELD_MANAGER]).await;
    switch_without_dip(
        &shop,
        "autoscaling on, paused",
        Role::Shipping,
        json!({"services": {"shipping": {"replicas": null, "autoscaling": enabled(false, true)}}}),
    )
    .await;
    wait_owners(&shop, Role::Shipping, &[AUTOSCALER_FIELD_MANAGER]).await;

    // Each still at its count once the autoscaler has polled them a while.
    tokio::time::sleep(Duration::from_millis(u64::try_from(POLL_MS).unwrap() * 4)).await;
    for role in watched {
        assert_eq!(shop.replicas(role).await, Some(COUNT), "{}", role.slug());
    }

    // Off again, at the same count: the reconcile owns it (the autoscaler
    // may keep a share of the same value, which changes nothing).
    switch_without_dip(
        &shop,
        "autoscaling off",
        Role::Order,
        json!({"services": {"order": {"replicas": COUNT, "autoscaling": {"enabled": false}}}}),
    )
    .await;
    eventually_async(
        "the reconcile owns order's replicas again",
        support::SETTLE,
        || async {
            replicas_managers(&shop.deployment(Role::Order).await)
                .contains(&ordershop_operator::FIELD_MANAGER.to_string())
                .then_some(())
        },
    )
    .await;

    // And on once more, from that shared ownership.
    switch_without_dip(
        &shop,
        "autoscaling on again",
        Role::Order,
        json!({"services": {"order": {"replicas": null, "autoscaling": enabled(false, false)}}}),
    )
    .await;
    wait_owners(&shop, Role::Order, &[AUTOSCALER_FIELD_MANAGER]).await;
}
