//! The `OrderShop` custom resource: spec, status, and the CRD generated from them.
//!
//! The Rust types are the single source of the schema: `ordershop-operator crdgen`
//! prints the CRD, and a test fails when the committed copies drift from it.

mod generate;
// The autoscaler's share of the status (operator/src/autoscale).
mod scaling;
mod spec;
mod status;

pub use generate::{crd, crd_yaml};
pub use scaling::{
    BacklogParts, ConsumerScalingStatus, ScalerMemory, ScalingDecision, WindowEntry,
};
pub use spec::{
    AppendFsync, AutoscalingSpec, CaSecretRef, ConsumerServiceSpec, ExternalRedisSpec,
    GatewayAuthSpec, GatewayServiceType, GatewaySpec, GlobalAutoscalingSpec, ImageSpec,
    IngressSpec, LogFormat, LogSpec, MAX_EXTRA_ENV, NetworkPolicySpec, OrderShop, OrderShopSpec,
    PullPolicy, RateLimitSpec, RedisSpec, RedisStorageSpec, RetentionSpec, SecretKeyRef,
    ServiceSpec, ServiceView, ServicesSpec, TokenSecretRef, redis_storage_rule, reserved_env_rule,
};
pub use status::{OrderShopStatus, RedisMode, RedisStatus, ServiceStatus, condition};

/// API group of every OrderShop resource.
pub const GROUP: &str = "ordershop.io";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
