//! Applying desired children with server-side apply, and pruning owned
//! children that are no longer desired, against the watch caches.

use std::collections::HashSet;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, PartialObjectMeta, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::FIELD_MANAGER;
use crate::children::Desired;

/// The operator's caches of its children, fed by the same watches that
/// trigger reconciliations. Only Deployments and StatefulSets are kept whole
/// (their status is read); of the rest only metadata is watched. Secrets
/// are not watched at all: the operator may only get, create and patch them
/// (least privilege), and reads its one Secret per shop with a get.
#[derive(Clone)]
pub struct ChildStores {
    pub deployments: Store<Deployment>,
    pub stateful_sets: Store<StatefulSet>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub disruption_budgets: Store<PartialObjectMeta<PodDisruptionBudget>>,
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    pub ingresses: Store<PartialObjectMeta<Ingress>>,
}

impl std::fmt::Debug for ChildStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildStores")
            .field("deployments", &self.deployments.state().len())
            .field("stateful_sets", &self.stateful_sets.state().len())
            .field("services", &self.services.state().len())
            .finish_non_exhaustive()
    }
}

impl ChildStores {
    /// Waits until every cache has its initial list; false when a watch
    /// ended for good (shutdown).
    pub async fn wait_until_ready(&self) -> bool {
        self.deployments.wait_until_ready().await.is_ok()
            && self.stateful_sets.wait_until_ready().await.is_ok()
            && self.services.wait_until_ready().await.is_ok()
            && self.disruption_budgets.wait_until_ready().await.is_ok()
            && self.network_policies.wait_until_ready().await.is_ok()
            && self.ingresses.wait_until_ready().await.is_ok()
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<Deployment>> {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
    }

    pub fn stateful_set(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<StatefulSet>> {
        self.stateful_sets
            .get(&ObjectRef::new(name).within(namespace))
    }
}

fn cached<T>(store: &Store<T>, namespace: &str, name: &str) -> bool
where
    T: Resource + Clone + 'static,
    T::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    store.get(&ObjectRef::new(name).within(namespace)).is_some()
}

/// Server-side applies one child with the operator's field manager, forcing
/// ownership: a hand edit of a field the operator sets is reverted.
async fn apply_one<K>(client: &Client, child: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let name = child.name_any();
    let namespace = child.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(child),
    )
    .await
    .map_err(|source| Error::Kube {
        action: "apply",
        kind: K::kind(&()).into_owned(),
        name,
        source,
    })
}

async fn apply_kind<K, T>(
    client: &Client,
    store: &Store<T>,
    children: &[K],
    created: &mut Vec<ObjectReference>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
    T: Resource + Clone + 'static,
    T::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    // Children of one kind are independent: apply them concurrently (a
    // pass is then a few round trips per kind, not one per child).
    let applied = futures::future::try_join_all(children.iter().map(|child| async move {
        let namespace = child.namespace().unwrap_or_default();
        let existed = cached(store, &namespace, &child.name_any());
        let applied = apply_one(client, child).await?;
        Ok::<_, Error>((existed, applied))
    }))
    .await?;
    created.extend(
        applied
            .into_iter()
            .filter(|(existed, _)| !existed)
            .map(|(_, applied)| applied.object_ref(&())),
    );
    Ok(())
}

/// Applies the desired Secrets; `existing` names those the reconcile has
/// just read (there is no cache of Secrets), so the others are created.
async fn apply_secrets(
    client: &Client,
    secrets: &[Secret],
    existing: &HashSet<String>,
    created: &mut Vec<ObjectReference>,
) -> Result<(), Error> {
    for secret in secrets {
        let applied = apply_one(client, secret).await?;
        if !existing.contains(&secret.name_any()) {
            created.push(applied.object_ref(&()));
        }
    }
    Ok(())
}

/// Applies every desired child, kind by kind, Redis first (the services
/// need it), and returns references to the children that did not exist
/// before (not in the caches, or for Secrets not in `existing_secrets`):
/// the ones this pass created.
pub(super) async fn apply_all(
    client: &Client,
    stores: &ChildStores,
    desired: &Desired,
    existing_secrets: &HashSet<String>,
) -> Result<Vec<ObjectReference>, Error> {
    let mut created = Vec::new();
    apply_secrets(client, &desired.secrets, existing_secrets, &mut created).await?;
    apply_kind(client, &stores.services, &desired.services, &mut created).await?;
    apply_kind(
        client,
        &stores.stateful_sets,
        &desired.stateful_sets,
        &mut created,
    )
    .await?;
    apply_kind(
        client,
        &stores.disruption_budgets,
        &desired.disruption_budgets,
        &mut created,
    )
    .await?;
    apply_kind(
        client,
        &stores.network_policies,
        &desired.network_policies,
        &mut created,
    )
    .await?;
    apply_kind(
        client,
        &stores.deployments,
        &desired.deployments,
        &mut created,
    )
    .await?;
    apply_kind(client, &stores.ingresses, &desired.ingresses, &mut created).await?;
    Ok(created)
}

fn names_of<K: Resource>(children: &[K]) -> HashSet<String> {
    children.iter().map(|c| c.name_any()).collect()
}

/// Deletes owned children of one namespace that are no longer desired.
struct Pruner<'a> {
    client: &'a Client,
    namespace: &'a str,
    owner_uid: &'a str,
    /// `Kind name` of each deleted child.
    deleted: Vec<String>,
}

impl Pruner<'_> {
    /// Deletes the cached children of kind `K` controlled by the owner in
    /// the namespace whose names are not among `desired`'s.
    async fn prune<K, T>(&mut self, store: &Store<T>, desired: &[K]) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
        T: Resource + Clone + 'static,
        T::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let keep = names_of(desired);
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        for object in store.state() {
            let controlled = object
                .owner_references()
                .iter()
                .any(|o| o.uid == self.owner_uid && o.controller == Some(true));
            let name = object.name_any();
            if !controlled
                || object.namespace().as_deref() != Some(self.namespace)
                || keep.contains(&name)
            {
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => self.deleted.push(format!("{} {name}", K::kind(&()))),
                // Already gone: the cache was a step behind.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kube {
                        action: "delete",
                        kind: K::kind(&()).into_owned(),
                        name,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Deletes owned children that `desired` no longer contains (an Ingress
/// removed from the spec, the managed Redis after a switch to an external
/// one, a disabled NetworkPolicy). Returns `Kind name` of each deleted child.
///
/// The generated password Secret is kept (the operator has no right to
/// delete Secrets): garbage collection removes it with the OrderShop, and a
/// switch back to a managed Redis reuses it.
pub(super) async fn prune(
    client: &Client,
    stores: &ChildStores,
    namespace: &str,
    owner_uid: &str,
    desired: &Desired,
) -> Result<Vec<String>, Error> {
    let mut pruner = Pruner {
        client,
        namespace,
        owner_uid,
        deleted: Vec::new(),
    };
    pruner.prune(&stores.services, &desired.services).await?;
    pruner
        .prune(&stores.stateful_sets, &desired.stateful_sets)
        .await?;
    pruner
        .prune(&stores.disruption_budgets, &desired.disruption_budgets)
        .await?;
    pruner
        .prune(&stores.network_policies, &desired.network_policies)
        .await?;
    pruner
        .prune(&stores.deployments, &desired.deployments)
        .await?;
    pruner.prune(&stores.ingresses, &desired.ingresses).await?;
    Ok(pruner.deleted)
}
