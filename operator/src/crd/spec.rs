//! `OrderShop.spec`: what a platform team asks for.
//!
//! Every knob has a schema default, a range where one makes sense, and CEL
//! rules for constraints between fields, so the API server refuses a bad
//! resource at `kubectl apply` time instead of the operator failing later.

// `#[derive(KubeSchema)]` emits a private `pub struct <Name>Validated` copy
// of each type it derives for, which the lint reports against our type.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::{Message, Rule};
use kube::{CustomResource, KubeSchema};
use ordershop_topology::Role;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::OrderShopStatus;
use crate::names::RESERVED_ENV;

/// Most extra environment variables one service takes. Far more than any
/// real use; it bounds the CEL cost of the reserved-names rule, which the
/// API server estimates from the largest list the schema admits.
pub const MAX_EXTRA_ENV: usize = 256;

/// CEL rule on `services.<role>.env`: none of [`RESERVED_ENV`]. The
/// operator merges every other name (the user's value wins); these carry
/// the shop's wiring, so the API server refuses them outright.
pub fn reserved_env_rule() -> Rule {
    let quoted: Vec<String> = RESERVED_ENV.iter().map(|n| format!("'{n}'")).collect();
    Rule::new(format!("self.all(e, !(e.name in [{}]))", quoted.join(", "))).message(
        Message::Message(format!(
            "must not set {}: the operator sets them (each pod's consumer name, the ports its Service and probes use, its gRPC credentials); other variables it sets may be overridden",
            RESERVED_ENV.join(", ")
        )),
    )
}

/// One OrderShop installation: Redis (managed or external), a Deployment and
/// Service per OrderShop service, the gateway's exposure, and per-consumer
/// autoscaling on backlog.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ordershop.io",
    version = "v1alpha1",
    kind = "OrderShop",
    plural = "ordershops",
    shortname = "shop",
    category = "ordershop",
    namespaced,
    status = "OrderShopStatus",
    derive = "PartialEq",
    doc = "An OrderShop installation: Redis, one Deployment and Service per OrderShop service, and backlog-driven autoscaling of the consumers.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether Redis and every service are ready"
    ),
    printcolumn(
        name = "Services",
        type_ = "string",
        json_path = ".status.servicesReady",
        description = "Services with all desired replicas ready / all services"
    ),
    printcolumn(
        name = "Backlog",
        type_ = "integer",
        json_path = ".status.backlog",
        description = "Work waiting or in flight over all consumers, as last measured by the autoscaler"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name must be at most 40 characters: child names such as <name>-message-queue and the Redis pods' <name>-redis-0 must stay valid DNS labels")
)]
#[serde(rename_all = "camelCase")]
pub struct OrderShopSpec {
    /// The OrderShop image every service runs (`ordershop <role>`).
    #[serde(default)]
    pub image: ImageSpec,
    /// Redis: a managed StatefulSet, or an external Redis.
    #[serde(default)]
    pub redis: RedisSpec,
    /// Per-service replicas, resources, environment and autoscaling.
    #[serde(default)]
    pub services: ServicesSpec,
    /// How the API gateway is exposed.
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// Settings shared by every consumer's autoscaling.
    #[serde(default)]
    pub autoscaling: GlobalAutoscalingSpec,
    /// The NetworkPolicy that lets only this OrderShop's pods reach Redis.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// Logging of every service.
    #[serde(default)]
    pub log: LogSpec,
    /// Traces of every service: one per order flow, exported over OTLP.
    #[serde(default)]
    pub tracing: TracingSpec,
    /// How much history the event store keeps.
    #[serde(default)]
    pub retention: RetentionSpec,
    /// Stop reconciling: the operator leaves every child as it is.
    #[serde(default)]
    pub suspend: bool,
    /// Scale every service and Redis to zero, keeping Redis data and all
    /// other children.
    #[serde(default)]
    pub stopped: bool,
}

/// Container image of the OrderShop services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository, without tag.
    #[serde(default = "default_image_repository")]
    #[schemars(length(min = 1))]
    pub repository: String,
    /// Image tag; when unset, the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tag: Option<String>,
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// Names of image pull Secrets in the OrderShop's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            repository: default_image_repository(),
            tag: None,
            pull_policy: PullPolicy::default(),
            pull_secrets: Vec::new(),
        }
    }
}

fn default_image_repository() -> String {
    "ghcr.io/ordershop/ordershop".into()
}

/// Kubernetes image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Redis: managed by the operator (StatefulSet with persistence) unless
/// `external` is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = redis_storage_rule())]
pub struct RedisSpec {
    /// Use an existing Redis (managed Redis, or a test Redis) instead of
    /// running one. The managed Redis objects are then removed; a retained
    /// volume keeps its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedisSpec>,
    /// Image of the managed Redis.
    #[serde(default = "default_redis_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Persistence of the managed Redis (append-only file on a volume).
    #[serde(default)]
    pub storage: RedisStorageSpec,
    /// Resources of the managed Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// When the managed Redis forces its append-only file to disk: what an
    /// acknowledged publish or send survives.
    #[serde(default)]
    pub append_fsync: AppendFsync,
}

impl Default for RedisSpec {
    fn default() -> Self {
        Self {
            external: None,
            image: default_redis_image(),
            storage: RedisStorageSpec::default(),
            resources: None,
            append_fsync: AppendFsync::default(),
        }
    }
}

/// Redis' `appendfsync` for the managed Redis.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// fsync before every reply: an acknowledged write survives a crash
    /// of the node too, at a throughput cost (see the README's figures).
    Always,
    /// fsync once a second: an acknowledged write survives Redis or its pod
    /// crashing (the kernel holds it), but a crash of the node itself can
    /// lose up to the last second of acknowledged writes.
    #[default]
    Everysec,
}

impl AppendFsync {
    /// The value `redis-server --appendfsync` takes.
    pub fn as_redis_arg(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
        }
    }
}

/// CEL transition rule on `spec.redis`: the volume's size and class stay
/// as they were while a managed Redis runs. They are its StatefulSet's
/// `volumeClaimTemplates`, which Kubernetes never lets change: an operator
/// applying the new ones would be refused on every pass from then on, so
/// the API server refuses the edit instead, where the user sees why.
/// Switching to or from an external Redis may set them (there is then no
/// StatefulSet to disagree with). The rule sits on `redis`, not `storage`,
/// to see `external`; `storage` always exists (schema default), in the old
/// object too (defaults apply on read).
pub fn redis_storage_rule() -> Rule {
    Rule::new(
        "has(self.external) || has(oldSelf.external) || \
         (self.storage.size == oldSelf.storage.size && \
         has(self.storage.storageClassName) == has(oldSelf.storage.storageClassName) && \
         (!has(self.storage.storageClassName) || self.storage.storageClassName == oldSelf.storage.storageClassName))",
    )
    .message(
        "storage.size and storage.storageClassName cannot change while the managed Redis runs: they are its StatefulSet's volumeClaimTemplates, which Kubernetes keeps immutable. To grow the volume, expand the PersistentVolumeClaim data-<name>-redis-0 (if its StorageClass allows expansion) and leave these fields as they are",
    )
}

// 7.2 is the last BSD-licensed Redis line and matches the Redis 7 semantics
// every OrderShop component is tested against.
fn default_redis_image() -> String {
    "docker.io/library/redis:7.2-alpine".into()
}

/// The managed Redis' volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisStorageSpec {
    /// Size of the data volume.
    #[serde(default = "default_storage_size")]
    pub size: Quantity,
    /// Storage class of the data volume; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep the data volume when the OrderShop is deleted (the safe default);
    /// `false` deletes it with the OrderShop.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

impl Default for RedisStorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            retain_on_delete: true,
        }
    }
}

fn default_storage_size() -> Quantity {
    Quantity("1Gi".into())
}

fn default_true() -> bool {
    true
}

/// An existing Redis. Credentials never go into the URL: the password comes
/// from a Secret, and so does the CA of a `rediss://` Redis whose
/// certificate a public CA did not sign.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.caSecretRef) || self.url.startsWith('rediss://')").message("caSecretRef is the CA of a TLS Redis: the url must start with rediss://")
)]
pub struct ExternalRedisSpec {
    /// `redis://host:port/db` or `rediss://host:port/db`, without credentials.
    #[x_kube(
        validation = Rule::new("self.startsWith('redis://') || self.startsWith('rediss://')").message("must start with redis:// or rediss://"),
        validation = Rule::new("!self.contains('@')").message("must not contain credentials: put the password in the Secret named by passwordSecretRef")
    )]
    pub url: String,
    /// The Secret key holding the Redis password; none for a Redis without AUTH.
    /// Any characters: it is handed over apart from the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// The Secret key holding the PEM certificate of the CA that signed a
    /// `rediss://` Redis's certificate; none to trust the public web CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<CaSecretRef>,
}

/// A key in a Secret of the OrderShop's namespace holding a CA certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// A key in a Secret of the OrderShop's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1))]
    pub key: String,
}

fn default_password_key() -> String {
    "password".into()
}

/// Replicas, resources and environment of a service that does not consume
/// queued work (event store, message queue, API gateway).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Number of pods (1 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables. One named like a variable the operator
    /// sets replaces it (RUST_LOG, ORDERSHOP_REDIS_URL, ...), except
    /// ORDERSHOP_INSTANCE, ORDERSHOP_LISTEN, ORDERSHOP_HTTP_LISTEN and the
    /// gRPC credentials (ORDERSHOP_GRPC_KEY, ORDERSHOP_GRPC_TOKEN), which
    /// are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXTRA_ENV))]
    #[x_kube(validation = reserved_env_rule())]
    pub env: Vec<EnvVar>,
}

/// A service that consumes queued work and can scale on its backlog.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.replicas) && self.autoscaling.enabled)").message("replicas must not be set while autoscaling.enabled is true: the autoscaler owns the replica count; use autoscaling.minReplicas and maxReplicas"))]
pub struct ConsumerServiceSpec {
    /// Number of pods (1 when unset) while autoscaling is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables. One named like a variable the operator
    /// sets replaces it (RUST_LOG, ORDERSHOP_REDIS_URL, ...), except
    /// ORDERSHOP_INSTANCE, ORDERSHOP_LISTEN, ORDERSHOP_HTTP_LISTEN and the
    /// gRPC credentials (ORDERSHOP_GRPC_KEY, ORDERSHOP_GRPC_TOKEN), which
    /// are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXTRA_ENV))]
    #[x_kube(validation = reserved_env_rule())]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
}

/// Backlog-driven autoscaling of one consumer. The measurement and the
/// decision belong to the autoscaler; see `operator/src/autoscale`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"))]
pub struct AutoscalingSpec {
    /// Let the autoscaler own this service's replica count.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Backlog (waiting + in-flight work) one replica is expected to carry:
    /// desired = ceil(backlog / targetBacklogPerReplica).
    #[serde(default = "default_target_backlog")]
    #[schemars(range(min = 1))]
    pub target_backlog_per_replica: i64,
    /// How long the desired count must stay lower before scaling down.
    #[serde(default = "default_scale_down_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
    /// At most this many replicas removed per scale-down step.
    #[serde(default = "default_scale_down_step")]
    #[schemars(range(min = 1, max = 1000))]
    pub scale_down_max_step: i32,
    /// Least time between two scale-down steps (the autoscaler's rate
    /// limit for scale-in; scale-up is never delayed).
    #[serde(default = "default_scale_down_interval")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_interval_seconds: i32,
    /// At most this many replicas added per scale-up step; unbounded when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub scale_up_max_step: Option<i32>,
    /// Publish decisions (status, Events, metrics) without scaling.
    #[serde(default)]
    pub dry_run: bool,
    /// Keep measuring but hold the current replica count.
    #[serde(default)]
    pub paused: bool,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_backlog_per_replica: default_target_backlog(),
            scale_down_stabilization_seconds: default_scale_down_stabilization(),
            scale_down_max_step: default_scale_down_step(),
            scale_down_interval_seconds: default_scale_down_interval(),
            scale_up_max_step: None,
            dry_run: false,
            paused: false,
        }
    }
}

fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    10
}
fn default_target_backlog() -> i64 {
    100
}
fn default_scale_down_stabilization() -> i32 {
    60
}
fn default_scale_down_step() -> i32 {
    1
}
// As the HPA's default scale-down policy period.
fn default_scale_down_interval() -> i32 {
    15
}

/// Autoscaling settings shared by every consumer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalAutoscalingSpec {
    /// How often the autoscaler measures every consumer's backlog.
    #[serde(default = "default_poll_interval_ms")]
    #[schemars(range(min = 100, max = 60000))]
    pub poll_interval_ms: i32,
}

impl Default for GlobalAutoscalingSpec {
    fn default() -> Self {
        Self {
            poll_interval_ms: default_poll_interval_ms(),
        }
    }
}

// One second: the spec's reaction-time target, against KEDA's 30 s default.
fn default_poll_interval_ms() -> i32 {
    1000
}

/// Per-service settings, one field per OrderShop service. Consumers
/// (services with queue channels or event subscriptions) carry autoscaling.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicesSpec {
    #[serde(default)]
    pub event_store: ServiceSpec,
    #[serde(default)]
    pub message_queue: ServiceSpec,
    #[serde(default)]
    pub api_gateway: ServiceSpec,
    #[serde(default)]
    pub read_model: ConsumerServiceSpec,
    #[serde(default)]
    pub customer: ConsumerServiceSpec,
    #[serde(default)]
    pub product: ConsumerServiceSpec,
    #[serde(default)]
    pub inventory: ConsumerServiceSpec,
    #[serde(default)]
    pub cart: ConsumerServiceSpec,
    #[serde(default)]
    pub order: ConsumerServiceSpec,
    #[serde(default)]
    pub billing: ConsumerServiceSpec,
    #[serde(default)]
    pub shipping: ConsumerServiceSpec,
    #[serde(default)]
    pub crm: ConsumerServiceSpec,
    #[serde(default)]
    pub mail: ConsumerServiceSpec,
}

/// The settings of one service, whatever its kind.
#[derive(Clone, Copy, Debug)]
pub struct ServiceView<'a> {
    pub replicas: Option<i32>,
    pub resources: Option<&'a ResourceRequirements>,
    pub env: &'a [EnvVar],
    /// `Some` exactly for consumers.
    pub autoscaling: Option<&'a AutoscalingSpec>,
}

impl ServicesSpec {
    /// The settings of `role`.
    pub fn get(&self, role: Role) -> ServiceView<'_> {
        match role {
            Role::EventStore => view(&self.event_store),
            Role::MessageQueue => view(&self.message_queue),
            Role::ApiGateway => view(&self.api_gateway),
            Role::ReadModel => consumer_view(&self.read_model),
            Role::Customer => consumer_view(&self.customer),
            Role::Product => consumer_view(&self.product),
            Role::Inventory => consumer_view(&self.inventory),
            Role::Cart => consumer_view(&self.cart),
            Role::Order => consumer_view(&self.order),
            Role::Billing => consumer_view(&self.billing),
            Role::Shipping => consumer_view(&self.shipping),
            Role::Crm => consumer_view(&self.crm),
            Role::Mail => consumer_view(&self.mail),
        }
    }
}

fn view(s: &ServiceSpec) -> ServiceView<'_> {
    ServiceView {
        replicas: s.replicas,
        resources: s.resources.as_ref(),
        env: &s.env,
        autoscaling: None,
    }
}

fn consumer_view(s: &ConsumerServiceSpec) -> ServiceView<'_> {
    ServiceView {
        replicas: s.replicas,
        resources: s.resources.as_ref(),
        env: &s.env,
        autoscaling: Some(&s.autoscaling),
    }
}

/// Exposure of the API gateway (REST, UI and WebSocket on HTTP).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Type of the gateway's Service.
    #[serde(default)]
    pub service_type: GatewayServiceType,
    /// HTTP port of the gateway's Service.
    #[serde(default = "default_gateway_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// An Ingress in front of the gateway's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Bearer tokens the REST API and the live push ask for; none: open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<GatewayAuthSpec>,
    /// Requests each client may make; beyond, 429 with `Retry-After`.
    /// None: no limit per client (the gateway's in-flight bound holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            service_type: GatewayServiceType::default(),
            port: default_gateway_port(),
            ingress: None,
            auth: None,
            rate_limit: None,
        }
    }
}

/// A per-client rate limit of the gateway. A client is its address: the
/// connection's peer, or behind a proxy the address it appended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Requests per second each client may make on average.
    #[schemars(range(min = 1))]
    pub requests_per_second: u32,
    /// Requests a client may make at once after a pause; default twice
    /// the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub burst: Option<u32>,
    /// Count a client by the last `X-Forwarded-For` address instead of the
    /// connection's peer. Only behind a proxy that appends it (an Ingress
    /// controller): otherwise every client may name any address.
    #[serde(default)]
    pub trust_forwarded_for: bool,
}

/// Bearer-token authentication of the gateway (the probes, the UI page and
/// `/openapi.json` stay open; the page asks for a token).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAuthSpec {
    /// The Secret key holding the accepted tokens, comma-separated (several,
    /// so one can be rotated while the other still works). Use tokens of
    /// letters, digits, `-`, `_` and `.`: browsers send the live push's as
    /// a WebSocket subprotocol.
    pub token_secret_ref: TokenSecretRef,
}

/// A key in a Secret of the OrderShop's namespace holding API tokens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default = "default_tokens_key")]
    #[schemars(length(min = 1))]
    pub key: String,
}

fn default_tokens_key() -> String {
    "tokens".into()
}

fn default_gateway_port() -> i32 {
    80
}

/// Kubernetes Service type of the gateway.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum GatewayServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl GatewayServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayServiceType::ClusterIP => "ClusterIP",
            GatewayServiceType::NodePort => "NodePort",
            GatewayServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// An Ingress for the gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name the Ingress serves.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// IngressClass; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// TLS Secret for `host`; plain HTTP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Annotations for the ingress controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The Redis NetworkPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Only this OrderShop's Redis clients (and the operator) may reach Redis.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Logging of the services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogSpec {
    /// `RUST_LOG` filter of every service.
    #[serde(default = "default_log_filter")]
    #[schemars(length(min = 1))]
    pub filter: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogSpec {
    fn default() -> Self {
        Self {
            filter: default_log_filter(),
            format: LogFormat::default(),
        }
    }
}

fn default_log_filter() -> String {
    "info".into()
}

/// Span export of the services. Unset, no spans are made or exported and
/// no trace context is carried.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// The OTLP/gRPC collector every service exports its spans to, e.g.
    /// `http://otel-collector.observability:4317` (plaintext: the services
    /// carry no TLS client for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self.startsWith('http://') && self.size() > 7").message("must be an http:// URL of an OTLP/gRPC collector (https is not supported)")
    )]
    pub otlp_endpoint: Option<String>,
}

/// How much history the event store keeps (README: "Retention: streams
/// trimmed behind their readers"). Unset, every event is kept forever and
/// event ids are remembered for a day.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Every this many seconds, trim each topic's stream behind every
    /// reader that still needs its entries: the views' snapshots, the read
    /// model's checkpoint, the consumer groups, the dead letters. Unset:
    /// streams keep every event. With it set, a view that cannot use its
    /// snapshot can no longer be rebuilt by replaying; keep snapshots on
    /// (the services' default) and `redis.appendFsync: always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub trim_streams_every_seconds: Option<u32>,
    /// How long a published event's id is remembered, so a retried publish
    /// is stored once: at least this many seconds, at most twice that.
    /// Unset: a day. Changing it forgets the ids stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60))]
    pub event_id_window_seconds: Option<u32>,
}

/// Log line format of the services.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}
