//! One consumer's scaler: its decision memory, its last measurement and
//! decision as the status shows them, and the replica count it last applied.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use ordershop_scaling::{
    Cause, Decision, Observation, Policy, Recommendation, Sample, ScalerState, UnixMillis,
};
use ordershop_topology::Role;

use super::memory;
use crate::crd::{BacklogParts, ConsumerScalingStatus, ScalingDecision, ServiceStatus};
use crate::metrics::BacklogPartsValues;

/// A replica count this scaler applied, until the Deployment cache shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    replicas: u32,
    /// The cached Deployment's resourceVersion when the count was applied.
    cached_version: Option<String>,
}

#[derive(Debug)]
pub struct ConsumerScaler {
    pub role: Role,
    state: ScalerState,
    measured: Option<BacklogParts>,
    backlog: Option<u64>,
    decision: Option<ScalingDecision>,
    last_scale: Option<(Time, String)>,
    applied: Option<Applied>,
    /// The last failure to scale, until a scale succeeds: a failure that
    /// lasts is reported once, not on every poll.
    scale_failure: Option<String>,
    /// No memory to resume from (autoscaling was just switched on): the
    /// first decision seeds the window with the current count.
    fresh: bool,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn replicas(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The status' view of an observation.
pub fn parts(observation: &Observation) -> BacklogParts {
    BacklogParts {
        lag: count(observation.lag),
        pending: count(observation.pending),
        waiting: count(observation.waiting),
        delayed: count(observation.delayed),
        in_flight: count(observation.in_flight),
        exact: observation.exact,
        notes: observation.notes.clone(),
    }
}

impl ConsumerScaler {
    /// A scaler resuming from what the status says (its memory, last
    /// measurement and decision), or a fresh one.
    pub fn resume(role: Role, entry: Option<&ServiceStatus>, now: UnixMillis) -> Self {
        let scaling = entry.and_then(|e| e.autoscaling.as_ref());
        Self {
            role,
            state: scaling
                .map(|s| memory::from_status(&s.memory, now))
                .unwrap_or_default(),
            measured: scaling.and_then(|s| s.measured.clone()),
            backlog: entry
                .and_then(|e| e.backlog)
                .and_then(|b| u64::try_from(b).ok()),
            decision: scaling.and_then(|s| s.decision.clone()),
            last_scale: entry
                .and_then(|e| Some((e.last_scale_time.clone()?, e.last_scale_reason.clone()?))),
            applied: None,
            scale_failure: None,
            fresh: scaling.is_none(),
        }
    }

    /// The Deployment's replica count: as the cache shows it, unless this
    /// scaler applied another count the cache has not caught up with yet
    /// (the watch lags the API by a few milliseconds; deciding from the old
    /// count would decide the same step twice).
    pub fn current_replicas(&mut self, deployment: &Deployment) -> u32 {
        let cached = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .map_or(1, |n| u32::try_from(n).unwrap_or(0));
        match &self.applied {
            Some(applied) if applied.cached_version == deployment.metadata.resource_version => {
                applied.replicas
            }
            _ => {
                // The cache saw a write at or after ours: it is the truth
                // (including someone else's `kubectl scale` since).
                self.applied = None;
                cached
            }
        }
    }

    /// Takes one poll's sample and decides. Returns the decision and the
    /// cause of the decision before it.
    pub fn decide(
        &mut self,
        policy: &Policy,
        sample: &Sample,
        current: u32,
        now: UnixMillis,
        now_time: Timestamp,
    ) -> (Decision, Option<Cause>) {
        if let Sample::Measured(observation) = sample {
            self.measured = Some(parts(observation));
            self.backlog = Some(observation.backlog());
        }
        if std::mem::take(&mut self.fresh) && self.state.window.is_empty() {
            // The count the consumer ran at before autoscaling (handed over
            // as it was) counts as a recommendation made now: a consumer
            // switched to autoscaling with no backlog is scaled in after a
            // full stabilization window, not at the first poll, as it would
            // be had the scaler been recommending all along.
            self.state.window.push(Recommendation {
                at: now,
                replicas: current,
            });
        }
        let decision = ordershop_scaling::decide(policy, &mut self.state, sample, current, now);
        let previous = self.decision.take();
        let previous_cause = previous.as_ref().map(|d| cause_named(&d.cause));
        let cause = decision.cause.as_str();
        let desired = replicas(decision.desired);
        let since = match previous {
            Some(p) if p.cause == cause && p.desired_replicas == desired => p.since,
            _ => Time(now_time),
        };
        self.decision = Some(ScalingDecision {
            desired_replicas: desired,
            recommended_replicas: decision.recommended.map(replicas),
            cause: cause.into(),
            message: decision.reason.clone(),
            dry_run: decision.dry_run,
            since,
        });
        (decision, previous_cause.flatten())
    }

    /// Records that `decision` was applied to the Deployment whose cached
    /// resourceVersion was `cached_version`.
    pub fn scaled(&mut self, decision: &Decision, cached_version: Option<String>, now: Timestamp) {
        self.applied = Some(Applied {
            replicas: decision.desired,
            cached_version,
        });
        self.last_scale = Some((Time(now), decision.reason.clone()));
        self.scale_failure = None;
    }

    /// Remembers a failure to scale; true when it is new (the first, or a
    /// different one), i.e. worth an Event.
    pub fn scale_failed(&mut self, error: &str) -> bool {
        if self.scale_failure.as_deref() == Some(error) {
            return false;
        }
        self.scale_failure = Some(error.to_owned());
        true
    }

    /// The last measured backlog, for the shop's total.
    pub fn backlog(&self) -> Option<u64> {
        self.backlog
    }

    /// The decided replicas, when there is a decision.
    pub fn desired(&self) -> Option<i32> {
        self.decision.as_ref().map(|d| d.desired_replicas)
    }

    /// The gauges' view of the last measurement.
    pub fn gauges(&self) -> Option<BacklogPartsValues> {
        self.measured.as_ref().map(|m| BacklogPartsValues {
            lag: m.lag,
            pending: m.pending,
            waiting: m.waiting,
            delayed: m.delayed,
            in_flight: m.in_flight,
        })
    }

    /// What changes warrant an immediate status write: the decided count,
    /// the cause, dry run, and a new scale.
    pub fn urgent_key(&self) -> (Option<i32>, Option<String>, bool, Option<Time>) {
        (
            self.desired(),
            self.decision.as_ref().map(|d| d.cause.clone()),
            self.decision.as_ref().is_some_and(|d| d.dry_run),
            self.last_scale.as_ref().map(|(t, _)| t.clone()),
        )
    }

    /// The autoscaler's fields of this consumer's `status.services[]` entry.
    pub fn status_entry(&self) -> ServiceStatus {
        ServiceStatus {
            name: self.role.slug().into(),
            backlog: self.backlog.map(count),
            desired_replicas: self.desired(),
            last_scale_time: self.last_scale.as_ref().map(|(t, _)| t.clone()),
            last_scale_reason: self.last_scale.as_ref().map(|(_, r)| r.clone()),
            autoscaling: Some(ConsumerScalingStatus {
                measured: self.measured.clone(),
                decision: self.decision.clone(),
                memory: memory::to_status(&self.state),
            }),
            ..ServiceStatus::default()
        }
    }
}

/// The cause a status string names (None for an unknown one, e.g. written
/// by a newer operator).
fn cause_named(name: &str) -> Option<Cause> {
    const ALL: [Cause; 10] = [
        Cause::ScaledUp,
        Cause::ScaledDown,
        Cause::Steady,
        Cause::PolicyBounds,
        Cause::Stabilizing,
        Cause::WorkInFlight,
        Cause::LowerBound,
        Cause::RateLimited,
        Cause::Paused,
        Cause::MeasurementFailed,
    ];
    ALL.into_iter().find(|c| c.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;

    fn deployment(replicas: i32, version: &str) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.resource_version = Some(version.into());
        d.spec = Some(DeploymentSpec {
            replicas: Some(replicas),
            ..DeploymentSpec::default()
        });
        d
    }

    fn waiting(n: u64) -> Sample {
        Sample::Measured(Observation {
            waiting: n,
            ..Observation::idle()
        })
    }

    fn policy() -> Policy {
        Policy {
            target_per_replica: 10,
            ..Policy::default()
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn an_applied_count_stands_until_the_cache_shows_a_newer_deployment() {
        let mut scaler = ConsumerScaler::resume(Role::Order, None, UnixMillis(0));
        let stale = deployment(1, "10");
        let (decision, _) = scaler.decide(&policy(), &waiting(35), 1, UnixMillis(0), t(0));
        assert_eq!(decision.desired, 4);
        scaler.scaled(&decision, Some("10".into()), t(0));
        assert_eq!(
            scaler.current_replicas(&stale),
            4,
            "cache not caught up yet"
        );
        assert_eq!(scaler.current_replicas(&deployment(4, "11")), 4);
        // Someone scaled by hand afterwards: the cache is the truth now.
        assert_eq!(scaler.current_replicas(&deployment(7, "12")), 7);
        assert_eq!(scaler.current_replicas(&stale), 1, "no applied count left");
    }

    #[test]
    fn since_moves_only_when_the_cause_or_count_changes() {
        let mut scaler = ConsumerScaler::resume(Role::Order, None, UnixMillis(0));
        let (_, previous) = scaler.decide(&policy(), &waiting(35), 1, UnixMillis(0), t(0));
        assert_eq!(previous, None);
        let (steady, previous) = scaler.decide(&policy(), &waiting(36), 4, UnixMillis(500), t(1));
        assert_eq!(steady.cause, Cause::Steady);
        assert_eq!(previous, Some(Cause::ScaledUp));
        let since = scaler.decision.as_ref().unwrap().since.clone();
        assert_eq!(since, Time(t(1)));
        let _ = scaler.decide(&policy(), &waiting(37), 4, UnixMillis(1_000), t(2));
        assert_eq!(scaler.decision.as_ref().unwrap().since, since);
    }

    #[test]
    fn the_status_entry_carries_parts_decision_and_memory_and_resumes_from_them() {
        let mut scaler = ConsumerScaler::resume(Role::Inventory, None, UnixMillis(0));
        let sample = Sample::Measured(Observation {
            lag: 20,
            pending: 3,
            in_flight: 2,
            ..Observation::idle()
        });
        let (decision, _) = scaler.decide(&policy(), &sample, 1, UnixMillis(0), t(0));
        scaler.scaled(&decision, None, t(0));
        let entry = scaler.status_entry();
        assert_eq!(entry.name, "inventory");
        assert_eq!(entry.backlog, Some(25));
        assert_eq!(entry.desired_replicas, Some(3));
        assert!(
            entry
                .last_scale_reason
                .as_deref()
                .unwrap()
                .contains("up from 1")
        );
        assert_eq!(entry.current_replicas, None, "owned by the reconcile");
        let scaling = entry.autoscaling.clone().unwrap();
        let measured = scaling.measured.unwrap();
        assert_eq!(
            (measured.lag, measured.pending, measured.in_flight),
            (20, 3, 2)
        );
        assert_eq!(scaling.decision.unwrap().cause, "ScaledUp");
        assert_eq!(scaling.memory.last_desired, Some(3));

        let resumed = ConsumerScaler::resume(Role::Inventory, Some(&entry), UnixMillis(0));
        assert_eq!(resumed.state, scaler.state);
        assert_eq!(resumed.status_entry(), entry);
    }

    #[test]
    fn an_unavailable_sample_keeps_the_last_measurement() {
        let mut scaler = ConsumerScaler::resume(Role::Mail, None, UnixMillis(0));
        let _ = scaler.decide(&policy(), &waiting(35), 1, UnixMillis(0), t(0));
        let unavailable = Sample::Unavailable {
            reason: "connection refused".into(),
        };
        let (held, _) = scaler.decide(&policy(), &unavailable, 4, UnixMillis(500), t(1));
        assert_eq!(held.cause, Cause::MeasurementFailed);
        assert_eq!(held.desired, 4);
        assert_eq!(scaler.backlog(), Some(35));
        assert_eq!(scaler.gauges().unwrap().waiting, 35);
    }

    #[test]
    fn a_fresh_scaler_holds_the_handed_over_count_for_a_window() {
        let policy = Policy {
            target_per_replica: 10,
            scale_down_stabilization_ms: 60_000,
            ..Policy::default()
        };
        let mut scaler = ConsumerScaler::resume(Role::Order, None, UnixMillis(0));
        let (held, _) = scaler.decide(&policy, &waiting(0), 3, UnixMillis(1_000), t(1));
        assert_eq!(held.cause, Cause::Stabilizing, "{}", held.reason);
        assert_eq!(held.desired, 3);
        let (still, _) = scaler.decide(&policy, &waiting(0), 3, UnixMillis(60_000), t(60));
        assert_eq!(still.desired, 3, "{}", still.reason);
        let (after, _) = scaler.decide(&policy, &waiting(0), 3, UnixMillis(61_500), t(61));
        assert_eq!(after.cause, Cause::ScaledDown, "{}", after.reason);
        assert!(after.desired < 3);

        // Memory from the status is resumed as it is, not seeded.
        let entry = scaler.status_entry();
        let mut resumed = ConsumerScaler::resume(Role::Order, Some(&entry), UnixMillis(62_000));
        let _ = resumed.decide(&policy, &waiting(0), 3, UnixMillis(62_000), t(62));
        assert_eq!(resumed.state.window.first().map(|r| r.replicas), Some(1));
    }

    #[test]
    fn a_lasting_scale_failure_is_reported_once_until_a_scale_succeeds() {
        let mut scaler = ConsumerScaler::resume(Role::Order, None, UnixMillis(0));
        assert!(scaler.scale_failed("forbidden"));
        assert!(!scaler.scale_failed("forbidden"), "same failure, next poll");
        assert!(scaler.scale_failed("conflict"), "a different failure");
        let (decision, _) = scaler.decide(&policy(), &waiting(35), 1, UnixMillis(0), t(0));
        scaler.scaled(&decision, None, t(1));
        assert!(
            scaler.scale_failed("conflict"),
            "failing again after a success"
        );
    }
}
