//! Reading an OrderShop and its children back from the API server.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::PartialObjectMeta;
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt};
use ordershop_operator::crd::OrderShop;
use ordershop_operator::crd::condition;
use ordershop_operator::names::Names;
use ordershop_topology::Role;
use serde::de::DeserializeOwned;

use crate::tools::kubectl;

/// `kubectl apply -n <ns> -f deploy/examples/<file>`: the documented path.
pub fn apply_example(namespace: &str, file: &str) {
    let path = crate::repo_root().join("deploy/examples").join(file);
    kubectl(&[
        "apply",
        "-n",
        namespace,
        "-f",
        path.to_str().expect("UTF-8 path"),
    ]);
}

pub fn shops(client: &Client, namespace: &str) -> Api<OrderShop> {
    Api::namespaced(client.clone(), namespace)
}

/// Whether `shop`'s `type_` condition is True for its current generation.
pub fn condition_true(shop: &OrderShop, type_: &str) -> bool {
    let Some(status) = &shop.status else {
        return false;
    };
    status.observed_generation == shop.metadata.generation
        && condition::is_true(&status.conditions, type_)
}

/// A child the operator should have made: kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub kind: &'static str,
    pub name: String,
}

/// The children of an OrderShop named `shop` (managed Redis or not, with
/// or without an Ingress).
pub fn expected_children(shop: &str, managed_redis: bool, ingress: bool) -> Vec<Expected> {
    let names = Names::new(shop);
    let mut out = Vec::new();
    for role in Role::ALL {
        out.push(Expected {
            kind: "Deployment",
            name: names.service(role),
        });
        out.push(Expected {
            kind: "Service",
            name: names.service(role),
        });
    }
    // The headless Services the clients resolve, in either Redis mode.
    for role in [Role::EventStore, Role::MessageQueue] {
        out.push(Expected {
            kind: "Service",
            name: names.pods_service(role),
        });
    }
    if managed_redis {
        out.push(Expected {
            kind: "StatefulSet",
            name: names.redis(),
        });
        out.push(Expected {
            kind: "Service",
            name: names.redis(),
        });
        out.push(Expected {
            kind: "Service",
            name: names.redis_headless(),
        });
        out.push(Expected {
            kind: "Secret",
            name: names.redis_secret(),
        });
        out.push(Expected {
            kind: "PodDisruptionBudget",
            name: names.redis(),
        });
        out.push(Expected {
            kind: "NetworkPolicy",
            name: names.redis(),
        });
    }
    if ingress {
        out.push(Expected {
            kind: "Ingress",
            name: names.ingress(),
        });
    }
    out
}

async fn meta_of<K>(client: &Client, namespace: &str, name: &str) -> Option<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    Api::<PartialObjectMeta<K>>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading {} {name}: {e}", K::kind(&())))
}

/// Owner uids of the child, or None when it does not exist.
pub async fn owners_of(
    client: &Client,
    namespace: &str,
    child: &Expected,
) -> Option<Vec<(String, bool)>> {
    let n = child.name.as_str();
    let meta: Option<Vec<_>> = match child.kind {
        "Deployment" => meta_of::<Deployment>(client, namespace, n)
            .await
            .map(|m| m.owner_references().to_vec()),
        "Service" => meta_of::<Service>(client, namespace, n)
            .await
            .map(|m| m.owner_references().to_vec()),
        "StatefulSet" => meta_of::<StatefulSet>(client, namespace, n)
            .await
            .map(|m| m.owner_references().to_vec()),
        "Secret" => meta_of::<Secret>(client, namespace, n)
            .await
            .map(|m| m.owner_references().to_vec()),
        "PodDisruptionBudget" => meta_of::<PodDisruptionBudget>(client, namespace, n)
            .await
            .map(|m| m.owner_references().to_vec()),
        "NetworkPolicy" => meta_of::<NetworkPolicy>(client, namespace, n)
            .await
            .map(|m| m.owner_references().to_vec()),
        "Ingress" => meta_of::<Ingress>(client, namespace, n)
            .await
            .map(|m| m.owner_references().to_vec()),
        other => panic!("unknown child kind {other}"),
    };
    meta.map(|refs| {
        refs.into_iter()
            .map(|r| (r.uid, r.controller == Some(true)))
            .collect()
    })
}

/// Children of `expected` that are missing or not controlled by `owner_uid`
/// (empty when all are there and owned).
pub async fn missing_or_unowned(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    expected: &[Expected],
) -> Vec<String> {
    let mut problems = Vec::new();
    for child in expected {
        match owners_of(client, namespace, child).await {
            None => problems.push(format!("{} {} missing", child.kind, child.name)),
            Some(owners)
                if !owners
                    .iter()
                    .any(|(uid, controller)| uid == owner_uid && *controller) =>
            {
                problems.push(format!(
                    "{} {} not controlled by the OrderShop",
                    child.kind, child.name
                ))
            }
            Some(_) => {}
        }
    }
    problems
}

/// Children of `expected` that still exist.
pub async fn still_present(client: &Client, namespace: &str, expected: &[Expected]) -> Vec<String> {
    let mut present = Vec::new();
    for child in expected {
        if owners_of(client, namespace, child).await.is_some() {
            present.push(format!("{} {}", child.kind, child.name));
        }
    }
    present
}

/// The field managers that own `spec.replicas` of a Deployment.
pub fn replicas_managers(deployment: &Deployment) -> Vec<String> {
    deployment
        .managed_fields()
        .iter()
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .filter_map(|entry| entry.manager.clone())
        .collect()
}
