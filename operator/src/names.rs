//! Names and labels of an OrderShop's children, in one place.
//!
//! Everything the operator creates carries the recommended
//! `app.kubernetes.io/*` labels; `managed-by` lets the operator watch only
//! its own objects, `instance` + `component` select one service's pods.

use std::collections::BTreeMap;

use ordershop_topology::Role;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// `app.kubernetes.io/name` of every OrderShop workload.
pub const APP_NAME: &str = "ordershop";
/// `app.kubernetes.io/managed-by` of every child.
pub const MANAGED_BY: &str = "ordershop-operator";
/// Label selector of everything the operator manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=ordershop-operator";

/// `app.kubernetes.io/component` of the managed Redis.
pub const REDIS_COMPONENT: &str = "redis";
/// The managed Redis' volume claim template (and volume) name; the
/// StatefulSet names each claim `<template>-<statefulset>-<ordinal>`.
pub const REDIS_DATA_VOLUME: &str = "data";

/// Port every OrderShop service serves gRPC (and gRPC health) on.
pub const GRPC_PORT: i32 = 50051;
/// The API gateway's HTTP port (REST, UI, /healthz, /readyz).
pub const GATEWAY_HTTP_PORT: i32 = 5000;
/// Redis' port.
pub const REDIS_PORT: i32 = 6379;
/// Key of the password in the managed Redis' Secret.
pub const REDIS_PASSWORD_KEY: &str = "password";
/// Key of the same Secret holding the config line `requirepass <password>`,
/// which Redis includes from a file, so the password is never in argv.
pub const REDIS_AUTH_CONF_KEY: &str = "redis-auth.conf";

/// Key of the shop key in the gRPC Secret (only the event store and the
/// queue get it).
pub const GRPC_KEY_KEY: &str = "key";
/// The shop key, in the event store's and the queue's containers.
pub const ENV_GRPC_KEY: &str = "ORDERSHOP_GRPC_KEY";
/// The role's own token, in every other container.
pub const ENV_GRPC_TOKEN: &str = "ORDERSHOP_GRPC_TOKEN";

/// Key of `role`'s token in the gRPC Secret.
pub fn grpc_token_key(role: Role) -> String {
    format!("{}.token", role.slug())
}

/// Each pod's consumer name in the event store's consumer groups and the
/// queue (the pod's name). A value shared by several pods would make them
/// one consumer, taking over each other's in-flight work.
pub const ENV_INSTANCE: &str = "ORDERSHOP_INSTANCE";
/// The gRPC address; its port is the one the Services and probes use.
pub const ENV_LISTEN: &str = "ORDERSHOP_LISTEN";
/// The gateway's HTTP address; its port is the one its Service and probes use.
pub const ENV_HTTP_LISTEN: &str = "ORDERSHOP_HTTP_LISTEN";
/// The gateway's API tokens, from the Secret `spec.gateway.auth` names.
pub const ENV_API_TOKENS: &str = "ORDERSHOP_API_TOKENS";
/// Variables the operator sets that `services.<role>.env` may not name (the
/// CRD refuses them): overriding them would break the shop's wiring. Every
/// other operator variable may be overridden by name.
pub const RESERVED_ENV: [&str; 5] = [
    ENV_INSTANCE,
    ENV_LISTEN,
    ENV_HTTP_LISTEN,
    ENV_GRPC_KEY,
    ENV_GRPC_TOKEN,
];

/// Names of one OrderShop's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    instance: String,
}

impl Names {
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
        }
    }

    /// The OrderShop's own name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Deployment and Service of one service: `<name>-<role slug>`.
    pub fn service(&self, role: Role) -> String {
        format!("{}-{}", self.instance, role.slug())
    }

    /// The headless Service over the ready pods of `role` (the event store
    /// and the queue), the name their clients resolve: `<name>-<role slug>-pods`.
    pub fn pods_service(&self, role: Role) -> String {
        format!("{}-pods", self.service(role))
    }

    /// StatefulSet, client Service, PodDisruptionBudget and NetworkPolicy of Redis.
    pub fn redis(&self) -> String {
        format!("{}-redis", self.instance)
    }

    /// The headless Service that gives Redis pods stable DNS names.
    pub fn redis_headless(&self) -> String {
        format!("{}-redis-headless", self.instance)
    }

    /// The managed Redis' volume claim of pod `ordinal`, as the StatefulSet
    /// controller names it: `data-<name>-redis-<ordinal>`.
    pub fn redis_claim(&self, ordinal: u32) -> String {
        format!("{REDIS_DATA_VOLUME}-{}-{ordinal}", self.redis())
    }

    /// The generated Redis password Secret.
    pub fn redis_secret(&self) -> String {
        format!("{}-redis-auth", self.instance)
    }

    /// The generated Secret with the gRPC key and every role's token.
    pub fn grpc_secret(&self) -> String {
        format!("{}-grpc-auth", self.instance)
    }

    /// The gateway's Ingress.
    pub fn ingress(&self) -> String {
        format!("{}-gateway", self.instance)
    }

    /// Labels of every child of this OrderShop that belongs to `component`.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.insert(LABEL_PART_OF.into(), APP_NAME.into());
        labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
        labels
    }

    /// The immutable subset of [`Names::labels`] that selects `component`'s pods.
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_NAME.into(), APP_NAME.into()),
            (LABEL_INSTANCE.into(), self.instance.clone()),
            (LABEL_COMPONENT.into(), component.into()),
        ])
    }

    /// Label selector string of every child of this OrderShop.
    pub fn instance_selector(&self) -> String {
        format!("{LABEL_INSTANCE}={},{MANAGED_SELECTOR}", self.instance)
    }
}

/// Roles that talk to Redis directly; every other role reaches Redis only
/// through the event store and the message queue over gRPC.
pub fn uses_redis(role: Role) -> bool {
    role.uses_redis()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest name the CRD admits (CEL: at most 40 characters) must give
    /// valid DNS-1035 labels (Service names) for every child, and StatefulSet
    /// pod names that stay below 63 characters with the revision hash label.
    #[test]
    fn the_longest_admitted_name_gives_valid_child_names() {
        let names = Names::new("a".repeat(40));
        let mut all: Vec<String> = Role::ALL.iter().map(|r| names.service(*r)).collect();
        all.extend([
            names.redis(),
            names.redis_headless(),
            names.redis_secret(),
            names.ingress(),
        ]);
        for name in all {
            assert!(name.len() <= 63, "{name} is {} characters", name.len());
        }
        // controller-revision-hash = <statefulset>-<up to 10 chars of hash>.
        assert!(names.redis().len() + 11 <= 63);
    }

    #[test]
    fn selector_is_a_subset_of_labels() {
        let names = Names::new("shop");
        let labels = names.labels("customer");
        for (k, v) in names.selector("customer") {
            assert_eq!(labels.get(&k), Some(&v));
        }
    }
}
