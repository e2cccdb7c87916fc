//! Handing a consumer's `Deployment.spec.replicas` from the reconcile to the
//! autoscaler without a dip.
//!
//! With autoscaling on, the reconcile's server-side apply leaves `replicas`
//! out. An apply that no longer names a field its manager owned removes the
//! field, unless another manager owns it too, and a Deployment without
//! `replicas` is defaulted to 1: enabling autoscaling on a consumer running
//! 3 replicas would drop it to 1 until the autoscaler's next write, and a
//! scaler in `dryRun` or `paused` never writes at all.
//!
//! So before the reconcile's first apply without `replicas`, the autoscaler's
//! field manager is made an owner of the field at its current value
//! ([`hand_over`]: an apply of the scale subresource under
//! [`AUTOSCALER_FIELD_MANAGER`], the same manager and subresource the
//! autoscaler scales with). The reconcile's apply then only drops its own
//! claim and the count stays. The reconcile does this, not the autoscaler's
//! poll, because only the reconcile knows when its next apply drops the
//! field; it does it under the autoscaler's manager so that, from then on,
//! the autoscaler owns the field whether or not it ever acts.
//!
//! The other way round (autoscaling switched off, or `stopped`) needs
//! nothing of the kind: the reconcile's forced apply sets the count from the
//! spec and takes the field over from every other manager.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use ordershop_topology::Role;
use serde_json::json;

use super::{AUTOSCALER_FIELD_MANAGER, ReplicaOwner, replica_owner};
use crate::crd::{AutoscalingSpec, OrderShopSpec};

/// How often a handover is tried again when the Deployment changed between
/// reading its count and applying it (a rollout updating its status, a
/// concurrent `kubectl scale`).
const ATTEMPTS: usize = 3;

/// Whether `manager` owns `spec.replicas` of `deployment`, as its
/// `managedFields` say (an entry per manager, operation and subresource).
pub fn owns_replicas(deployment: &Deployment, manager: &str) -> bool {
    deployment.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() == Some(manager)
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    })
}

/// The consumers whose replicas must be handed to the autoscaler before the
/// reconcile applies their Deployments: the autoscaler owns their count
/// under `spec`, their Deployment exists (`cached`) and its replicas are not
/// the autoscaler's yet. A Deployment that does not exist yet is created
/// without `replicas` (1, the API default) and the autoscaler sizes it.
pub fn pending<D>(
    spec: &OrderShopSpec,
    cached: impl Fn(Role) -> Option<D>,
) -> Vec<(Role, &AutoscalingSpec)>
where
    D: std::ops::Deref<Target = Deployment>,
{
    super::autoscaled_consumers(spec)
        .into_iter()
        .filter(|(role, _)| replica_owner(spec, *role) == ReplicaOwner::Autoscaler)
        .filter(|(role, _)| {
            cached(*role).is_some_and(|d| !owns_replicas(&d, AUTOSCALER_FIELD_MANAGER))
        })
        .collect()
}

/// The count the autoscaler takes a Deployment over at: the current one, so
/// nothing moves (a count outside the policy's bounds is the policy's to
/// correct, and a paused scaler keeps it). A Deployment at 0 was stopped
/// (`spec.stopped`, or `replicas: 0`): it restarts at `minReplicas`, at
/// least 1, where dropping the field used to restart it at the API default
/// of 1; a paused or dry-run scaler would otherwise keep it at 0 for good.
pub fn takeover_count(current: Option<i32>, autoscaling: &AutoscalingSpec) -> i32 {
    match current {
        Some(n) if n > 0 => n,
        _ => autoscaling.min_replicas.max(1),
    }
}

/// The apply body of a Deployment's scale subresource. A `resource_version`
/// makes it conditional: the API server refuses it (409) when the
/// Deployment changed since that version.
pub fn scale_body(
    namespace: &str,
    name: &str,
    replicas: i32,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut metadata = json!({ "name": name, "namespace": namespace });
    if let Some(version) = resource_version {
        metadata["resourceVersion"] = json!(version);
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": metadata,
        "spec": { "replicas": replicas },
    })
}

/// Makes the autoscaler's field manager own `replicas` of the Deployment
/// `name` at its current count ([`takeover_count`]). Returns the count, or
/// None when the Deployment is gone (the apply that follows creates it).
///
/// The count is read fresh, not from the cache, and applied on condition
/// that the Deployment did not change in between: a cached count a moment
/// old would undo a scale made since.
pub async fn hand_over(
    client: &Client,
    namespace: &str,
    name: &str,
    autoscaling: &AutoscalingSpec,
) -> Result<Option<i32>, kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let scale = match api.get_scale(name).await {
            Ok(scale) => scale,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(error) => return Err(error),
        };
        let count = takeover_count(scale.spec.and_then(|s| s.replicas), autoscaling);
        let body = scale_body(
            namespace,
            name,
            count,
            scale.metadata.resource_version.as_deref(),
        );
        // Forced: a value equal to the reconcile's is shared, not a
        // conflict, but a hand `kubectl scale` may own the field too.
        let applied = api
            .patch_scale(
                name,
                &PatchParams::apply(AUTOSCALER_FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await;
        match applied {
            Ok(_) => return Ok(Some(count)),
            // A forced apply has no field conflicts: 409 is the
            // resourceVersion condition. Read the new count and try again.
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < ATTEMPTS => {}
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    fn entry(
        manager: &str,
        subresource: Option<&str>,
        fields: serde_json::Value,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            subresource: subresource.map(Into::into),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    fn deployment(replicas: i32, managers: Vec<ManagedFieldsEntry>) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.managed_fields = Some(managers);
        d.spec = Some(DeploymentSpec {
            replicas: Some(replicas),
            ..DeploymentSpec::default()
        });
        d
    }

    fn replicas_of(manager: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
        entry(manager, subresource, json!({"f:spec": {"f:replicas": {}}}))
    }

    fn template_of(manager: &str) -> ManagedFieldsEntry {
        entry(manager, None, json!({"f:spec": {"f:template": {}}}))
    }

    #[test]
    fn ownership_is_read_per_manager_from_managed_fields() {
        let d = deployment(
            3,
            vec![
                template_of(crate::FIELD_MANAGER),
                replicas_of(crate::FIELD_MANAGER, None),
                template_of(AUTOSCALER_FIELD_MANAGER),
            ],
        );
        assert!(owns_replicas(&d, crate::FIELD_MANAGER));
        assert!(
            !owns_replicas(&d, AUTOSCALER_FIELD_MANAGER),
            "owning other fields is not owning replicas"
        );
        let scaled = deployment(
            3,
            vec![replicas_of(AUTOSCALER_FIELD_MANAGER, Some("scale"))],
        );
        assert!(
            owns_replicas(&scaled, AUTOSCALER_FIELD_MANAGER),
            "an apply through the scale subresource owns the Deployment's replicas"
        );
        assert!(!owns_replicas(
            &Deployment::default(),
            AUTOSCALER_FIELD_MANAGER
        ));
    }

    #[test]
    fn a_handover_is_pending_until_the_autoscaler_owns_the_count() {
        let mut spec = OrderShopSpec::default();
        spec.services.order.replicas = Some(3);
        let reconciled = deployment(3, vec![replicas_of(crate::FIELD_MANAGER, None)]);
        let handed = deployment(
            3,
            vec![
                replicas_of(crate::FIELD_MANAGER, None),
                replicas_of(AUTOSCALER_FIELD_MANAGER, Some("scale")),
            ],
        );
        let roles = |spec: &OrderShopSpec, d: &Deployment| -> Vec<Role> {
            pending(spec, |role| {
                (role == Role::Order).then(|| Box::new(d.clone()))
            })
            .iter()
            .map(|(r, _)| *r)
            .collect()
        };

        assert!(
            roles(&spec, &reconciled).is_empty(),
            "autoscaling off: the reconcile keeps the count"
        );

        spec.services.order.replicas = None;
        spec.services.order.autoscaling.enabled = true;
        assert_eq!(
            roles(&spec, &reconciled),
            [Role::Order],
            "autoscaling just enabled"
        );
        assert!(roles(&spec, &handed).is_empty(), "already handed over");
        assert!(
            pending(&spec, |_| None::<Box<Deployment>>).is_empty(),
            "no Deployment yet: created without replicas"
        );

        for (dry_run, paused) in [(true, false), (false, true)] {
            spec.services.order.autoscaling.dry_run = dry_run;
            spec.services.order.autoscaling.paused = paused;
            assert_eq!(
                roles(&spec, &reconciled),
                [Role::Order],
                "a scaler that never acts must own the count all the same"
            );
        }

        spec.stopped = true;
        assert!(
            roles(&spec, &reconciled).is_empty(),
            "stopped: the reconcile applies 0 and owns the count"
        );
    }

    #[test]
    fn the_takeover_keeps_the_current_count_and_restarts_a_stopped_one() {
        let mut autoscaling = AutoscalingSpec {
            enabled: true,
            min_replicas: 2,
            max_replicas: 4,
            ..AutoscalingSpec::default()
        };
        assert_eq!(takeover_count(Some(3), &autoscaling), 3);
        assert_eq!(
            takeover_count(Some(9), &autoscaling),
            9,
            "above maxReplicas: the policy's to bring down, not the handover's"
        );
        assert_eq!(
            takeover_count(Some(1), &autoscaling),
            1,
            "below minReplicas: the policy's to raise"
        );
        assert_eq!(takeover_count(Some(0), &autoscaling), 2);
        assert_eq!(takeover_count(None, &autoscaling), 2);
        autoscaling.min_replicas = 0;
        assert_eq!(takeover_count(Some(0), &autoscaling), 1);
    }

    #[test]
    fn the_scale_body_is_conditional_on_the_version_read() {
        let body = scale_body("ns", "shop-order", 3, Some("42"));
        assert_eq!(
            body,
            json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": "shop-order", "namespace": "ns", "resourceVersion": "42"},
                "spec": {"replicas": 3},
            })
        );
        assert!(
            scale_body("ns", "shop-order", 3, None)
                .pointer("/metadata/resourceVersion")
                .is_none()
        );
    }
}
