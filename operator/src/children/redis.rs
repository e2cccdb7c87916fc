//! The managed Redis: password Secret, headless and client Services,
//! StatefulSet with an append-only file on a persistent volume, and a
//! PodDisruptionBudget.
//!
//! Redis runs from argv alone (`redis-server --option value ...`), so an
//! image without a shell works: the password comes from a config file that
//! the Secret holds and `--include` reads, never from argv or a `$(VAR)`
//! expansion the kubelet would put there.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, KeyToPath, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret,
    SecretKeySelector, SecretVolumeSource, Service, ServicePort, ServiceSpec, TCPSocketAction,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use ordershop_topology::Role;

use super::{Owner, RedisPassword, quantity, security};
use crate::crd::{AppendFsync, OrderShop};
use crate::names::{
    Names, REDIS_AUTH_CONF_KEY, REDIS_COMPONENT, REDIS_DATA_VOLUME as DATA_VOLUME,
    REDIS_PASSWORD_KEY, REDIS_PORT,
};

const DATA_DIR: &str = "/data";
const AUTH_VOLUME: &str = "auth";
const AUTH_DIR: &str = "/etc/redis-auth";
/// Share of the container's memory limit Redis may use for data
/// (`maxmemory`). The rest is for what `maxmemory` does not count: the
/// allocator's fragmentation, client buffers, and the pages an AOF
/// rewrite's fork copies on write. Past `maxmemory`, writes fail with an
/// OOM error the services report and retry, instead of the kernel killing
/// Redis at the limit.
const MAXMEMORY_PERCENT_OF_LIMIT: u64 = 80;

/// Redis' `maxmemory` in bytes for a container with these resources:
/// [`MAXMEMORY_PERCENT_OF_LIMIT`] of the memory limit, or none without a
/// (readable) limit — Redis may then grow until the node runs short, as any
/// container without a limit may.
pub(super) fn maxmemory(resources: &ResourceRequirements) -> Option<u64> {
    let limit = resources.limits.as_ref()?.get("memory")?;
    let bytes = quantity::whole_units(limit)?;
    // Never 0, which Redis reads as "no limit".
    Some((bytes / 100 * MAXMEMORY_PERCENT_OF_LIMIT).max(1))
}

/// The managed Redis' config lines, as the Secret holds them: the default
/// user's password (the operator's own measurements, the probes) and one
/// ACL user per role that uses Redis, with the rights `services/topology`
/// gives it.
fn auth_conf(password: &RedisPassword) -> String {
    // The passwords are alphanumeric or hex: no quoting needed.
    let mut conf = format!("requirepass {}\n", password.0);
    for role in Role::ALL {
        if let Some(line) = role.redis_acl_line(&role_password(password, role)) {
            conf.push_str(&line);
        }
    }
    conf
}

/// The password of `role`'s Redis user: derived from the managed Redis'
/// password (HMAC-SHA256), so it is exactly as stable as that one and
/// needs no storage of its own; it tells nothing of that password.
pub(crate) fn role_password(password: &RedisPassword, role: Role) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, password.0.as_bytes());
    let tag = ring::hmac::sign(
        &key,
        format!("ordershop redis user v1:{}", role.slug()).as_bytes(),
    );
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The Secret key of `role`'s Redis password.
pub(crate) fn role_password_key(role: Role) -> String {
    format!("{}.password", role.slug())
}

/// Pod template annotation naming the ACL users: Redis reads its users
/// at start, so a new set (an upgrade that adds one) restarts it.
const USERS_ANNOTATION: &str = "ordershop.io/redis-users";

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

    /// The password for the clients, and the same password as the config
    /// line Redis includes.
    /// The default user's password, the config lines Redis includes, and
    /// each role's own password (a pod reads only its role's key).
    pub(super) fn secret(&self, password: &RedisPassword) -> Secret {
        let mut data = BTreeMap::from([
            (
                REDIS_PASSWORD_KEY.to_string(),
                ByteString(password.0.clone().into_bytes()),
            ),
            (
                REDIS_AUTH_CONF_KEY.to_string(),
                ByteString(auth_conf(password).into_bytes()),
            ),
        ]);
        for role in Role::ALL.into_iter().filter(|r| r.uses_redis()) {
            data.insert(
                role_password_key(role),
                ByteString(role_password(password, role).into_bytes()),
            );
        }
        Secret {
            metadata: self.meta(self.names.redis_secret()),
            type_: Some("Opaque".into()),
            data: Some(data),
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

    /// `redis-server`'s arguments: the password from the included file,
    /// the append-only file as the one persistence (RDB snapshots off: a
    /// second copy of the data, and a fork, for nothing the AOF does not
    /// give), and a memory ceiling under the container's limit.
    fn args(resources: &ResourceRequirements, fsync: AppendFsync) -> Vec<String> {
        let include = format!("{AUTH_DIR}/{REDIS_AUTH_CONF_KEY}");
        let mut args: Vec<String> = [
            "--include",
            include.as_str(),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync.as_redis_arg(),
            "--save",
            "",
            "--dir",
            DATA_DIR,
            // Streams, queues and the read model's checkpoints are all
            // state: evicting any of them would lose work silently.
            "--maxmemory-policy",
            "noeviction",
        ]
        .map(String::from)
        .to_vec();
        if let Some(bytes) = maxmemory(resources) {
            args.extend(["--maxmemory".to_string(), bytes.to_string()]);
        }
        args
    }

    pub(super) fn stateful_set(&self) -> StatefulSet {
        let spec = &self.shop.spec.redis;
        let resources = spec
            .resources
            .clone()
            .unwrap_or_else(default_redis_resources);
        let container = Container {
            name: "redis".into(),
            image: Some(spec.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            // Options only (each starts with `--`): the official images'
            // entrypoint prepends `redis-server`; an image whose entrypoint
            // is `redis-server` itself takes them as they are.
            args: Some(Self::args(&resources, spec.append_fsync)),
            // For redis-cli in the readiness probe only; Redis itself reads
            // the password from the included file.
            env: Some(vec![EnvVar {
                name: "REDISCLI_AUTH".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: self.names.redis_secret(),
                        key: REDIS_PASSWORD_KEY.into(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            }]),
            ports: Some(vec![ContainerPort {
                name: Some("redis".into()),
                container_port: REDIS_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            }]),
            // Ready once Redis answers PING, not while it loads its AOF
            // (`-e`: a LOADING or NOAUTH error reply exits non-zero). No
            // shell: the probe is redis-cli's own argv.
            readiness_probe: Some(Probe {
                exec: Some(ExecAction {
                    command: Some(["redis-cli", "-e", "ping"].map(String::from).to_vec()),
                }),
                period_seconds: Some(5),
                timeout_seconds: Some(3),
                ..Probe::default()
            }),
            // Redis accepts connections while it loads: a long AOF replay
            // never looks dead.
            liveness_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::String("redis".into()),
                    host: None,
                }),
                initial_delay_seconds: Some(10),
                period_seconds: Some(10),
                ..Probe::default()
            }),
            resources: Some(resources),
            security_context: Some(security::container()),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: DATA_VOLUME.into(),
                    mount_path: DATA_DIR.into(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: AUTH_VOLUME.into(),
                    mount_path: AUTH_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        };
        // Only the config line: the plain password is for the clients.
        let auth_volume = Volume {
            name: AUTH_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(self.names.redis_secret()),
                items: Some(vec![KeyToPath {
                    key: REDIS_AUTH_CONF_KEY.into(),
                    path: REDIS_AUTH_CONF_KEY.into(),
                    mode: None,
                }]),
                // Owner and group (fsGroup = Redis' group) read only.
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Volume::default()
        };
        let users: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|role| role.uses_redis())
            .map(Role::slug)
            .collect();
        let template_meta = ObjectMeta {
            labels: Some(self.names.labels(REDIS_COMPONENT)),
            annotations: Some(BTreeMap::from([(
                USERS_ANNOTATION.to_string(),
                users.join(","),
            )])),
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
                        volumes: Some(vec![auth_volume]),
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

    /// One Redis pod, and it may always be evicted (`maxUnavailable: 1`).
    ///
    /// A single replica cannot stay available through a drain whatever the
    /// budget says; `minAvailable: 1` would only block every drain of its
    /// node, so node upgrades and autoscaler scale-downs stall until
    /// someone deletes the pod by hand. The budget stays, stating the
    /// intent and counting the pod for tools that report on budgets; an
    /// unhealthy pod is always evictable too.
    pub(super) fn disruption_budget(&self) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.meta(self.names.redis()),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(self.selector()),
                unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
                min_available: None,
            }),
            status: None,
        }
    }
}

/// What of a volume claim template the operator sets, as a value of the
/// same shape: name, labels, access modes, class and requested storage.
fn claim_projection(claim: &PersistentVolumeClaim) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: claim.metadata.name.clone(),
            labels: claim.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        spec: claim.spec.as_ref().map(|spec| PersistentVolumeClaimSpec {
            access_modes: spec.access_modes.clone(),
            storage_class_name: spec.storage_class_name.clone(),
            resources: spec
                .resources
                .as_ref()
                .map(|resources| VolumeResourceRequirements {
                    requests: resources.requests.clone(),
                    limits: None,
                }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn requested_storage(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// Whether the live template already is what the operator would apply; the
/// API server writes quantities in canonical form (`1024Mi` reads back as
/// `1Gi`), so sizes compare as amounts.
fn same_claim(desired: &PersistentVolumeClaim, live: &PersistentVolumeClaim) -> bool {
    let sizes_match = match (requested_storage(desired), requested_storage(live)) {
        (Some(a), Some(b)) => quantity::same_amount(a, b),
        (a, b) => a == b,
    };
    let without_size = |claim: &PersistentVolumeClaim| {
        let mut projection = claim_projection(claim);
        if let Some(requests) = projection
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
        {
            requests.remove("storage");
        }
        projection
    };
    sizes_match && without_size(desired) == without_size(live)
}

fn describe_claims(claims: &[PersistentVolumeClaim]) -> String {
    claims
        .iter()
        .map(|claim| {
            let class = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                .unwrap_or("the default class");
            let size = requested_storage(claim).map_or("no size", |q| q.0.as_str());
            format!("{size} of {class}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keeps a live StatefulSet's volume claim templates in `desired` when they
/// differ from the desired ones, and says what was not applied.
///
/// Kubernetes refuses any change of `volumeClaimTemplates`: applying one
/// would fail this and every later pass, with every other change of the
/// shop stuck behind it. The CRD refuses storage edits while a managed
/// Redis runs ([`crate::crd::redis_storage_rule`]); this covers what it
/// cannot see — an OrderShop edited before that rule existed, or a
/// template an older operator wrote differently.
pub fn keep_live_claim_templates(desired: &mut StatefulSet, live: &StatefulSet) -> Option<String> {
    let live_claims = live.spec.as_ref()?.volume_claim_templates.as_ref()?;
    let desired_spec = desired.spec.as_mut()?;
    let wanted = desired_spec
        .volume_claim_templates
        .as_deref()
        .unwrap_or(&[]);
    let unchanged = wanted.len() == live_claims.len()
        && wanted
            .iter()
            .zip(live_claims)
            .all(|(d, l)| same_claim(d, l));
    if unchanged {
        return None;
    }
    let note = format!(
        "the Redis volume stays as created ({}); spec.redis.storage asks for {}. A StatefulSet's volume claim templates cannot change: grow the PersistentVolumeClaim itself (if its StorageClass allows expansion), or move the data to a new OrderShop",
        describe_claims(live_claims),
        describe_claims(wanted),
    );
    desired_spec.volume_claim_templates = Some(live_claims.iter().map(claim_projection).collect());
    Some(note)
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
            &fixtures::grpc_key(),
            &fixtures::settings(),
        )
        .unwrap();
        d.stateful_sets.into_iter().next().unwrap()
    }

    fn container(sts: &StatefulSet) -> Container {
        sts.spec.clone().unwrap().template.spec.unwrap().containers[0].clone()
    }

    /// The value following `option` in the container's argv.
    fn arg(sts: &StatefulSet, option: &str) -> Option<String> {
        let args = container(sts).args.unwrap();
        let at = args.iter().position(|a| a == option)?;
        args.get(at + 1).cloned()
    }

    fn with_memory_limit(limit: Option<&str>) -> OrderShopSpec {
        let mut spec = OrderShopSpec::default();
        spec.redis.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("64Mi".into()),
            )])),
            limits: limit.map(|l| BTreeMap::from([("memory".to_string(), Quantity(l.into()))])),
            claims: None,
        });
        spec
    }

    #[test]
    fn redis_persists_with_aof_only_on_a_claim() {
        let sts = redis_of(OrderShopSpec::default());
        assert_eq!(arg(&sts, "--appendonly").as_deref(), Some("yes"));
        assert_eq!(arg(&sts, "--dir").as_deref(), Some("/data"));
        // RDB snapshots off: `save ""`.
        assert_eq!(arg(&sts, "--save").as_deref(), Some(""));
        let spec = sts.spec.unwrap();
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        assert_eq!(requested_storage(&claims[0]), Some(&Quantity("1Gi".into())));
        let policy = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(policy.when_scaled.as_deref(), Some("Retain"));
    }

    /// The deletion cleanup reports the claim by `Names::redis_claim`: it
    /// must be the name the StatefulSet controller gives pod 0's claim,
    /// `<template>-<statefulset>-<ordinal>`, and carry the labels the
    /// cleanup lists claims by.
    #[test]
    fn the_claim_of_pod_0_is_the_one_names_gives() {
        let sts = redis_of(OrderShopSpec::default());
        let spec = sts.spec.clone().unwrap();
        let template = &spec.volume_claim_templates.unwrap()[0];
        let claim = format!(
            "{}-{}-0",
            template.metadata.name.as_deref().unwrap(),
            sts.metadata.name.as_deref().unwrap()
        );
        assert_eq!(claim, Names::new("shop").redis_claim(0));
        assert_eq!(claim, "data-shop-redis-0");
        let labels = template.metadata.labels.clone().unwrap();
        for (k, v) in Names::new("shop").selector(REDIS_COMPONENT) {
            assert_eq!(labels.get(&k), Some(&v));
        }
    }

    #[test]
    fn retain_on_delete_false_lets_the_stateful_set_delete_the_claim() {
        let mut spec = OrderShopSpec::default();
        spec.redis.storage.retain_on_delete = false;
        let policy = redis_of(spec)
            .spec
            .unwrap()
            .persistent_volume_claim_retention_policy
            .unwrap();
        assert_eq!(policy.when_deleted.as_deref(), Some("Delete"));
    }

    #[test]
    fn the_password_is_in_no_argument_and_no_plain_value_of_the_pod() {
        let password = RedisPassword("pw7f3a9cQ".into());
        let d = desired(
            &fixtures::shop(OrderShopSpec::default()),
            Some(&password),
            &fixtures::grpc_key(),
            &fixtures::settings(),
        )
        .unwrap();
        let sts = d.stateful_sets[0].clone();
        // Anywhere in the StatefulSet: args, env values, probes.
        let json = serde_json::to_string(&sts).unwrap();
        assert!(!json.contains(&password.0), "{json}");
        let c = container(&sts);
        let args = c.args.clone().unwrap();
        assert!(args.iter().all(|a| !a.contains("$(")), "{args:?}");
        assert!(!args.iter().any(|a| a == "--requirepass"));
        // Redis reads `requirepass` from the Secret's config line, mounted
        // read-only where `--include` points.
        let include = arg(&sts, "--include").unwrap();
        assert_eq!(include, "/etc/redis-auth/redis-auth.conf");
        let mount = c
            .volume_mounts
            .unwrap()
            .into_iter()
            .find(|m| include.starts_with(&format!("{}/", m.mount_path)))
            .unwrap();
        assert_eq!(mount.read_only, Some(true));
        let pod = sts.spec.unwrap().template.spec.unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == mount.name)
            .unwrap();
        let secret = volume.secret.unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("shop-redis-auth"));
        let items = secret.items.unwrap();
        assert_eq!(items.len(), 1, "only the config line is mounted");
        assert_eq!(format!("{}/{}", mount.mount_path, items[0].path), include);
        assert_eq!(items[0].key, REDIS_AUTH_CONF_KEY);
    }

    #[test]
    fn redis_needs_no_shell() {
        let c = container(&redis_of(OrderShopSpec::default()));
        assert!(c.command.is_none(), "the image's entrypoint runs");
        assert!(
            c.args
                .unwrap()
                .iter()
                .all(|a| a.starts_with("--") || !a.starts_with('-'))
        );
        let probe = c.readiness_probe.unwrap().exec.unwrap().command.unwrap();
        assert_eq!(probe, ["redis-cli", "-e", "ping"]);
    }

    #[test]
    fn maxmemory_is_a_share_of_the_memory_limit_without_eviction() {
        // The default resources limit memory to 512Mi.
        let sts = redis_of(OrderShopSpec::default());
        assert_eq!(arg(&sts, "--maxmemory").as_deref(), Some("429496720"));
        assert_eq!(
            arg(&sts, "--maxmemory-policy").as_deref(),
            Some("noeviction")
        );
        let sts = redis_of(with_memory_limit(Some("1Gi")));
        let bytes: u64 = arg(&sts, "--maxmemory").unwrap().parse().unwrap();
        assert!(((1 << 30) / 100 * 79..1 << 30).contains(&bytes), "{bytes}");
        // No limit: nothing to stay under.
        let sts = redis_of(with_memory_limit(None));
        assert_eq!(arg(&sts, "--maxmemory"), None);
        assert_eq!(
            arg(&sts, "--maxmemory-policy").as_deref(),
            Some("noeviction")
        );
    }

    #[test]
    fn appendfsync_follows_the_spec_and_defaults_to_everysec() {
        let sts = redis_of(OrderShopSpec::default());
        assert_eq!(arg(&sts, "--appendfsync").as_deref(), Some("everysec"));
        let mut spec = OrderShopSpec::default();
        spec.redis.append_fsync = AppendFsync::Always;
        assert_eq!(
            arg(&redis_of(spec), "--appendfsync").as_deref(),
            Some("always")
        );
    }

    #[test]
    fn a_tiny_limit_never_gives_maxmemory_zero() {
        let resources = ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("50".into()),
            )])),
            ..ResourceRequirements::default()
        };
        assert_eq!(maxmemory(&resources), Some(1));
    }

    #[test]
    fn the_disruption_budget_never_blocks_a_drain() {
        let shop = fixtures::shop(OrderShopSpec::default());
        let names = Names::new("shop");
        let owner = Owner::of(&shop).unwrap();
        let pdb = ManagedRedis::new(&shop, &names, &owner)
            .disruption_budget()
            .spec
            .unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(pdb.min_available, None);
        assert_eq!(
            pdb.unhealthy_pod_eviction_policy.as_deref(),
            Some("AlwaysAllow")
        );
    }

    fn sized(size: &str, class: Option<&str>) -> StatefulSet {
        let mut spec = OrderShopSpec::default();
        spec.redis.storage.size = Quantity(size.into());
        spec.redis.storage.storage_class_name = class.map(String::from);
        redis_of(spec)
    }

    #[test]
    fn an_unchanged_claim_template_is_applied_as_desired() {
        let live = sized("1Gi", Some("fast"));
        let mut desired = sized("1Gi", Some("fast"));
        assert_eq!(keep_live_claim_templates(&mut desired, &live), None);
        // The API server writes 1024Mi back as 1Gi: the same size.
        let mut desired = sized("1024Mi", Some("fast"));
        assert_eq!(keep_live_claim_templates(&mut desired, &live), None);
        assert_eq!(
            requested_storage(&desired.spec.unwrap().volume_claim_templates.unwrap()[0]),
            Some(&Quantity("1024Mi".into()))
        );
    }

    #[test]
    fn a_changed_claim_template_keeps_the_live_one_and_says_so() {
        let live = sized("1Gi", None);
        for (size, class) in [("2Gi", None), ("1Gi", Some("fast"))] {
            let mut desired = sized(size, class);
            let note = keep_live_claim_templates(&mut desired, &live).expect("a note");
            assert!(note.contains("1Gi of the default class"), "{note}");
            let kept = desired.spec.unwrap().volume_claim_templates.unwrap();
            let live_claims = live.spec.clone().unwrap().volume_claim_templates.unwrap();
            assert_eq!(kept, live_claims);
            assert!(same_claim(&kept[0], &live_claims[0]));
        }
    }

    #[test]
    fn a_template_without_claims_is_left_alone() {
        let mut live = sized("1Gi", None);
        live.spec.as_mut().unwrap().volume_claim_templates = None;
        let mut desired = sized("2Gi", None);
        assert_eq!(keep_live_claim_templates(&mut desired, &live), None);
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
    fn the_secret_holds_the_password_and_its_config_line() {
        let shop = fixtures::shop(OrderShopSpec::default());
        let names = Names::new("shop");
        let owner = Owner::of(&shop).unwrap();
        let secret = ManagedRedis::new(&shop, &names, &owner).secret(&fixtures::password());
        assert_eq!(secret.metadata.name.as_deref(), Some("shop-redis-auth"));
        let data = secret.data.unwrap();
        assert_eq!(data["password"].0, b"secret");
        let conf = String::from_utf8(data["redis-auth.conf"].0.clone()).unwrap();
        let lines: Vec<&str> = conf.lines().collect();
        assert_eq!(lines[0], "requirepass secret");
        // One ACL user per role that uses Redis, its password in its own key.
        for role in [Role::EventStore, Role::MessageQueue, Role::ReadModel] {
            let password = String::from_utf8(data[&role_password_key(role)].0.clone()).unwrap();
            assert_eq!(password, role_password(&fixtures::password(), role));
            assert_eq!(password.len(), 64);
            let line = role.redis_acl_line(&password).unwrap();
            assert!(conf.contains(&line), "{conf}");
        }
        assert_eq!(lines.len(), 4, "{conf}");
        assert_ne!(
            role_password(&fixtures::password(), Role::EventStore),
            role_password(&RedisPassword("other".into()), Role::EventStore)
        );
    }
}
