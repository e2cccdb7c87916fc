//! The reconcile's share of `OrderShop.status`, computed from what the
//! children report. Pure: observed facts in, status out.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::jiff::Timestamp;
use ordershop_topology::Role;

use crate::autoscale::{self, ReplicaOwner};
use crate::children::RedisConnection;
use crate::crd::condition::{self, DEGRADED, READY, REDIS_READY, SERVICES_READY, SUSPENDED};
use crate::crd::{OrderShop, OrderShopStatus, RedisMode, RedisStatus, ServiceStatus};

/// Condition types the reconcile writes (the autoscaler writes `Scaling`).
pub const OWN_CONDITIONS: [&str; 5] = [READY, REDIS_READY, SERVICES_READY, DEGRADED, SUSPENDED];

/// What the reconcile saw of the children.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// The managed Redis StatefulSet (None in external mode or before it exists).
    pub redis: Option<&'a StatefulSet>,
    /// The Deployment of each role, in `Role::ALL` order (None before it exists).
    pub deployments: Vec<(Role, Option<&'a Deployment>)>,
    /// The error of this pass, if it failed.
    pub failure: Option<String>,
}

/// One service's readiness, as the status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Replicas {
    current: i32,
    ready: i32,
    rolled_out: bool,
}

fn replicas_of(deployment: Option<&Deployment>) -> Option<Replicas> {
    let d = deployment?;
    let spec_replicas = d.spec.as_ref()?.replicas.unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let rolled_out = status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) >= spec_replicas;
    Some(Replicas {
        current: spec_replicas,
        ready: status.ready_replicas.unwrap_or(0),
        rolled_out,
    })
}

impl Replicas {
    fn is_ready(self) -> bool {
        self.rolled_out && self.ready >= self.current
    }
}

/// The reconcile-owned status of `shop`; conditions keep their last
/// transition times from `shop.status` while their status holds.
pub fn compute(
    shop: &OrderShop,
    redis: &RedisConnection,
    observed: &Observed<'_>,
    now: Timestamp,
) -> OrderShopStatus {
    let spec = &shop.spec;
    let generation = shop.metadata.generation;
    let previous = shop
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        condition::transition(previous, type_, ok, reason, message, generation, now)
    };

    // Redis.
    let (redis_status, redis_ready, redis_reason, redis_message) = match &spec.redis.external {
        Some(_) => (
            RedisStatus {
                mode: RedisMode::External,
                endpoint: redis.endpoint.clone(),
                ready_replicas: None,
            },
            true,
            "External",
            format!("using the external Redis at {}", redis.endpoint),
        ),
        None => {
            let ready = observed
                .redis
                .and_then(|s| s.status.as_ref())
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            let (ok, reason, message) = if spec.stopped {
                (
                    false,
                    "Stopped",
                    "Redis is scaled to zero (stopped)".to_string(),
                )
            } else if ready >= 1 {
                (true, "Ready", "Redis is ready".to_string())
            } else {
                (
                    false,
                    "NotReady",
                    "waiting for the Redis pod to be ready".to_string(),
                )
            };
            (
                RedisStatus {
                    mode: RedisMode::Managed,
                    endpoint: redis.endpoint.clone(),
                    ready_replicas: Some(ready),
                },
                ok,
                reason,
                message,
            )
        }
    };

    // Services.
    let mut services = Vec::with_capacity(observed.deployments.len());
    let mut not_ready = Vec::new();
    for (role, deployment) in &observed.deployments {
        let replicas = replicas_of(*deployment);
        let owner = autoscale::replica_owner(spec, *role);
        let desired = match owner {
            ReplicaOwner::Reconcile(n) => Some(n),
            ReplicaOwner::Autoscaler => None,
        };
        match replicas {
            Some(r) if r.is_ready() => {}
            Some(r) => not_ready.push(format!("{} {}/{}", role.slug(), r.ready, r.current)),
            None => not_ready.push(format!("{} missing", role.slug())),
        }
        services.push(ServiceStatus {
            name: role.slug().into(),
            current_replicas: replicas.map(|r| r.current),
            ready_replicas: replicas.map(|r| r.ready),
            desired_replicas: desired,
            autoscaled: Some(owner == ReplicaOwner::Autoscaler),
            ..ServiceStatus::default()
        });
    }
    let total = observed.deployments.len();
    let ready_count = total - not_ready.len();
    let services_ok = not_ready.is_empty() && !spec.stopped;
    let (services_reason, services_message) = if spec.stopped {
        (
            "Stopped",
            "every service is scaled to zero (stopped)".to_string(),
        )
    } else if services_ok {
        ("Ready", format!("all {total} services are ready"))
    } else {
        ("NotReady", format!("not ready: {}", not_ready.join(", ")))
    };

    let degraded = cond(
        DEGRADED,
        observed.failure.is_some(),
        if observed.failure.is_some() {
            "ReconcileFailed"
        } else {
            "Reconciled"
        },
        observed.failure.clone().unwrap_or_default(),
    );
    let (ready_ok, ready_reason, ready_message) = if spec.stopped {
        (false, "Stopped", "the OrderShop is stopped".to_string())
    } else if let Some(failure) = &observed.failure {
        (false, "ReconcileFailed", failure.clone())
    } else if !redis_ready {
        (false, "RedisNotReady", redis_message.clone())
    } else if !services_ok {
        (false, "ServicesNotReady", services_message.clone())
    } else {
        (
            true,
            "Ready",
            "Redis and every service are ready".to_string(),
        )
    };

    OrderShopStatus {
        observed_generation: generation,
        conditions: vec![
            cond(READY, ready_ok, ready_reason, ready_message),
            cond(REDIS_READY, redis_ready, redis_reason, redis_message),
            cond(
                SERVICES_READY,
                services_ok,
                services_reason,
                services_message,
            ),
            degraded,
            cond(SUSPENDED, false, "Reconciling", String::new()),
        ],
        services_ready: Some(format!("{ready_count}/{total}")),
        backlog: None,
        redis: Some(redis_status),
        services,
    }
}

/// The status of a suspended OrderShop: everything as it was, plus
/// `Suspended=True`.
pub fn suspended(shop: &OrderShop, now: Timestamp) -> OrderShopStatus {
    let mut status = own_part(shop.status.as_ref());
    let previous = shop
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    status.conditions.retain(|c| c.type_ != SUSPENDED);
    status.conditions.push(condition::transition(
        previous,
        SUSPENDED,
        true,
        "Suspended",
        "spec.suspend is true: the operator leaves every child as it is",
        shop.metadata.generation,
        now,
    ));
    status.observed_generation = shop.metadata.generation;
    status
}

/// The part of an existing status the reconcile owns, to compare with a new
/// one (so an unchanged status is not written).
pub fn own_part(status: Option<&OrderShopStatus>) -> OrderShopStatus {
    let Some(status) = status else {
        return OrderShopStatus::default();
    };
    OrderShopStatus {
        observed_generation: status.observed_generation,
        conditions: status
            .conditions
            .iter()
            .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect(),
        services_ready: status.services_ready.clone(),
        backlog: None,
        redis: status.redis.clone(),
        services: status
            .services
            .iter()
            .map(|s| ServiceStatus {
                name: s.name.clone(),
                current_replicas: s.current_replicas,
                ready_replicas: s.ready_replicas,
                // The reconcile writes desiredReplicas only for roles it scales.
                desired_replicas: if s.autoscaled == Some(true) {
                    None
                } else {
                    s.desired_replicas
                },
                autoscaled: s.autoscaled,
                ..ServiceStatus::default()
            })
            .collect(),
    }
}

/// Whether two statuses say the same, ignoring condition order.
pub fn same(a: &OrderShopStatus, b: &OrderShopStatus) -> bool {
    let sorted = |s: &OrderShopStatus| {
        let mut s = s.clone();
        s.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
        s.services.sort_by(|x, y| x.name.cmp(&y.name));
        s
    };
    sorted(a) == sorted(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures;
    use crate::crd::condition::{TRUE, is_true};
    use crate::crd::{ExternalRedisSpec, OrderShopSpec};
    use crate::names::Names;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus, StatefulSetStatus};

    fn deployment(replicas: i32, ready: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(1);
        d.spec = Some(DeploymentSpec {
            replicas: Some(replicas),
            ..DeploymentSpec::default()
        });
        d.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(ready),
            ..DeploymentStatus::default()
        });
        d
    }

    fn redis_sts(ready: i32) -> StatefulSet {
        StatefulSet {
            status: Some(StatefulSetStatus {
                ready_replicas: Some(ready),
                ..StatefulSetStatus::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn status_with(
        spec: OrderShopSpec,
        redis: Option<&StatefulSet>,
        deployments: &[Deployment],
    ) -> OrderShopStatus {
        let shop = fixtures::shop(spec);
        let observed = Observed {
            redis,
            deployments: Role::ALL
                .into_iter()
                .zip(deployments.iter().map(Some))
                .collect(),
            failure: None,
        };
        compute(
            &shop,
            &RedisConnection::managed(&Names::new("shop")),
            &observed,
            now(),
        )
    }

    #[test]
    fn ready_once_redis_and_every_service_are_ready() {
        let all: Vec<Deployment> = (0..13).map(|_| deployment(1, 1)).collect();
        let sts = redis_sts(1);
        let status = status_with(OrderShopSpec::default(), Some(&sts), &all);
        assert!(is_true(&status.conditions, READY));
        assert_eq!(status.services_ready.as_deref(), Some("13/13"));
        assert_eq!(status.observed_generation, Some(3));
        for c in &status.conditions {
            assert_eq!(c.observed_generation, Some(3));
        }
    }

    #[test]
    fn a_lagging_service_is_named_in_the_message() {
        let mut all: Vec<Deployment> = (0..13).map(|_| deployment(1, 1)).collect();
        all[6] = deployment(2, 1); // inventory
        let sts = redis_sts(1);
        let status = status_with(OrderShopSpec::default(), Some(&sts), &all);
        let ready = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "ServicesNotReady");
        assert!(ready.message.contains("inventory 1/2"), "{}", ready.message);
        assert_eq!(status.services_ready.as_deref(), Some("12/13"));
    }

    #[test]
    fn redis_not_ready_blocks_ready() {
        let all: Vec<Deployment> = (0..13).map(|_| deployment(1, 1)).collect();
        let sts = redis_sts(0);
        let status = status_with(OrderShopSpec::default(), Some(&sts), &all);
        let ready = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.reason, "RedisNotReady");
    }

    #[test]
    fn external_redis_counts_as_ready() {
        let all: Vec<Deployment> = (0..13).map(|_| deployment(1, 1)).collect();
        let mut spec = OrderShopSpec::default();
        spec.redis.external = Some(ExternalRedisSpec {
            url: "redis://r:6379/0".into(),
            password_secret_ref: None,
            ca_secret_ref: None,
        });
        let status = status_with(spec, None, &all);
        assert!(is_true(&status.conditions, REDIS_READY));
        assert_eq!(status.redis.unwrap().mode, RedisMode::External);
    }

    #[test]
    fn stopped_is_not_ready_for_a_stated_reason() {
        let all: Vec<Deployment> = (0..13).map(|_| deployment(0, 0)).collect();
        let spec = OrderShopSpec {
            stopped: true,
            ..OrderShopSpec::default()
        };
        let status = status_with(spec, Some(&redis_sts(0)), &all);
        let ready = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Stopped")
        );
    }

    #[test]
    fn a_failure_degrades_and_unreadies() {
        let shop = fixtures::shop(OrderShopSpec::default());
        let observed = Observed {
            redis: None,
            deployments: vec![],
            failure: Some("applying Deployment shop-cart: forbidden".into()),
        };
        let status = compute(
            &shop,
            &RedisConnection::managed(&Names::new("shop")),
            &observed,
            now(),
        );
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .unwrap();
        assert_eq!(degraded.status, TRUE);
        assert!(degraded.message.contains("forbidden"));
    }

    #[test]
    fn own_part_drops_autoscaler_fields_so_unchanged_status_compares_equal() {
        let all: Vec<Deployment> = (0..13).map(|_| deployment(1, 1)).collect();
        let sts = redis_sts(1);
        let computed = status_with(OrderShopSpec::default(), Some(&sts), &all);
        let mut stored = computed.clone();
        stored.backlog = Some(7);
        stored.services[4].backlog = Some(7);
        stored.conditions.reverse();
        assert!(same(&own_part(Some(&stored)), &computed));
        stored.services[4].ready_replicas = Some(0);
        assert!(!same(&own_part(Some(&stored)), &computed));
    }

    #[test]
    fn suspended_keeps_the_rest_and_adds_the_condition() {
        let mut shop = fixtures::shop(OrderShopSpec::default());
        let all: Vec<Deployment> = (0..13).map(|_| deployment(1, 1)).collect();
        let sts = redis_sts(1);
        shop.status = Some(status_with(OrderShopSpec::default(), Some(&sts), &all));
        let status = suspended(&shop, now());
        assert!(is_true(&status.conditions, SUSPENDED));
        assert!(is_true(&status.conditions, READY));
        assert_eq!(status.services.len(), 13);
    }
}
