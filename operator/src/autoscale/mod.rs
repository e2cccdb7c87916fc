//! The backlog autoscaler: scales each consumer service on its real backlog.
//!
//! Per OrderShop with autoscaled consumers, one task ([`shop::ShopScaler`])
//! polls every `spec.autoscaling.pollIntervalMs`:
//! 1. **measure** — one pipelined round trip to the OrderShop's Redis reads,
//!    for every autoscaled consumer, the lag and pending entries of its
//!    consumer groups and the waiting, delayed and in-flight messages of its
//!    queue channels (`ordershop_scaling::measure_all`); the groups are
//!    created first (`ensure_groups`, at `0`) on every new connection;
//! 2. **decide** — `ordershop_scaling::decide` with the consumer's policy
//!    ([`policy`]) and its memory, which lives in the status
//!    ([`memory`]) so a restarted operator resumes mid-window;
//! 3. **act** — the Deployment's scale subresource, by server-side apply
//!    under [`AUTOSCALER_FIELD_MANAGER`], unless `dryRun` or `paused`;
//! 4. **show** — the status entry of the consumer, the `Scaling` condition
//!    ([`report`]), an Event per scale ([`events`]), Prometheus gauges.
//!
//! [`Autoscaler::run`] starts and ends those tasks as OrderShops come and
//! go; it runs only while this replica leads.
//!
//! **Who owns `Deployment.spec.replicas`.** A consumer's replica count has
//! exactly one owner at a time, enforced through server-side apply field
//! ownership:
//! - `spec.services.<role>.autoscaling.enabled: false` → the reconcile
//!   (field manager [`crate::FIELD_MANAGER`]) applies `replicas` from the spec
//!   on every pass, so a hand `kubectl scale` is reverted;
//! - `enabled: true` → the reconcile leaves `replicas` out of its apply, and
//!   the autoscaler sets it under its own field manager
//!   [`AUTOSCALER_FIELD_MANAGER`] (the CRD refuses `replicas` together with
//!   `autoscaling.enabled`). A hand `kubectl scale` is taken as the current
//!   count at the next poll: too low, it is raised at once; too high, it is
//!   brought down by the scale-in rules (window, step, interval);
//! - `false` → `true` on a running consumer: before the reconcile's apply
//!   drops `replicas`, it makes the autoscaler's manager own the field at
//!   the current count ([`handover`]), so the count never falls to the API
//!   default of 1, also with `dryRun` or `paused` (the autoscaler then owns
//!   a count it never changes). A scaler that starts without memory counts
//!   the current replicas as a recommendation, so scale-in waits a full
//!   stabilization window after the switch;
//! - `spec.stopped: true` → the reconcile applies `replicas: 0` for every
//!   role, taking the field over (forced apply); the autoscaler must not act
//!   ([`may_actuate`] is false) and takes the field back after a restart.
//!
//! **Status.** The autoscaler writes, with its own field manager, the
//! `backlog`, `desiredReplicas`, `lastScaleTime`, `lastScaleReason` and
//! `autoscaling` (parts, decision, memory) of a consumer's
//! `status.services[]` entry (a map-list keyed by `name`), the total
//! `status.backlog`, and the `Scaling` condition; see
//! [`report::status_patch`]. The reconcile writes `currentReplicas`,
//! `readyReplicas`, `autoscaled` and, for roles it scales, `desiredReplicas`.
//!
//! **Metrics.** Per-consumer backlog and decided replicas go to
//! [`crate::metrics::Metrics::record_consumer`], the backlog's parts to
//! [`crate::metrics::Metrics::record_backlog_parts`].

pub mod consumer;
pub mod events;
pub mod handover;
pub mod memory;
pub mod policy;
pub mod redis_target;
pub mod report;
pub mod shop;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use ordershop_topology::Role;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use report::status_patch;

use crate::crd::{AutoscalingSpec, OrderShop, OrderShopSpec};
use crate::metrics::Metrics;
use shop::{Shared, ShopScaler};

/// Field manager of every change the autoscaler makes (Deployment replicas,
/// its share of the OrderShop status).
pub const AUTOSCALER_FIELD_MANAGER: &str = "ordershop-autoscaler";

/// Who sets a Deployment's `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaOwner {
    /// The reconcile applies this count.
    Reconcile(i32),
    /// The autoscaler owns the count; the reconcile omits the field.
    Autoscaler,
}

/// The owner of `role`'s replica count under `spec`.
pub fn replica_owner(spec: &OrderShopSpec, role: Role) -> ReplicaOwner {
    if spec.stopped {
        return ReplicaOwner::Reconcile(0);
    }
    let service = spec.services.get(role);
    match service.autoscaling {
        Some(autoscaling) if autoscaling.enabled => ReplicaOwner::Autoscaler,
        _ => ReplicaOwner::Reconcile(service.replicas.unwrap_or(1)),
    }
}

/// The consumers whose replica count the autoscaler owns, with their settings.
pub fn autoscaled_consumers(spec: &OrderShopSpec) -> Vec<(Role, &AutoscalingSpec)> {
    Role::ALL
        .into_iter()
        .filter_map(|role| {
            let autoscaling = spec.services.get(role).autoscaling?;
            autoscaling.enabled.then_some((role, autoscaling))
        })
        .collect()
}

/// Whether the autoscaler may change `role`'s replicas now (it may still
/// measure and publish decisions when this is false: `dryRun`, `paused`).
pub fn may_actuate(spec: &OrderShopSpec, suspended: bool, role: Role) -> bool {
    if suspended || spec.stopped {
        return false;
    }
    matches!(
        spec.services.get(role).autoscaling,
        Some(a) if a.enabled && !a.dry_run && !a.paused
    )
}

/// How often the autoscaler measures this OrderShop's consumers.
pub fn poll_interval(spec: &OrderShopSpec) -> Duration {
    Duration::from_millis(spec.autoscaling.poll_interval_ms.max(1) as u64)
}

/// How often the set of OrderShops to scale is looked at: a new or newly
/// autoscaled OrderShop gets its scaler within this.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// Whether `shop` needs a scaler: it has autoscaled consumers, or it still
/// shows what a scaler wrote before autoscaling was turned off (the scaler
/// then removes it and ends).
fn wants_scaler(shop: &OrderShop) -> bool {
    if shop.metadata.deletion_timestamp.is_some() {
        return false;
    }
    shop::has_autoscaler_status(shop) || !autoscaled_consumers(&shop.spec).is_empty()
}

/// The autoscaler of every OrderShop this operator reconciles.
#[derive(Debug)]
pub struct Autoscaler {
    shared: Arc<Shared>,
}

impl Autoscaler {
    /// `shops` and `deployments` are the controller's caches: the autoscaler
    /// reads spec, status and replica counts from them, never by polling
    /// the API server.
    pub fn new(
        client: Client,
        identity: &str,
        metrics: Metrics,
        shops: Store<OrderShop>,
        deployments: Store<Deployment>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: AUTOSCALER_FIELD_MANAGER.into(),
                instance: Some(identity.to_string()),
            },
        );
        Self {
            shared: Arc::new(Shared {
                client,
                recorder,
                metrics,
                shops,
                deployments,
                in_cluster: redis_target::in_cluster(),
            }),
        }
    }

    /// Runs a scaler per OrderShop that needs one until `stop`, then waits
    /// for them to finish their poll (see [`crate::shop_tasks`]: a scaler
    /// started before the caches' first list finds nothing to act on yet).
    pub async fn run(self, stop: CancellationToken) {
        info!("autoscaler running");
        crate::shop_tasks::run_per_shop(
            &self.shared.shops,
            SCAN_INTERVAL,
            &stop,
            wants_scaler,
            |key| ShopScaler::new(self.shared.clone(), key).run(stop.clone()),
        )
        .await;
        info!("autoscaler stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_consumers_carry_autoscaling() {
        let spec = OrderShopSpec::default();
        for role in Role::ALL {
            assert_eq!(
                spec.services.get(role).autoscaling.is_some(),
                role.is_consumer(),
                "{role:?}: the CRD's per-service types must follow ordershop-topology"
            );
        }
    }

    #[test]
    fn the_reconcile_owns_replicas_unless_autoscaling_is_enabled() {
        let mut spec = OrderShopSpec::default();
        spec.services.crm.replicas = Some(3);
        assert_eq!(replica_owner(&spec, Role::Crm), ReplicaOwner::Reconcile(3));
        assert_eq!(replica_owner(&spec, Role::Cart), ReplicaOwner::Reconcile(1));
        spec.services.cart.autoscaling.enabled = true;
        assert_eq!(replica_owner(&spec, Role::Cart), ReplicaOwner::Autoscaler);
        assert_eq!(
            autoscaled_consumers(&spec)
                .iter()
                .map(|(r, _)| *r)
                .collect::<Vec<_>>(),
            [Role::Cart]
        );
    }

    #[test]
    fn stopped_suspended_dry_run_and_paused_forbid_actuation() {
        let mut spec = OrderShopSpec::default();
        spec.services.billing.autoscaling.enabled = true;
        assert!(may_actuate(&spec, false, Role::Billing));
        assert!(!may_actuate(&spec, true, Role::Billing));
        assert!(!may_actuate(&spec, false, Role::Order), "not enabled");
        spec.services.billing.autoscaling.dry_run = true;
        assert!(!may_actuate(&spec, false, Role::Billing));
        spec.services.billing.autoscaling.dry_run = false;
        spec.services.billing.autoscaling.paused = true;
        assert!(!may_actuate(&spec, false, Role::Billing));
        spec.services.billing.autoscaling.paused = false;
        spec.stopped = true;
        assert!(!may_actuate(&spec, false, Role::Billing));
        assert_eq!(
            replica_owner(&spec, Role::Billing),
            ReplicaOwner::Reconcile(0)
        );
    }

    #[test]
    fn a_scaler_runs_for_autoscaled_consumers_and_to_clean_up_after_them() {
        use crate::crd::{ConsumerScalingStatus, OrderShopStatus, ServiceStatus};
        let mut shop = crate::children::fixtures::shop(OrderShopSpec::default());
        assert!(
            !wants_scaler(&shop),
            "nothing autoscaled, nothing to clean up"
        );
        shop.status = Some(OrderShopStatus {
            services: vec![ServiceStatus {
                name: "order".into(),
                autoscaling: Some(ConsumerScalingStatus::default()),
                ..ServiceStatus::default()
            }],
            ..OrderShopStatus::default()
        });
        assert!(wants_scaler(&shop), "leftovers of a scaler to remove");
        shop.status = None;
        shop.spec.services.order.autoscaling.enabled = true;
        assert!(wants_scaler(&shop));
        shop.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!wants_scaler(&shop), "being deleted");
    }

    #[test]
    fn poll_interval_defaults_to_one_second() {
        assert_eq!(
            poll_interval(&OrderShopSpec::default()),
            Duration::from_secs(1)
        );
    }
}
