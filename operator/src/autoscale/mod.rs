//! The seam between the reconcile and the backlog autoscaler.
//!
//! The measurement (Redis) and the decision live in the `ordershop-scaling`
//! crate; the loop that drives them plugs in here. This module fixes the
//! contract both sides follow:
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
//!   `autoscaling.enabled`);
//! - `spec.stopped: true` → the reconcile applies `replicas: 0` for every
//!   role, taking the field over (forced apply); the autoscaler must not act
//!   ([`may_actuate`] is false) and takes the field back after a restart.
//!
//! **Status.** The autoscaler writes, with its own field manager, the
//! `backlog`, `desiredReplicas`, `lastScaleTime` and `lastScaleReason` of a
//! consumer's `status.services[]` entry (a map-list keyed by `name`), the
//! total `status.backlog`, and the `Scaling` condition; see
//! [`status_patch`]. The reconcile writes `currentReplicas`,
//! `readyReplicas`, `autoscaled` and, for roles it scales, `desiredReplicas`.
//!
//! **Metrics.** Per-consumer backlog and decided replicas go to
//! [`crate::metrics::Metrics::record_consumer`].

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use ordershop_topology::Role;
use serde_json::json;

use crate::crd::{AutoscalingSpec, OrderShopSpec, ServiceStatus};

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

/// The body of the autoscaler's server-side apply to the OrderShop's status
/// subresource: only the fields it owns. Apply it with
/// `PatchParams::apply(AUTOSCALER_FIELD_MANAGER)` to `ordershops/<name>/status`.
pub fn status_patch(
    consumers: &[ServiceStatus],
    total_backlog: i64,
    scaling: Option<&Condition>,
) -> serde_json::Value {
    let services: Vec<serde_json::Value> = consumers
        .iter()
        .map(|c| {
            let mut entry = json!({ "name": c.name });
            let map = entry.as_object_mut().expect("object literal");
            if let Some(v) = c.backlog {
                map.insert("backlog".into(), json!(v));
            }
            if let Some(v) = c.desired_replicas {
                map.insert("desiredReplicas".into(), json!(v));
            }
            if let Some(v) = &c.last_scale_time {
                map.insert("lastScaleTime".into(), json!(v));
            }
            if let Some(v) = &c.last_scale_reason {
                map.insert("lastScaleReason".into(), json!(v));
            }
            entry
        })
        .collect();
    let mut status = json!({ "backlog": total_backlog, "services": services });
    if let Some(condition) = scaling {
        status["conditions"] = json!([condition]);
    }
    json!({
        "apiVersion": format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION),
        "kind": "OrderShop",
        "status": status,
    })
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
    fn the_status_patch_names_only_autoscaler_fields() {
        let patch = status_patch(
            &[ServiceStatus {
                name: "inventory".into(),
                backlog: Some(42),
                desired_replicas: Some(3),
                current_replicas: Some(99),
                ..ServiceStatus::default()
            }],
            42,
            None,
        );
        let entry = &patch["status"]["services"][0];
        assert_eq!(entry["name"], "inventory");
        assert_eq!(entry["backlog"], 42);
        assert_eq!(entry["desiredReplicas"], 3);
        assert!(
            entry.get("currentReplicas").is_none(),
            "owned by the reconcile"
        );
        assert_eq!(patch["status"]["backlog"], 42);
        assert_eq!(patch["apiVersion"], "ordershop.io/v1alpha1");
    }

    #[test]
    fn poll_interval_defaults_to_one_second() {
        assert_eq!(
            poll_interval(&OrderShopSpec::default()),
            Duration::from_secs(1)
        );
    }
}
