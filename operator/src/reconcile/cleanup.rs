//! What deleting an OrderShop leaves behind, told to the user.
//!
//! Garbage collection removes every child with its OrderShop, except the
//! managed Redis' volume claim while `redis.storage.retainOnDelete` is true:
//! the StatefulSet's claim retention policy keeps it on purpose, and it then
//! outlives the shop without a word, holding data and storage. The
//! finalizer [`FINALIZER`] holds the deletion for one pass that publishes a
//! `VolumeRetained` Event naming each kept claim, then lets it go.
//!
//! The cleanup never fails for good: a claim list it may not make falls
//! back on the spec, an Event the API refuses is logged. Only removing the
//! finalizer itself can fail, and that heals on a retry.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::{Context, Error, key, record};
use crate::children::BuildError;
use crate::crd::OrderShop;
use crate::names::{Names, REDIS_COMPONENT};

/// The finalizer the operator puts on every OrderShop before it creates
/// any child, so that no deletion goes unseen.
pub const FINALIZER: &str = "ordershop.io/cleanup";

/// Reason of the Event that names a Redis volume claim kept after the
/// OrderShop's deletion.
pub const VOLUME_RETAINED: &str = "VolumeRetained";

/// The Redis volume claims that outlive a deleted OrderShop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retained {
    /// Claim names, sorted.
    pub claims: Vec<String>,
    /// Whether the claims were seen in a list (otherwise they are inferred
    /// from the StatefulSet or the spec and may not exist).
    pub confirmed: bool,
}

/// Which of the shop's Redis volume claims stay after its deletion.
///
/// With `listed` (the claims carrying the Redis pods' labels), it is what is
/// really there: each claim of the shop's Redis StatefulSet that is not
/// being deleted already and that the StatefulSet does not own. The
/// StatefulSet owns its claims exactly when its `whenDeleted` policy is
/// `Delete` (`retainOnDelete: false`), and garbage collection then removes
/// them with it; a claim kept from an earlier managed Redis (the shop has
/// since switched to an external one) has no owner and stays as well.
///
/// Without a list (refused or failed), it is inferred: the live
/// StatefulSet's `whenDeleted` (`Retain` unless it says `Delete`, the API's
/// default), or, without one in the cache, the spec (a managed Redis with
/// `retainOnDelete`), for pod 0, the only one a shop's Redis has.
pub fn retained_claims(
    shop: &OrderShop,
    live: Option<&StatefulSet>,
    listed: Option<&[ObjectMeta]>,
) -> Retained {
    let names = Names::new(shop.name_any());
    if let Some(listed) = listed {
        let mut claims: Vec<String> = listed
            .iter()
            .filter(|claim| claim.deletion_timestamp.is_none())
            .filter(|claim| !owned_by_stateful_set(claim, &names.redis()))
            .filter_map(|claim| claim.name.clone())
            .filter(|name| is_redis_claim(&names, name))
            .collect();
        claims.sort();
        return Retained {
            claims,
            confirmed: true,
        };
    }
    let retain = match live {
        Some(stateful_set) => {
            stateful_set
                .spec
                .as_ref()
                .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
                .and_then(|p| p.when_deleted.as_deref())
                != Some("Delete")
        }
        None => shop.spec.redis.external.is_none() && shop.spec.redis.storage.retain_on_delete,
    };
    Retained {
        claims: if retain {
            vec![names.redis_claim(0)]
        } else {
            Vec::new()
        },
        confirmed: false,
    }
}

/// `data-<shop>-redis-<ordinal>`: a claim of this shop's Redis StatefulSet
/// (the label selector of the list also matches claims of a StatefulSet
/// someone else made with the same pod labels).
fn is_redis_claim(names: &Names, claim: &str) -> bool {
    let prefix = names.redis_claim(0);
    let prefix = prefix.trim_end_matches('0');
    claim
        .strip_prefix(prefix)
        .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
}

fn owned_by_stateful_set(claim: &ObjectMeta, stateful_set: &str) -> bool {
    claim.owner_references.iter().flatten().any(|owner| {
        owner.kind == "StatefulSet"
            && owner.api_version.starts_with("apps/")
            && owner.name == stateful_set
    })
}

/// The Event note about one kept claim.
pub fn retained_note(claim: &str, namespace: &str, confirmed: bool) -> String {
    let kept = if confirmed {
        "is kept"
    } else {
        // The claims could not be listed: say what the policy implies.
        "is kept if it exists"
    };
    format!(
        "Redis volume claim {claim} {kept} (redis.storage.retainOnDelete); delete it with \
         `kubectl delete pvc {claim} -n {namespace}` when its data is no longer needed"
    )
}

/// The finalizer's cleanup of a deleted OrderShop: reports the kept Redis
/// volume claims, forgets the shop's bookkeeping. Children need nothing:
/// garbage collection removes them once the finalizer is gone.
pub(super) async fn cleanup(shop: &OrderShop, ctx: &Context) -> Result<Action, Error> {
    let namespace = shop.namespace().ok_or(BuildError::NotPersisted)?;
    let names = Names::new(shop.name_any());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    // The labels the StatefulSet controller copies from its selector onto
    // every claim it makes.
    let selector = names
        .selector(REDIS_COMPONENT)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let listed = match claims
        .list_metadata(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => Some(
            list.items
                .into_iter()
                .map(|c| c.metadata)
                .collect::<Vec<_>>(),
        ),
        Err(error) => {
            // A refusal (RBAC of an older install) would not heal on a
            // retry, and a retry would hold the deletion: infer instead.
            warn!(ordershop = %key(shop), %error, "could not list the Redis volume claims; reporting what the retention policy implies");
            None
        }
    };
    let live = ctx.stores.stateful_set(&namespace, &names.redis());
    let retained = retained_claims(shop, live.as_deref(), listed.as_deref());
    for claim in &retained.claims {
        let note = retained_note(claim, &namespace, retained.confirmed);
        info!(ordershop = %key(shop), claim = %claim, "{note}");
        record(
            ctx,
            shop,
            Event {
                type_: EventType::Normal,
                reason: VOLUME_RETAINED.into(),
                note: Some(note),
                action: "Cleanup".into(),
                secondary: None,
            },
        )
        .await;
    }
    if let Some(uid) = shop.uid() {
        ctx.forget(&uid);
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{
        StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::children::fixtures;
    use crate::crd::{ExternalRedisSpec, OrderShopSpec};

    fn shop(retain_on_delete: bool, external: bool) -> OrderShop {
        let mut spec = OrderShopSpec::default();
        spec.redis.storage.retain_on_delete = retain_on_delete;
        if external {
            spec.redis.external = Some(ExternalRedisSpec {
                url: "redis://redis:6379/0".into(),
                password_secret_ref: None,
                ca_secret_ref: None,
            });
        }
        fixtures::shop(spec)
    }

    fn claim(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    /// A claim as the StatefulSet controller leaves it under `whenDeleted: Delete`.
    fn owned_claim(name: &str, stateful_set: &str) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "StatefulSet".into(),
                name: stateful_set.into(),
                uid: "sts-uid".into(),
                ..OwnerReference::default()
            }]),
            ..claim(name)
        }
    }

    fn stateful_set(when_deleted: Option<&str>) -> StatefulSet {
        StatefulSet {
            spec: Some(StatefulSetSpec {
                persistent_volume_claim_retention_policy: when_deleted.map(|policy| {
                    StatefulSetPersistentVolumeClaimRetentionPolicy {
                        when_deleted: Some(policy.into()),
                        when_scaled: Some("Retain".into()),
                    }
                }),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn listed(shop: &OrderShop, claims: &[ObjectMeta]) -> Retained {
        retained_claims(shop, None, Some(claims))
    }

    #[test]
    fn a_kept_claim_is_reported_by_name() {
        let retained = listed(&shop(true, false), &[claim("data-shop-redis-0")]);
        assert_eq!(
            retained,
            Retained {
                claims: vec!["data-shop-redis-0".into()],
                confirmed: true,
            }
        );
    }

    #[test]
    fn a_claim_the_stateful_set_deletes_is_not_reported() {
        // retainOnDelete: false → whenDeleted: Delete → the StatefulSet owns
        // the claim and garbage collection removes it.
        let retained = listed(
            &shop(false, false),
            &[owned_claim("data-shop-redis-0", "shop-redis")],
        );
        assert!(retained.claims.is_empty());
    }

    #[test]
    fn no_claim_means_nothing_to_report() {
        // A Redis that never got its pod (suspended from the start, no
        // storage class), or a claim already deleted by hand.
        assert!(listed(&shop(true, false), &[]).claims.is_empty());
    }

    #[test]
    fn a_claim_being_deleted_is_not_reported() {
        let mut deleting = claim("data-shop-redis-0");
        deleting.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert!(listed(&shop(true, false), &[deleting]).claims.is_empty());
    }

    #[test]
    fn claims_of_other_objects_with_the_same_labels_are_ignored() {
        let retained = listed(
            &shop(true, false),
            &[
                claim("data-shop-redis-0"),
                claim("data-shop-redis-headless-0"),
                claim("data-shop-redis-"),
                claim("data-shop-redis-0x"),
                claim("data-other-redis-0"),
                claim("cache-shop-redis-0"),
                claim("data-shop-redis-1"),
            ],
        );
        assert_eq!(retained.claims, ["data-shop-redis-0", "data-shop-redis-1"]);
    }

    #[test]
    fn a_claim_kept_from_an_earlier_managed_redis_is_reported_after_a_switch_to_external() {
        let retained = listed(&shop(true, true), &[claim("data-shop-redis-0")]);
        assert_eq!(retained.claims, ["data-shop-redis-0"]);
    }

    #[test]
    fn without_a_list_the_spec_decides() {
        let inferred = retained_claims(&shop(true, false), None, None);
        assert_eq!(
            inferred,
            Retained {
                claims: vec!["data-shop-redis-0".into()],
                confirmed: false,
            }
        );
        assert!(
            retained_claims(&shop(false, false), None, None)
                .claims
                .is_empty()
        );
        // An external Redis has no StatefulSet and no claim.
        assert!(
            retained_claims(&shop(true, true), None, None)
                .claims
                .is_empty()
        );
    }

    #[test]
    fn without_a_list_the_live_stateful_set_overrides_the_spec() {
        // The spec changed while suspended: the live policy is what applies.
        let live = stateful_set(Some("Delete"));
        assert!(
            retained_claims(&shop(true, false), Some(&live), None)
                .claims
                .is_empty()
        );
        let live = stateful_set(Some("Retain"));
        assert_eq!(
            retained_claims(&shop(false, false), Some(&live), None).claims,
            ["data-shop-redis-0"]
        );
        // No policy: the API's default is Retain.
        let live = stateful_set(None);
        assert_eq!(
            retained_claims(&shop(false, false), Some(&live), None).claims,
            ["data-shop-redis-0"]
        );
    }

    #[test]
    fn the_note_names_the_claim_and_how_to_delete_it() {
        let note = retained_note("data-shop-redis-0", "ns", true);
        assert_eq!(
            note,
            "Redis volume claim data-shop-redis-0 is kept (redis.storage.retainOnDelete); \
             delete it with `kubectl delete pvc data-shop-redis-0 -n ns` when its data is no \
             longer needed"
        );
        assert!(
            retained_note("data-shop-redis-0", "ns", false)
                .contains("data-shop-redis-0 is kept if it exists")
        );
    }

    #[test]
    fn the_finalizer_is_a_qualified_name() {
        // Kubernetes warns about finalizer names without a domain prefix.
        let (domain, name) = FINALIZER.split_once('/').expect("domain/name");
        assert_eq!(domain, crate::crd::GROUP);
        assert!(!name.is_empty());
    }
}
