//! A Deployment and a Service per OrderShop service, all from one image:
//! `ordershop <role>`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, GRPCAction, HTTPGetAction,
    LocalObjectReference, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecretKeySelector, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ordershop_topology::{LIVENESS_SERVICE, Role};

use super::{Owner, RedisConnection, Settings, balancing, grpc_auth, security};
use crate::autoscale::{self, ReplicaOwner};
use crate::crd::OrderShop;
use crate::names::{
    ENV_API_TOKENS, ENV_HTTP_LISTEN, ENV_INSTANCE, ENV_LISTEN, GATEWAY_HTTP_PORT, GRPC_PORT, Names,
    uses_redis,
};
use ordershop_grpc_auth::GrpcKey;

/// Pod template annotation: the gRPC key's fingerprint.
const GRPC_KEY_ANNOTATION: &str = "ordershop.io/grpc-key";
/// The gateway's process-only health endpoint (no upstream is asked).
const GATEWAY_LIVENESS_PATH: &str = "/healthz";
/// The gateway's readiness endpoint (the event store and the queue answer).
const GATEWAY_READINESS_PATH: &str = "/readyz";
const PROBE_TIMEOUT_SECONDS: i32 = 2;
const PROBE_PERIOD_SECONDS: i32 = 10;
/// Three missed liveness checks (30 s) of a process that no longer answers
/// at all: that is a hung process, worth a restart.
const LIVENESS_FAILURES: i32 = 3;
const READINESS_PERIOD_SECONDS: i32 = 5;
const READINESS_FAILURES: i32 = 2;
const STARTUP_PERIOD_SECONDS: i32 = 5;
/// How long a container may take to answer its liveness check at all
/// before the kubelet restarts it: generous, so a slow node or image start
/// is waited for rather than killed in a loop.
const STARTUP_BUDGET_SECONDS: i32 = 300;

/// The probes of one OrderShop container.
#[derive(Debug, Clone)]
struct Probes {
    liveness: Probe,
    readiness: Probe,
    startup: Probe,
}

pub(super) struct Workloads<'a> {
    shop: &'a OrderShop,
    names: &'a Names,
    owner: &'a Owner,
    redis: &'a RedisConnection,
    grpc_key: &'a GrpcKey,
    settings: &'a Settings,
}

impl<'a> Workloads<'a> {
    pub(super) fn new(
        shop: &'a OrderShop,
        names: &'a Names,
        owner: &'a Owner,
        redis: &'a RedisConnection,
        grpc_key: &'a GrpcKey,
        settings: &'a Settings,
    ) -> Self {
        Self {
            shop,
            names,
            owner,
            redis,
            grpc_key,
            settings,
        }
    }

    fn image(&self) -> String {
        let image = &self.shop.spec.image;
        let tag = image
            .tag
            .as_deref()
            .unwrap_or(&self.settings.default_image_tag);
        format!("{}:{}", image.repository, tag)
    }

    /// The container's environment: the contract's flags as env vars, then
    /// the user's extra variables merged in by name (see [`merge_env`]).
    fn env(&self, role: Role) -> Vec<EnvVar> {
        let plain = |name: &str, value: String| EnvVar {
            name: name.into(),
            value: Some(value),
            ..EnvVar::default()
        };
        let mut env = vec![
            plain(ENV_LISTEN, format!("0.0.0.0:{GRPC_PORT}")),
            EnvVar {
                name: ENV_INSTANCE.into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            plain("RUST_LOG", self.shop.spec.log.filter.clone()),
            plain(
                "ORDERSHOP_LOG_FORMAT",
                self.shop.spec.log.format.as_str().into(),
            ),
        ];
        if let Some(endpoint) = &self.shop.spec.tracing.otlp_endpoint {
            env.push(plain("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()));
        }
        if role == Role::EventStore {
            let retention = &self.shop.spec.retention;
            if let Some(every) = retention.trim_streams_every_seconds {
                env.push(plain("ORDERSHOP_TRIM_STREAMS_EVERY", every.to_string()));
            }
            if let Some(window) = retention.event_id_window_seconds {
                env.push(plain("ORDERSHOP_EVENT_ID_WINDOW_SECS", window.to_string()));
            }
        }
        if uses_redis(role) {
            env.extend(self.redis.env(role));
        }
        env.extend(grpc_auth::env(self.names, role));
        // The clients resolve the headless Services of the event store and
        // the queue, so their calls spread over every ready replica (see
        // `balancing`). The two infrastructure roles need only Redis, so
        // their readiness never waits on a name that resolves to ready pods.
        if !role.is_infrastructure() {
            env.push(plain(
                "ORDERSHOP_EVENT_STORE_URL",
                balancing::pods_url(self.names, Role::EventStore),
            ));
            env.push(plain(
                "ORDERSHOP_QUEUE_URL",
                balancing::pods_url(self.names, Role::MessageQueue),
            ));
        }
        if role == Role::ApiGateway {
            env.push(plain(
                ENV_HTTP_LISTEN,
                format!("0.0.0.0:{GATEWAY_HTTP_PORT}"),
            ));
            if let Some(limit) = &self.shop.spec.gateway.rate_limit {
                env.push(plain(
                    "ORDERSHOP_RATE_LIMIT",
                    limit.requests_per_second.to_string(),
                ));
                if let Some(burst) = limit.burst {
                    env.push(plain("ORDERSHOP_RATE_LIMIT_BURST", burst.to_string()));
                }
                if limit.trust_forwarded_for {
                    env.push(plain("ORDERSHOP_TRUST_FORWARDED_FOR", "true".into()));
                }
            }
            if let Some(auth) = &self.shop.spec.gateway.auth {
                env.push(EnvVar {
                    name: ENV_API_TOKENS.into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: auth.token_secret_ref.name.clone(),
                            key: auth.token_secret_ref.key.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                });
            }
        }
        merge_env(&mut env, self.shop.spec.services.get(role).env);
        env
    }

    /// Liveness, readiness and startup probes of `role`'s container.
    ///
    /// Liveness asks only whether the process answers (the gRPC health
    /// service [`LIVENESS_SERVICE`], the gateway's `/healthz`): a Redis
    /// outage or a long view replay makes pods unready, never restarts
    /// them in waves. Readiness is the role's own verdict (the overall gRPC
    /// health, the gateway's `/readyz`): caught up and its dependencies
    /// answering. The startup probe holds liveness off while the process
    /// starts, for up to [`STARTUP_BUDGET_SECONDS`].
    fn probes(role: Role) -> Probes {
        let probe = |handler: Probe, period: i32, failures: i32| Probe {
            period_seconds: Some(period),
            timeout_seconds: Some(PROBE_TIMEOUT_SECONDS),
            failure_threshold: Some(failures),
            ..handler
        };
        let (alive, ready) = if role == Role::ApiGateway {
            let http = |path: &str| Probe {
                http_get: Some(HTTPGetAction {
                    path: Some(path.into()),
                    port: IntOrString::String("http".into()),
                    ..HTTPGetAction::default()
                }),
                ..Probe::default()
            };
            (http(GATEWAY_LIVENESS_PATH), http(GATEWAY_READINESS_PATH))
        } else {
            let grpc = |service: Option<&str>| Probe {
                grpc: Some(GRPCAction {
                    port: GRPC_PORT,
                    service: service.map(String::from),
                }),
                ..Probe::default()
            };
            (grpc(Some(LIVENESS_SERVICE)), grpc(None))
        };
        Probes {
            liveness: probe(alive.clone(), PROBE_PERIOD_SECONDS, LIVENESS_FAILURES),
            readiness: probe(ready, READINESS_PERIOD_SECONDS, READINESS_FAILURES),
            startup: probe(
                alive,
                STARTUP_PERIOD_SECONDS,
                STARTUP_BUDGET_SECONDS / STARTUP_PERIOD_SECONDS,
            ),
        }
    }

    fn ports(role: Role) -> Vec<ContainerPort> {
        let mut ports = vec![ContainerPort {
            name: Some("grpc".into()),
            container_port: GRPC_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }];
        if role == Role::ApiGateway {
            ports.push(ContainerPort {
                name: Some("http".into()),
                container_port: GATEWAY_HTTP_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            });
        }
        ports
    }

    pub(super) fn deployment(&self, role: Role) -> Deployment {
        let slug = role.slug();
        let view = self.shop.spec.services.get(role);
        let probes = Self::probes(role);
        let image = &self.shop.spec.image;
        let container = Container {
            name: "ordershop".into(),
            image: Some(self.image()),
            image_pull_policy: Some(image.pull_policy.as_str().into()),
            args: Some(vec![slug.into()]),
            env: Some(self.env(role)),
            ports: Some(Self::ports(role)),
            liveness_probe: Some(probes.liveness),
            readiness_probe: Some(probes.readiness),
            startup_probe: Some(probes.startup),
            resources: Some(
                view.resources
                    .cloned()
                    .unwrap_or_else(default_service_resources),
            ),
            security_context: Some(security::container()),
            volume_mounts: Some(
                uses_redis(role)
                    .then(|| self.redis.volume_mounts())
                    .into_iter()
                    .flatten()
                    .chain([grpc_auth::volume_mount()])
                    .collect(),
            ),
            ..Container::default()
        };
        let replicas = match autoscale::replica_owner(&self.shop.spec, role) {
            ReplicaOwner::Reconcile(n) => Some(n),
            // Left out of the apply: the autoscaler's field manager owns it.
            ReplicaOwner::Autoscaler => None,
        };
        Deployment {
            metadata: self.owner.meta(self.names.service(role), self.names, slug),
            spec: Some(DeploymentSpec {
                replicas,
                selector: LabelSelector {
                    match_labels: Some(self.names.selector(slug)),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.names.labels(slug)),
                        // Env vars from a Secret are read at start: a new
                        // gRPC key rolls every pod over to it.
                        annotations: Some(BTreeMap::from([(
                            GRPC_KEY_ANNOTATION.to_string(),
                            self.grpc_key.fingerprint(),
                        )])),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        security_context: Some(security::pod(security::ORDERSHOP_UID, false)),
                        automount_service_account_token: Some(false),
                        // 13 Services per OrderShop: the docker-link env vars
                        // would be dozens of useless variables per pod.
                        enable_service_links: Some(false),
                        termination_grace_period_seconds: Some(30),
                        volumes: Some(
                            uses_redis(role)
                                .then(|| self.redis.volumes())
                                .into_iter()
                                .flatten()
                                .chain([grpc_auth::volume(self.names, role)])
                                .collect(),
                        ),
                        image_pull_secrets: (!image.pull_secrets.is_empty()).then(|| {
                            image
                                .pull_secrets
                                .iter()
                                .map(|name| LocalObjectReference { name: name.clone() })
                                .collect()
                        }),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }

    pub(super) fn service(&self, role: Role) -> Service {
        let slug = role.slug();
        let mut ports = vec![grpc_service_port()];
        let mut type_ = "ClusterIP".to_string();
        if role == Role::ApiGateway {
            let gateway = &self.shop.spec.gateway;
            type_ = gateway.service_type.as_str().into();
            ports.insert(
                0,
                ServicePort {
                    name: Some("http".into()),
                    port: gateway.port,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    app_protocol: Some("http".into()),
                    ..ServicePort::default()
                },
            );
        }
        Service {
            metadata: self.owner.meta(self.names.service(role), self.names, slug),
            spec: Some(ServiceSpec {
                type_: Some(type_),
                selector: Some(self.names.selector(slug)),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }
}

/// Merges the user's variables into the operator's by name: a user entry
/// replaces the entry of the same name in place (the user's value wins),
/// any other is appended in the user's order. Each name then appears once —
/// a container's `env` is a list keyed by name, and server-side apply
/// refuses the whole Deployment when a name repeats. Replacing in place
/// keeps `$(VAR)` references working: a variable can refer only to those
/// before it, and the operator's URL refers to its password variable.
fn merge_env(env: &mut Vec<EnvVar>, user: &[EnvVar]) {
    for var in user {
        match env.iter_mut().find(|e| e.name == var.name) {
            Some(existing) => *existing = var.clone(),
            None => env.push(var.clone()),
        }
    }
}

fn default_service_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("50m".into())),
            ("memory".to_string(), Quantity("64Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("256Mi".into()),
        )])),
        claims: None,
    }
}

/// The gRPC port of a role's Services (HTTP/2 without TLS).
pub(super) fn grpc_service_port() -> ServicePort {
    ServicePort {
        name: Some("grpc".into()),
        port: GRPC_PORT,
        target_port: Some(IntOrString::String("grpc".into())),
        protocol: Some("TCP".into()),
        app_protocol: Some("kubernetes.io/h2c".into()),
        ..ServicePort::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::{desired, fixtures};
    use crate::crd::{GatewayServiceType, OrderShopSpec};

    fn deployments(spec: OrderShopSpec) -> BTreeMap<String, Deployment> {
        desired(
            &fixtures::shop(spec),
            Some(&fixtures::password()),
            &fixtures::grpc_key(),
            &fixtures::settings(),
        )
        .unwrap()
        .deployments
        .into_iter()
        .map(|d| (d.metadata.name.clone().unwrap(), d))
        .collect()
    }

    fn container(d: &Deployment) -> &Container {
        &d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env(d: &Deployment) -> BTreeMap<String, EnvVar> {
        container(d)
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    #[test]
    fn every_role_runs_the_one_image_with_its_subcommand() {
        let ds = deployments(OrderShopSpec::default());
        assert_eq!(ds.len(), Role::ALL.len());
        for role in Role::ALL {
            let d = &ds[&format!("shop-{}", role.slug())];
            let c = container(d);
            assert_eq!(
                c.image.as_deref(),
                Some("ghcr.io/ordershop/ordershop:1.2.3")
            );
            assert_eq!(c.args.as_deref(), Some(&[role.slug().to_string()][..]));
            assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
        }
    }

    #[test]
    fn wiring_follows_the_service_contract() {
        let ds = deployments(OrderShopSpec::default());
        let store = env(&ds["shop-event-store"]);
        assert!(store.contains_key("ORDERSHOP_REDIS_URL"));
        assert!(!store.contains_key("ORDERSHOP_EVENT_STORE_URL"));
        let order = env(&ds["shop-order"]);
        assert!(
            !order.contains_key("ORDERSHOP_REDIS_URL"),
            "only Redis clients get Redis"
        );
        assert_eq!(
            order["ORDERSHOP_EVENT_STORE_URL"].value.as_deref(),
            Some("https://shop-event-store-pods:50051")
        );
        assert_eq!(
            order["ORDERSHOP_QUEUE_URL"].value.as_deref(),
            Some("https://shop-message-queue-pods:50051")
        );
        let queue = env(&ds["shop-message-queue"]);
        assert!(
            !queue.contains_key("ORDERSHOP_EVENT_STORE_URL")
                && !queue.contains_key("ORDERSHOP_QUEUE_URL"),
            "the infrastructure roles depend on Redis only, so they start in any order"
        );
        for role in Role::ALL.into_iter().filter(|r| !r.is_infrastructure()) {
            let vars = env(&ds[&format!("shop-{}", role.slug())]);
            assert_eq!(
                vars["ORDERSHOP_EVENT_STORE_URL"].value.as_deref(),
                Some("https://shop-event-store-pods:50051"),
                "{role:?}"
            );
        }
        let instance = order["ORDERSHOP_INSTANCE"].value_from.as_ref().unwrap();
        assert_eq!(
            instance.field_ref.as_ref().unwrap().field_path,
            "metadata.name"
        );
        let gateway = env(&ds["shop-api-gateway"]);
        assert_eq!(
            gateway["ORDERSHOP_HTTP_LISTEN"].value.as_deref(),
            Some("0.0.0.0:5000")
        );
    }

    fn grpc_service(probe: &Option<Probe>) -> Option<Option<String>> {
        let grpc = probe.as_ref()?.grpc.as_ref()?;
        assert_eq!(grpc.port, 50051);
        Some(grpc.service.clone())
    }

    fn http_path(probe: &Option<Probe>) -> Option<String> {
        probe.as_ref()?.http_get.as_ref()?.path.clone()
    }

    /// Readiness is the role's verdict (caught up, dependencies answering);
    /// liveness and startup only ask whether the process answers, so a
    /// Redis outage or a long replay never restarts pods.
    #[test]
    fn liveness_is_the_process_readiness_the_roles_verdict() {
        let ds = deployments(OrderShopSpec::default());
        for role in Role::ALL.into_iter().filter(|r| *r != Role::ApiGateway) {
            let c = container(&ds[&format!("shop-{}", role.slug())]);
            let liveness = Some(Some(LIVENESS_SERVICE.to_string()));
            assert_eq!(grpc_service(&c.liveness_probe), liveness, "{role:?}");
            assert_eq!(grpc_service(&c.startup_probe), liveness, "{role:?}");
            assert_eq!(grpc_service(&c.readiness_probe), Some(None), "{role:?}");
        }
        let gateway = container(&ds["shop-api-gateway"]);
        assert_eq!(
            http_path(&gateway.liveness_probe).as_deref(),
            Some("/healthz")
        );
        assert_eq!(
            http_path(&gateway.startup_probe).as_deref(),
            Some("/healthz")
        );
        assert_eq!(
            http_path(&gateway.readiness_probe).as_deref(),
            Some("/readyz")
        );
    }

    #[test]
    fn a_slow_start_gets_five_minutes_before_liveness_counts() {
        for d in deployments(OrderShopSpec::default()).values() {
            let c = container(d);
            let startup = c.startup_probe.as_ref().unwrap();
            let budget = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
            assert!(budget >= 300, "{budget} s");
            // Liveness restarts a process that stopped answering, but not
            // on one slow answer.
            let liveness = c.liveness_probe.as_ref().unwrap();
            assert!(liveness.period_seconds.unwrap() * liveness.failure_threshold.unwrap() >= 30);
        }
    }

    #[test]
    fn containers_are_restricted() {
        for d in deployments(OrderShopSpec::default()).values() {
            let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let psc = pod.security_context.as_ref().unwrap();
            assert_eq!(psc.run_as_non_root, Some(true));
            assert_eq!(psc.run_as_user, Some(65532));
            assert_eq!(
                psc.seccomp_profile.as_ref().unwrap().type_,
                "RuntimeDefault"
            );
            let sc = container(d).security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_string()][..])
            );
            assert!(container(d).resources.as_ref().unwrap().requests.is_some());
        }
    }

    #[test]
    fn autoscaled_roles_leave_replicas_to_the_autoscaler() {
        let mut spec = OrderShopSpec::default();
        spec.services.inventory.autoscaling.enabled = true;
        spec.services.order.replicas = Some(4);
        let ds = deployments(spec);
        assert_eq!(ds["shop-inventory"].spec.as_ref().unwrap().replicas, None);
        assert_eq!(ds["shop-order"].spec.as_ref().unwrap().replicas, Some(4));
    }

    #[test]
    fn stopped_scales_everything_to_zero_even_autoscaled_roles() {
        let mut spec = OrderShopSpec {
            stopped: true,
            ..OrderShopSpec::default()
        };
        spec.services.inventory.autoscaling.enabled = true;
        for d in deployments(spec).values() {
            assert_eq!(d.spec.as_ref().unwrap().replicas, Some(0));
        }
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..EnvVar::default()
        }
    }

    #[test]
    fn a_tracing_collector_is_handed_to_every_service() {
        const OTLP: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
        for d in deployments(OrderShopSpec::default()).values() {
            assert!(!env(d).contains_key(OTLP), "no collector, no export");
        }
        let mut spec = OrderShopSpec::default();
        spec.tracing.otlp_endpoint = Some("http://collector.observability:4317".into());
        let ds = deployments(spec);
        assert_eq!(ds.len(), Role::ALL.len());
        for d in ds.values() {
            assert_eq!(
                env(d)[OTLP].value.as_deref(),
                Some("http://collector.observability:4317")
            );
        }
    }

    #[test]
    fn retention_is_handed_to_the_event_store_only() {
        const TRIM: &str = "ORDERSHOP_TRIM_STREAMS_EVERY";
        const WINDOW: &str = "ORDERSHOP_EVENT_ID_WINDOW_SECS";
        for d in deployments(OrderShopSpec::default()).values() {
            let env = env(d);
            assert!(!env.contains_key(TRIM) && !env.contains_key(WINDOW));
        }
        let mut spec = OrderShopSpec::default();
        spec.retention.trim_streams_every_seconds = Some(30);
        spec.retention.event_id_window_seconds = Some(3600);
        for (name, d) in deployments(spec) {
            let env = env(&d);
            if name == "shop-event-store" {
                assert_eq!(env[TRIM].value.as_deref(), Some("30"));
                assert_eq!(env[WINDOW].value.as_deref(), Some("3600"));
            } else {
                assert!(
                    !env.contains_key(TRIM) && !env.contains_key(WINDOW),
                    "{name}"
                );
            }
        }
    }

    fn names_of(vars: &[EnvVar]) -> Vec<&str> {
        vars.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn user_env_overrides_the_operators_by_name_without_duplicates() {
        let mut spec = OrderShopSpec::default();
        spec.services.event_store.env = vec![
            var("EXTRA", "1"),
            var("RUST_LOG", "debug"),
            var("ORDERSHOP_REDIS_URL", "redis://other:6379/0"),
            // Named twice by the user: the later value wins, still once.
            var("EXTRA", "2"),
        ];
        let ds = deployments(spec);
        let vars = container(&ds["shop-event-store"]).env.clone().unwrap();
        let names = names_of(&vars);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "duplicate names: {names:?}");

        let operator_only = container(&deployments(OrderShopSpec::default())["shop-event-store"])
            .env
            .clone()
            .unwrap();
        // The operator's variables keep their places; new ones follow.
        let mut expected = names_of(&operator_only);
        expected.push("EXTRA");
        assert_eq!(names, expected);
        let value = |name: &str| {
            vars.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("RUST_LOG").as_deref(), Some("debug"));
        assert_eq!(
            value("ORDERSHOP_REDIS_URL").as_deref(),
            Some("redis://other:6379/0")
        );
        assert_eq!(value("EXTRA").as_deref(), Some("2"));
        // The password comes apart from the URL, which holds none.
        assert!(names.contains(&"ORDERSHOP_REDIS_PASSWORD"));
    }

    #[test]
    fn the_gateway_takes_its_api_tokens_from_the_secret_the_spec_names() {
        let mut spec = OrderShopSpec::default();
        let ds = deployments(spec.clone());
        assert!(!env(&ds["shop-api-gateway"]).contains_key(ENV_API_TOKENS));
        spec.gateway.auth = Some(crate::crd::GatewayAuthSpec {
            token_secret_ref: crate::crd::TokenSecretRef {
                name: "api".into(),
                key: "tokens".into(),
            },
        });
        let ds = deployments(spec);
        let gateway = env(&ds["shop-api-gateway"]);
        let secret = gateway[ENV_API_TOKENS]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("from a Secret");
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("api", "tokens")
        );
        assert!(!env(&ds["shop-inventory"]).contains_key(ENV_API_TOKENS));
    }

    #[test]
    fn the_gateway_gets_its_rate_limit_and_no_other_role_does() {
        let mut spec = OrderShopSpec::default();
        spec.gateway.rate_limit = Some(crate::crd::RateLimitSpec {
            requests_per_second: 100,
            burst: Some(250),
            trust_forwarded_for: true,
        });
        let ds = deployments(spec);
        let gateway = env(&ds["shop-api-gateway"]);
        let value = |name: &str| gateway[name].value.clone().unwrap();
        assert_eq!(value("ORDERSHOP_RATE_LIMIT"), "100");
        assert_eq!(value("ORDERSHOP_RATE_LIMIT_BURST"), "250");
        assert_eq!(value("ORDERSHOP_TRUST_FORWARDED_FOR"), "true");
        assert!(!env(&ds["shop-order"]).contains_key("ORDERSHOP_RATE_LIMIT"));
        let unlimited = env(&deployments(OrderShopSpec::default())["shop-api-gateway"]);
        assert!(!unlimited.contains_key("ORDERSHOP_RATE_LIMIT"));
    }

    /// The names the CRD refuses in `env` are the operator's wiring: the
    /// gateway gets all of them but the gRPC key, which the event store gets.
    #[test]
    fn the_reserved_names_are_ones_the_operator_sets() {
        let ds = deployments(OrderShopSpec::default());
        let gateway = env(&ds["shop-api-gateway"]);
        let store = env(&ds["shop-event-store"]);
        for name in crate::names::RESERVED_ENV {
            assert!(
                gateway.contains_key(name) || store.contains_key(name),
                "{name}"
            );
        }
    }

    #[test]
    fn merge_env_replaces_a_value_source_too() {
        let mut env = vec![EnvVar {
            name: "A".into(),
            value_from: Some(EnvVarSource::default()),
            ..EnvVar::default()
        }];
        merge_env(&mut env, &[var("A", "plain")]);
        assert_eq!(env, vec![var("A", "plain")]);
    }

    #[test]
    fn gateway_service_type_and_port_are_configurable() {
        let mut spec = OrderShopSpec::default();
        spec.gateway.service_type = GatewayServiceType::NodePort;
        spec.gateway.port = 8080;
        let d = desired(
            &fixtures::shop(spec),
            Some(&fixtures::password()),
            &fixtures::grpc_key(),
            &fixtures::settings(),
        )
        .unwrap();
        let svc = d
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("shop-api-gateway"))
            .unwrap();
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, 8080);
        let other = d
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("shop-customer"))
            .unwrap();
        assert_eq!(
            other.spec.as_ref().unwrap().type_.as_deref(),
            Some("ClusterIP")
        );
    }
}
