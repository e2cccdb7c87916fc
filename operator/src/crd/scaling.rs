//! The autoscaler's share of `OrderShop.status.services[]`: the backlog part
//! by part, the latest decision, and what the decision remembers between
//! polls. Written only by the autoscaler's field manager
//! (`operator/src/autoscale`); the reconcile never reads or writes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One consumer as the autoscaler sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerScalingStatus {
    /// The backlog at the last successful measurement, part by part. Kept
    /// while Redis cannot be read (the decision then says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<BacklogParts>,
    /// The latest decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ScalingDecision>,
    /// The decision's memory (stabilization window, last scale times), so a
    /// restarted operator or a new leader resumes mid-window.
    #[serde(default)]
    pub memory: ScalerMemory,
}

/// A consumer's backlog: stream entries not yet delivered (lag) or delivered
/// and not acknowledged (pending), queue messages waiting, parked for a
/// retry (delayed) or received and not acknowledged (inFlight).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BacklogParts {
    pub lag: i64,
    pub pending: i64,
    pub waiting: i64,
    pub delayed: i64,
    pub in_flight: i64,
    /// False when a part is only a lower bound (a lag counted up to its
    /// cap, a consumer group that does not exist yet, a key that could not
    /// be read); the autoscaler never scales in on a lower bound.
    pub exact: bool,
    /// What is special about this measurement: a nil lag Redis could not
    /// report and the autoscaler counted, a missing stream or group, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The autoscaler's latest decision for one consumer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingDecision {
    /// The replicas decided (in dry run: the replicas a live autoscaler
    /// would run).
    pub desired_replicas: i32,
    /// ceil(backlog / targetBacklogPerReplica) clamped to [min, max], when
    /// the backlog was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_replicas: Option<i32>,
    /// ScaledUp, ScaledDown, Steady, PolicyBounds, Stabilizing, WorkInFlight,
    /// LowerBound, RateLimited, Paused or MeasurementFailed.
    pub cause: String,
    /// The decision with its numbers.
    pub message: String,
    /// Computed only: dryRun is on, nothing was scaled.
    #[serde(default)]
    pub dry_run: bool,
    /// When the decision last changed its cause or replica count.
    pub since: Time,
}

/// What the scaling decision remembers between polls.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalerMemory {
    /// Recommendations that can still be the highest of the stabilization
    /// window, oldest (and highest) first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window: Vec<WindowEntry>,
    /// Replicas of the last decision made on a measurement: held while Redis
    /// cannot be read; the shadow count in dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_desired: Option<i32>,
    /// Unix milliseconds of the last scale-up decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_up_millis: Option<i64>,
    /// Unix milliseconds of the last scale-down decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_down_millis: Option<i64>,
}

/// One recommendation in the stabilization window.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowEntry {
    /// Unix milliseconds of the recommendation.
    pub at_millis: i64,
    pub replicas: i32,
}
