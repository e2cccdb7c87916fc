//! `OrderShop.status`: what is actually running.
//!
//! Two field managers write it with server-side apply: the reconcile
//! (conditions, Redis, replica counts) and the autoscaler (backlog, decisions,
//! last scale). `services` is a map-list keyed by `name`, so each manager owns
//! its own fields of the same entry without overwriting the other's.

// `#[derive(KubeSchema)]` emits a private `pub struct <Name>Validated` copy
// of each type it derives for, which the lint reports against our type.
#![allow(unreachable_pub)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of an OrderShop.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderShopStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, RedisReady, ServicesReady, Degraded, Suspended (and Scaling,
    /// written by the autoscaler, and DeadLetters, by the dead-letter watch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// `<services with every desired replica ready>/<services>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_ready: Option<String>,
    /// Total backlog over all consumers (written by the autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisStatus>,
    /// One entry per service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub services: Vec<ServiceStatus>,
}

/// Redis as the services see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisStatus {
    pub mode: RedisMode,
    /// `host:port` the services connect to.
    pub endpoint: String,
    /// Ready Redis pods (managed mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}

/// Who runs Redis.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RedisMode {
    Managed,
    External,
}

/// One service's replicas and, for consumers, its autoscaling state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The service's role (`customer`, `read-model`, ...).
    pub name: String,
    /// Replica count the Deployment asks for (`spec.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The replica count wanted: the spec's while autoscaling is disabled,
    /// the autoscaler's decision while it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Whether the autoscaler owns the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaled: Option<bool>,
    /// Waiting + in-flight work, as last measured (autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    /// When the autoscaler last changed the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Why it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_reason: Option<String>,
    /// The autoscaler's measurement, decision and memory (autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<super::scaling::ConsumerScalingStatus>,
}

/// Condition types and reasons, and the standard transition bookkeeping.
pub mod condition {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    pub const READY: &str = "Ready";
    pub const REDIS_READY: &str = "RedisReady";
    pub const SERVICES_READY: &str = "ServicesReady";
    pub const DEGRADED: &str = "Degraded";
    pub const SUSPENDED: &str = "Suspended";
    /// Written by the autoscaler, never by the reconcile.
    pub const SCALING: &str = "Scaling";
    /// Written by the dead-letter watch: True while any topic or channel
    /// holds dead letters.
    pub const DEAD_LETTERS: &str = "DeadLetters";

    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
    pub const UNKNOWN: &str = "Unknown";

    /// A condition for `generation`, keeping the previous
    /// `lastTransitionTime` when the status did not change.
    pub fn transition(
        previous: &[Condition],
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
        now: Timestamp,
    ) -> Condition {
        let status = if status { TRUE } else { FALSE };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time,
        }
    }

    /// Whether `type_` is currently `True` in `conditions`.
    pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == TRUE)
    }
}

#[cfg(test)]
mod tests {
    use super::condition::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn transition_time_is_kept_while_the_status_holds_and_moves_when_it_flips() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first = transition(&[], READY, false, "Progressing", "", Some(1), t0);
        assert_eq!(first.last_transition_time.0, t0);

        let same = transition(
            std::slice::from_ref(&first),
            READY,
            false,
            "Still",
            "",
            Some(2),
            t1,
        );
        assert_eq!(same.last_transition_time.0, t0, "no flip, time kept");
        assert_eq!(same.reason, "Still");

        let flipped = transition(&[first], READY, true, "Ready", "", Some(2), t1);
        assert_eq!(flipped.last_transition_time.0, t1);
        assert_eq!(flipped.status, TRUE);
    }
}
