//! What an OrderShop becomes: the desired children, built by pure functions.
//!
//! Nothing here talks to the API server, so every rule (ownership, replicas,
//! probes, security context, Redis wiring) is unit-tested on plain values.
//! The reconcile applies the result with server-side apply and prunes owned
//! objects that are no longer desired.

mod balancing;
mod connection;
mod grpc_auth;
mod ingress;
mod network_policy;
mod quantity;
mod redis;
mod security;
mod workloads;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use ordershop_topology::Role;

pub use grpc_auth::GrpcSecrets;

use crate::crd::OrderShop;
use crate::names::Names;

pub use connection::RedisConnection;
pub use redis::keep_live_claim_templates;

/// Operator-wide inputs to the build that are not in the OrderShop.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Image tag used when `spec.image.tag` is unset (the operator's version).
    pub default_image_tag: String,
    /// Namespace the operator runs in, when known: the Redis NetworkPolicy
    /// then also admits the operator's pods (the autoscaler measures Redis).
    pub operator_namespace: Option<String>,
}

/// Every child an OrderShop should have right now.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub secrets: Vec<Secret>,
    pub services: Vec<Service>,
    pub stateful_sets: Vec<StatefulSet>,
    pub deployments: Vec<Deployment>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    pub network_policies: Vec<NetworkPolicy>,
    pub ingresses: Vec<Ingress>,
}

/// Why children cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the OrderShop has no uid or namespace yet (not read from the API server?)")]
    NotPersisted,
}

/// The password a managed Redis is started with (the reconcile reads an
/// existing one back so it never changes once generated).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword(pub String);

impl std::fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisPassword(<redacted>)")
    }
}

/// The children of `shop`. `redis_password` is needed (and used) only in
/// managed-Redis mode; `grpc` is the shop's gRPC key and TLS (generated
/// once, read back on every pass).
pub fn desired(
    shop: &OrderShop,
    redis_password: Option<&RedisPassword>,
    grpc: &GrpcSecrets,
    settings: &Settings,
) -> Result<Desired, BuildError> {
    let owner = Owner::of(shop)?;
    let names = Names::new(shop.name_any());
    let mut out = Desired::default();
    out.secrets.push(grpc_auth::secret(&names, &owner, grpc));

    let connection = match &shop.spec.redis.external {
        Some(external) => RedisConnection::external(external),
        None => {
            let redis = redis::ManagedRedis::new(shop, &names, &owner);
            if let Some(password) = redis_password {
                out.secrets.push(redis.secret(password));
            }
            out.services.push(redis.headless_service());
            out.services.push(redis.client_service());
            out.stateful_sets.push(redis.stateful_set());
            out.disruption_budgets.push(redis.disruption_budget());
            if shop.spec.network_policy.enabled {
                out.network_policies.push(network_policy::redis_ingress(
                    &names,
                    &owner,
                    settings.operator_namespace.as_deref(),
                ));
            }
            RedisConnection::managed(&names)
        }
    };

    let workloads =
        workloads::Workloads::new(shop, &names, &owner, &connection, &grpc.key, settings);
    for role in Role::ALL {
        out.deployments.push(workloads.deployment(role));
        out.services.push(workloads.service(role));
    }
    // The headless Services the clients of the event store and the queue
    // resolve (whatever the Redis mode: they select the role's pods only).
    for role in balancing::BALANCED {
        out.services
            .push(balancing::pods_service(&names, &owner, role));
    }
    if let Some(ingress) = &shop.spec.gateway.ingress {
        out.ingresses
            .push(ingress::gateway(&names, &owner, ingress));
    }
    Ok(out)
}

/// Metadata shared by every child: name, namespace, labels, and the
/// controller owner reference that makes garbage collection delete it with
/// its OrderShop.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    namespace: String,
    reference: OwnerReference,
}

impl Owner {
    pub(crate) fn of(shop: &OrderShop) -> Result<Self, BuildError> {
        let namespace = shop.namespace().ok_or(BuildError::NotPersisted)?;
        let reference = shop
            .controller_owner_ref(&())
            .ok_or(BuildError::NotPersisted)?;
        Ok(Self {
            namespace,
            reference,
        })
    }

    pub(crate) fn meta(&self, name: String, names: &Names, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(names.labels(component)),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::crd::OrderShopSpec;

    /// An OrderShop as read back from the API server (uid, namespace, generation set).
    pub(crate) fn shop(spec: OrderShopSpec) -> OrderShop {
        let mut shop = OrderShop::new("shop", spec);
        shop.metadata.namespace = Some("ns".into());
        shop.metadata.uid = Some("0000-uid".into());
        shop.metadata.generation = Some(3);
        shop
    }

    pub(crate) fn settings() -> Settings {
        Settings {
            default_image_tag: "1.2.3".into(),
            operator_namespace: Some("ordershop-system".into()),
        }
    }

    /// One key and certificate for every build of a test, as the
    /// reconcile reads them back.
    pub(crate) fn grpc_key() -> GrpcSecrets {
        static SECRETS: std::sync::OnceLock<GrpcSecrets> = std::sync::OnceLock::new();
        SECRETS
            .get_or_init(|| GrpcSecrets::generate(&Names::new("shop"), "ns").unwrap())
            .clone()
    }

    pub(crate) fn password() -> RedisPassword {
        RedisPassword("secret".into())
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::crd::{ExternalRedisSpec, IngressSpec, OrderShopSpec};

    fn all_metas(d: &Desired) -> Vec<&ObjectMeta> {
        let mut metas: Vec<&ObjectMeta> = Vec::new();
        metas.extend(d.secrets.iter().map(|o| &o.metadata));
        metas.extend(d.services.iter().map(|o| &o.metadata));
        metas.extend(d.stateful_sets.iter().map(|o| &o.metadata));
        metas.extend(d.deployments.iter().map(|o| &o.metadata));
        metas.extend(d.disruption_budgets.iter().map(|o| &o.metadata));
        metas.extend(d.network_policies.iter().map(|o| &o.metadata));
        metas.extend(d.ingresses.iter().map(|o| &o.metadata));
        metas
    }

    #[test]
    fn every_child_is_controlled_by_the_ordershop_and_labelled() {
        let mut spec = OrderShopSpec::default();
        spec.gateway.ingress = Some(IngressSpec {
            host: "shop.example.com".into(),
            class_name: None,
            tls_secret_name: None,
            annotations: Default::default(),
        });
        let d = desired(&shop(spec), Some(&password()), &grpc_key(), &settings()).unwrap();
        let metas = all_metas(&d);
        // 13 Deployments + 13 Services + 2 headless pods Services + 2 Redis
        // Services + StatefulSet + 2 Secrets (Redis, gRPC) + PDB +
        // NetworkPolicy + Ingress.
        assert_eq!(metas.len(), 13 + 13 + 2 + 2 + 1 + 2 + 1 + 1 + 1);
        for meta in metas {
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].uid, "0000-uid");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(meta.namespace.as_deref(), Some("ns"));
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels["app.kubernetes.io/instance"], "shop");
            assert_eq!(labels["app.kubernetes.io/managed-by"], "ordershop-operator");
        }
    }

    #[test]
    fn external_redis_mode_builds_no_redis_objects() {
        let mut spec = OrderShopSpec::default();
        spec.redis.external = Some(ExternalRedisSpec {
            url: "redis://redis.example:6379/0".into(),
            password_secret_ref: None,
            ca_secret_ref: None,
        });
        let d = desired(&shop(spec), None, &grpc_key(), &settings()).unwrap();
        assert!(d.stateful_sets.is_empty());
        // Only the gRPC one: the password of an external Redis is the user's.
        let secrets: Vec<_> = d.secrets.iter().map(|s| s.metadata.name.clone()).collect();
        assert_eq!(secrets, [Some("shop-grpc-auth".to_owned())]);
        assert!(d.disruption_budgets.is_empty());
        assert!(d.network_policies.is_empty());
        // 13 role Services and the 2 headless pods Services, which do not
        // depend on Redis (so a switch to an external Redis keeps them).
        assert_eq!(d.services.len(), 13 + 2);
        let names: Vec<_> = d.services.iter().map(|s| s.name_any()).collect();
        assert!(names.contains(&"shop-event-store-pods".to_string()));
        assert!(names.contains(&"shop-message-queue-pods".to_string()));
        assert_eq!(d.deployments.len(), 13);
    }

    #[test]
    fn the_headless_pods_services_are_desired_in_both_redis_modes() {
        let managed = desired(
            &shop(OrderShopSpec::default()),
            Some(&password()),
            &grpc_key(),
            &settings(),
        )
        .unwrap();
        let mut spec = OrderShopSpec::default();
        spec.redis.external = Some(ExternalRedisSpec {
            url: "redis://redis.example:6379/0".into(),
            password_secret_ref: None,
            ca_secret_ref: None,
        });
        let external = desired(&shop(spec), None, &grpc_key(), &settings()).unwrap();
        for d in [&managed, &external] {
            let headless: Vec<_> = d
                .services
                .iter()
                .filter(|s| {
                    s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
                        && s.name_any().ends_with("-pods")
                })
                .map(|s| s.name_any())
                .collect();
            assert_eq!(
                headless,
                ["shop-event-store-pods", "shop-message-queue-pods"]
            );
        }
    }

    #[test]
    fn an_unpersisted_ordershop_is_refused() {
        let shop = OrderShop::new("x", OrderShopSpec::default());
        assert!(matches!(
            desired(&shop, None, &grpc_key(), &settings()),
            Err(BuildError::NotPersisted)
        ));
    }
}
