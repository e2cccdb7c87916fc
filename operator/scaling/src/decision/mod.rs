//! The scaling decision: a pure function of the policy, the remembered
//! state, one sample, the current replicas and the time. No I/O, no clock.
//!
//! Rules, in the order they apply:
//! 1. Measurement failed: hold the last decision (clamped to the policy),
//!    and count the held value as a recommendation of the window.
//! 2. Paused: keep the current replicas (the recommendation is still
//!    recorded and reported, so the window is right when unpaused).
//! 3. Above `maxReplicas` (the max was lowered): go to the max at once.
//! 4. Recommendation above the current count: scale up at once, at most
//!    `maxScaleUpStep` replicas per decision (and never below the min).
//! 5. Recommendation below: scale in only when no entry is pending and no
//!    message is in flight, the measurement is exact, the highest
//!    recommendation within the stabilization window is below the current
//!    count, and the last scale-in is `scaleDownInterval` old; then remove at
//!    most `maxScaleDownStep` replicas, never going below the window's max.

mod policy;
mod state;

use serde::{Deserialize, Serialize};

pub use policy::{Policy, PolicyError};
pub use state::{Recommendation, ScalerState};

use crate::observation::{Observation, Sample};
use crate::time::{UnixMillis, human_millis};

/// Direction of a decision relative to the replica count it started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Up,
    Down,
    Hold,
}

/// Why the decision came out as it did: a closed set, for Event reasons and
/// metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// The backlog needs more replicas.
    ScaledUp,
    /// The backlog stayed low for the whole window.
    ScaledDown,
    /// The recommendation equals the current count.
    Steady,
    /// The replicas were outside `[min, max]` (the policy changed).
    PolicyBounds,
    /// Lower recommendation, but a higher one is still within the window.
    Stabilizing,
    /// Lower recommendation, but entries are pending or messages in flight.
    WorkInFlight,
    /// Lower recommendation, but the measurement is only a lower bound.
    LowerBound,
    /// Lower recommendation, but the last scale-in is too recent.
    RateLimited,
    /// The policy is paused.
    Paused,
    /// The backlog could not be measured; the last decision holds.
    MeasurementFailed,
}

impl Cause {
    /// CamelCase name, usable as a Kubernetes Event reason and a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::ScaledUp => "ScaledUp",
            Cause::ScaledDown => "ScaledDown",
            Cause::Steady => "Steady",
            Cause::PolicyBounds => "PolicyBounds",
            Cause::Stabilizing => "Stabilizing",
            Cause::WorkInFlight => "WorkInFlight",
            Cause::LowerBound => "LowerBound",
            Cause::RateLimited => "RateLimited",
            Cause::Paused => "Paused",
            Cause::MeasurementFailed => "MeasurementFailed",
        }
    }
}

/// One decision for one consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The replica count the decision started from: the current replicas,
    /// or in dry run the last dry-run decision (see [`decide`]).
    pub from: u32,
    /// The replicas to run.
    pub desired: u32,
    /// ceil(backlog / target) clamped to [min, max], when measured.
    pub recommended: Option<u32>,
    /// The measured backlog, when measured.
    pub backlog: Option<u64>,
    pub change: Change,
    pub cause: Cause,
    /// Computed only: the caller reports it and does not scale.
    pub dry_run: bool,
    /// The decision with its numbers, for status and Events, e.g.
    /// `backlog 730 (lag 700 + pending 30) / target 100 → 8, up from 2`.
    pub reason: String,
}

impl Decision {
    /// Whether the caller should set the Deployment's replicas to `desired`.
    pub fn should_apply(&self, current_replicas: u32) -> bool {
        !self.dry_run && self.desired != current_replicas
    }
}

/// Decides the replicas of one consumer and updates its state.
///
/// `current_replicas` is the Deployment's `spec.replicas`; `now` is the
/// caller's clock. In dry run the decision starts from the last dry-run
/// decision instead of the (unchanged) current replicas, so the reported
/// decisions trace the path a live scaler would take, step limits and rate
/// limits included.
pub fn decide(
    policy: &Policy,
    state: &mut ScalerState,
    sample: &Sample,
    current_replicas: u32,
    now: UnixMillis,
) -> Decision {
    let policy = policy.normalized();
    let from = if policy.dry_run {
        state.last_desired.unwrap_or(current_replicas)
    } else {
        current_replicas
    };
    let mut decision = match sample {
        Sample::Unavailable { reason } => hold_last(&policy, state, from, reason, now),
        Sample::Measured(observation) => {
            let decision =
                decide_measured(&policy, state, observation, from, current_replicas, now);
            state.last_desired = Some(decision.desired);
            decision
        }
    };
    if policy.dry_run {
        decision.dry_run = true;
        decision.reason = format!("dry run: {}", decision.reason);
    }
    decision
}

fn hold_last(
    policy: &Policy,
    state: &mut ScalerState,
    from: u32,
    failure: &str,
    now: UnixMillis,
) -> Decision {
    let last = state.last_desired.unwrap_or(from);
    let desired = policy.clamp(last);
    // An outage is no evidence of a small backlog: the held count stays in
    // the window, so scale-in after an outage waits for a full window of
    // real measurements.
    state.record(now, desired, policy.scale_down_stabilization_ms);
    let held = if state.last_desired.is_some() {
        "last decision"
    } else {
        "current count, no decision yet"
    };
    let mut reason = format!("backlog unknown ({failure}); holding {last} replicas ({held})");
    if desired != last {
        reason.push_str(&format!(", clamped to {desired} by the policy"));
    }
    Decision {
        from,
        desired,
        recommended: None,
        backlog: None,
        change: change(from, desired),
        cause: Cause::MeasurementFailed,
        dry_run: false,
        reason,
    }
}

fn decide_measured(
    policy: &Policy,
    state: &mut ScalerState,
    observation: &Observation,
    from: u32,
    current_replicas: u32,
    now: UnixMillis,
) -> Decision {
    let backlog = observation.backlog();
    let recommended = policy.recommend(backlog);
    state.record(now, recommended, policy.scale_down_stabilization_ms);
    let head = format!(
        "{} / target {} → {recommended}",
        observation.describe(),
        policy.target_per_replica
    );
    let outcome = |desired: u32, cause: Cause, reason: String| Decision {
        from,
        desired,
        recommended: Some(recommended),
        backlog: Some(backlog),
        change: change(from, desired),
        cause,
        dry_run: false,
        reason,
    };

    if policy.paused {
        return outcome(
            current_replicas,
            Cause::Paused,
            format!("paused, keeping {current_replicas} ({head})"),
        );
    }
    if from > policy.max_replicas {
        let max = policy.max_replicas;
        state.last_scale_down = Some(now);
        return outcome(
            max,
            Cause::PolicyBounds,
            format!("{head}, down from {from} to maxReplicas {max}"),
        );
    }
    if recommended > from {
        let stepped = recommended.min(from.saturating_add(policy.max_scale_up_step));
        let desired = stepped.max(policy.min_replicas);
        state.last_scale_up = Some(now);
        // The min bound is the user's word, not a step: it applies whole.
        let (cause, reason) = if stepped < policy.min_replicas {
            (
                Cause::PolicyBounds,
                format!("{head}, up from {from} to minReplicas {desired}"),
            )
        } else if desired == recommended {
            (Cause::ScaledUp, format!("{head}, up from {from}"))
        } else {
            (
                Cause::ScaledUp,
                format!(
                    "{head}, up from {from} to {desired} (step limit {})",
                    policy.max_scale_up_step
                ),
            )
        };
        return outcome(desired, cause, reason);
    }
    if recommended == from {
        return outcome(from, Cause::Steady, format!("{head}, steady at {from}"));
    }

    // Scale-in from here on: every guard must pass.
    let held_work = observation.held_work();
    if held_work > 0 {
        return outcome(
            from,
            Cause::WorkInFlight,
            format!(
                "{head}, holding {from}: no scale-in while {held_work} entries are pending or messages in flight"
            ),
        );
    }
    if !observation.exact {
        let why = if observation.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", observation.notes.join("; "))
        };
        return outcome(
            from,
            Cause::LowerBound,
            format!(
                "{head}, holding {from}: no scale-in on a backlog known only as a lower bound{why}"
            ),
        );
    }
    let window_max = state.window_max().unwrap_or(recommended);
    if window_max >= from {
        return outcome(
            from,
            Cause::Stabilizing,
            format!(
                "{head}, holding {from}: highest recommendation in the last {} is {window_max}",
                human_millis(policy.scale_down_stabilization_ms)
            ),
        );
    }
    if let Some(last) = state.last_scale_down {
        let since = now.since(last);
        if since < policy.scale_down_interval_ms {
            return outcome(
                from,
                Cause::RateLimited,
                format!(
                    "{head}, holding {from}: next scale-in allowed in {}",
                    human_millis(policy.scale_down_interval_ms - since)
                ),
            );
        }
    }
    let desired = window_max.max(from.saturating_sub(policy.max_scale_down_step));
    state.last_scale_down = Some(now);
    let reason = if desired == recommended {
        format!("{head}, down from {from}")
    } else if desired == window_max {
        format!("{head}, down from {from} to {desired} (highest recommendation in the window)")
    } else {
        format!(
            "{head}, down from {from} to {desired} (step limit {})",
            policy.max_scale_down_step
        )
    };
    outcome(desired, Cause::ScaledDown, reason)
}

fn change(from: u32, to: u32) -> Change {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => Change::Up,
        std::cmp::Ordering::Less => Change::Down,
        std::cmp::Ordering::Equal => Change::Hold,
    }
}
