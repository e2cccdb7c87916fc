//! The managed Redis: password Secret, headless and client Services,
//! StatefulSet with an append-only file on a persistent volume, and a
//! PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret,
    SecretKeySelector, Service, ServicePort, ServiceSpec, TCPSocketAction, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Owner, RedisPassword, security};
use crate::crd::OrderShop;
use crate::names::{Names, REDIS_COMPONENT, REDIS_PASSWORD_KEY, REDIS_PORT};

const DATA_VOLUME: &str = "data";

pub(super) struct ManagedRedis<'a> {
    shop: &'a OrderShop,
    names: &'a Names,
    owner: &'a Owner,
}

impl<'a> ManagedRedis<'a> {
    pub(super) fn new(shop: &'a OrderShop, names: &'a Names, owner: &'a Owner) -> Self {
        Self { shop, names, owner }
    }

    fn meta(&self, name: String) -> ObjectMeta {
        self.owner.meta(name, self.names, REDIS_COMPONENT)
    }

    fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.names.selector(REDIS_COMPONENT)),
            match_expressions: None,
        }
    }

    pub(super) fn secret(&self, password: &RedisPassword) -> Secret {
        Secret {
            metadata: self.meta(self.names.redis_secret()),
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(
                REDIS_PASSWORD_KEY.to_string(),
                ByteString(password.0.clone().into_bytes()),
            )])),
            ..Secret::default()
        }
    }

    fn port() -> ServicePort {
        ServicePort {
            name: Some("redis".into()),
            port: REDIS_PORT,
            target_port: Some(IntOrString::String("redis".into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        }
    }

    /// Stable per-pod DNS names for the StatefulSet, published before the
    /// pod is ready so Redis can be reached while it loads its AOF.
    pub(super) fn headless_service(&self) -> Service {
        Service {
            metadata: self.meta(self.names.redis_headless()),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                publish_not_ready_addresses: Some(true),
                selector: Some(self.names.selector(REDIS_COMPONENT)),
                ports: Some(vec![Self::port()]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    /// The address the services use: only ready Redis pods behind it.
    pub(super) fn client_service(&self) -> Service {
        Service {
            metadata: self.meta(self.names.redis()),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(self.names.selector(REDIS_COMPONENT)),
                ports: Some(vec![Self::port()]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    pub(super) fn stateful_set(&self) -> StatefulSet {
        let spec = &self.shop.spec.redis;
        let password = EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: self.names.redis_secret(),
                key: REDIS_PASSWORD_KEY.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        };
        let container = Container {
            name: "redis".into(),
            image: Some(spec.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            // The image's entrypoint prepends `redis-server` to arguments
            // that start with `--`. `$(REDIS_PASSWORD)` is expanded by the
            // kubelet, so the password is not in the pod spec.
            args: Some(
                [
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--dir",
                    "/data",
                    "--requirepass",
                    "$(REDIS_PASSWORD)",
                ]
                .map(String::from)
                .to_vec(),
            ),
            env: Some(vec![
                EnvVar {
                    name: "REDIS_PASSWORD".into(),
                    value_from: Some(password.clone()),
                    ..EnvVar::default()
                },
                // redis-cli (the readiness probe) authenticates with it.
                EnvVar {
                    name: "REDISCLI_AUTH".into(),
                    value_from: Some(password),
                    ..EnvVar::default()
                },
            ]),
            ports: Some(vec![ContainerPort {
                name: Some("redis".into()),
                container_port: REDIS_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            }]),
            readiness_probe: Some(Probe {
                exec: Some(ExecAction {
                    command: Some(
                        ["sh", "-c", "redis-cli ping | grep -q PONG"]
                            .map(String::from)
                            .to_vec(),
                    ),
                }),
                period_seconds: Some(5),
                timeout_seconds: Some(3),
                ..Probe::default()
            }),
            liveness_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::String("redis".into()),
                    host: None,
                }),
                initial_delay_seconds: Some(10),
                period_seconds: Some(10),
                ..Probe::default()
            }),
            resources: Some(
                spec.resources
                    .clone()
                    .unwrap_or_else(default_redis_resources),
            ),
            security_context: Some(security::container()),
            volume_mounts: Some(vec![VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: "/data".into(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        };
        let template_meta = ObjectMeta {
            labels: Some(self.names.labels(REDIS_COMPONENT)),
            ..ObjectMeta::default()
        };
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(DATA_VOLUME.into()),
                labels: Some(self.names.labels(REDIS_COMPONENT)),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: spec.storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        spec.storage.size.clone(),
                    )])),
                    limits: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        };
        StatefulSet {
            metadata: self.meta(self.names.redis()),
            spec: Some(StatefulSetSpec {
                replicas: Some(if self.shop.spec.stopped { 0 } else { 1 }),
                service_name: Some(self.names.redis_headless()),
                selector: self.selector(),
                template: PodTemplateSpec {
                    metadata: Some(template_meta),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        security_context: Some(security::pod(security::REDIS_UID, true)),
                        automount_service_account_token: Some(false),
                        enable_service_links: Some(false),
                        termination_grace_period_seconds: Some(30),
                        ..PodSpec::default()
                    }),
                },
                volume_claim_templates: Some(vec![claim]),
                // Scaling to zero (`stopped`) always keeps the data; deleting
                // the OrderShop keeps it unless the user opted out.
                persistent_volume_claim_retention_policy: Some(
                    StatefulSetPersistentVolumeClaimRetentionPolicy {
                        when_deleted: Some(
                            if spec.storage.retain_on_delete {
                                "Retain"
                            } else {
                                "Delete"
                            }
                            .into(),
                        ),
                        when_scaled: Some("Retain".into()),
                    },
                ),
                ..StatefulSetSpec::default()
            }),
            status: None,
        }
    }

    /// One Redis pod: no voluntary eviction while it is healthy (a drain
    /// waits for an operator decision instead of silently taking the shop
    /// down), but an unhealthy pod never blocks a drain.
    pub(super) fn disruption_budget(&self) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.meta(self.names.redis()),
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(1)),
                selector: Some(self.selector()),
                unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
                max_unavailable: None,
            }),
            status: None,
        }
    }
}

fn default_redis_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("128Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("512Mi".into()),
        )])),
        claims: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::{desired, fixtures};
    use crate::crd::OrderShopSpec;

    fn redis_of(spec: OrderShopSpec) -> StatefulSet {
        let d = desired(
            &fixtures::shop(spec),
            Some(&fixtures::password()),
            &fixtures::settings(),
        )
        .unwrap();
        d.stateful_sets.into_iter().next().unwrap()
    }

    #[test]
    fn redis_persists_with_aof_on_a_claim_and_never_shows_its_password() {
        let sts = redis_of(OrderShopSpec::default());
        let spec = sts.spec.unwrap();
        let container = &spec.template.spec.as_ref().unwrap().containers[0];
        let args = container.args.as_ref().unwrap().join(" ");
        assert!(args.contains("--appendonly yes"));
        assert!(args.contains("--requirepass $(REDIS_PASSWORD)"));
        assert!(!args.contains("secret"));
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        assert_eq!(
            claims[0]
                .spec
                .as_ref()
                .unwrap()
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()["storage"],
            Quantity("1Gi".into())
        );
        let policy = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(policy.when_scaled.as_deref(), Some("Retain"));
    }

    #[test]
    fn stopped_scales_redis_to_zero() {
        let spec = OrderShopSpec {
            stopped: true,
            ..OrderShopSpec::default()
        };
        assert_eq!(redis_of(spec).spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn redis_runs_restricted() {
        let sts = redis_of(OrderShopSpec::default());
        let pod = sts.spec.unwrap().template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.fs_group, Some(security::REDIS_UID));
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn the_secret_holds_the_given_password() {
        let shop = fixtures::shop(OrderShopSpec::default());
        let names = Names::new("shop");
        let owner = Owner::of(&shop).unwrap();
        let secret = ManagedRedis::new(&shop, &names, &owner).secret(&fixtures::password());
        assert_eq!(secret.metadata.name.as_deref(), Some("shop-redis-auth"));
        assert_eq!(secret.data.unwrap()["password"].0, b"secret");
    }
}
