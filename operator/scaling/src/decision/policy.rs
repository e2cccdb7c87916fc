//! The knobs of one consumer's autoscaling.

use serde::{Deserialize, Serialize};

/// How one consumer scales. The operator builds it from the custom
/// resource's spec; [`Policy::default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Policy {
    /// Fewest replicas, also while idle. 0 allows scale to zero (only when no
    /// work is pending or in flight).
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// Backlog one replica is expected to carry: desired = ceil(backlog / this).
    pub target_per_replica: u64,
    /// Most replicas added by one decision. Scale-up has no window and no
    /// interval: the next poll may add the next step.
    pub max_scale_up_step: u32,
    /// Scale-in only to the highest recommendation seen within this window
    /// (as the HPA's `stabilizationWindowSeconds` for scale-down).
    pub scale_down_stabilization_ms: u64,
    /// Most replicas removed by one decision.
    pub max_scale_down_step: u32,
    /// Least time between two scale-in decisions.
    pub scale_down_interval_ms: u64,
    /// Compute and report, but the caller does not act.
    pub dry_run: bool,
    /// Keep the current replicas, whatever the backlog.
    pub paused: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_replicas: 1,
            max_replicas: 10,
            target_per_replica: 100,
            max_scale_up_step: 4,
            scale_down_stabilization_ms: 60_000,
            max_scale_down_step: 1,
            scale_down_interval_ms: 15_000,
            dry_run: false,
            paused: false,
        }
    }
}

/// Why a policy is not usable as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("minReplicas {min} is greater than maxReplicas {max}")]
    MinAboveMax { min: u32, max: u32 },
    #[error("targetPerReplica must be at least 1")]
    ZeroTarget,
    #[error("maxScaleUpStep must be at least 1, or the consumer could never scale up")]
    ZeroUpStep,
    #[error("maxScaleDownStep must be at least 1, or the consumer could never scale in")]
    ZeroDownStep,
}

impl Policy {
    /// The errors the custom resource's schema should already refuse; the
    /// operator can report them in status.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_replicas > self.max_replicas {
            return Err(PolicyError::MinAboveMax {
                min: self.min_replicas,
                max: self.max_replicas,
            });
        }
        if self.target_per_replica == 0 {
            return Err(PolicyError::ZeroTarget);
        }
        if self.max_scale_up_step == 0 {
            return Err(PolicyError::ZeroUpStep);
        }
        if self.max_scale_down_step == 0 {
            return Err(PolicyError::ZeroDownStep);
        }
        Ok(())
    }

    /// The policy the decision applies: a policy that [`validate`] refuses
    /// is bent to the nearest usable one (max wins over min, zero targets and
    /// steps become 1) so a bad spec never panics or divides by zero.
    ///
    /// [`validate`]: Policy::validate
    pub(crate) fn normalized(&self) -> Self {
        Self {
            min_replicas: self.min_replicas.min(self.max_replicas),
            target_per_replica: self.target_per_replica.max(1),
            max_scale_up_step: self.max_scale_up_step.max(1),
            max_scale_down_step: self.max_scale_down_step.max(1),
            ..self.clone()
        }
    }

    pub(crate) fn clamp(&self, replicas: u32) -> u32 {
        replicas.clamp(self.min_replicas, self.max_replicas)
    }

    /// ceil(backlog / target), clamped to [min, max].
    pub(crate) fn recommend(&self, backlog: u64) -> u32 {
        let wanted = backlog.div_ceil(self.target_per_replica);
        self.clamp(u32::try_from(wanted).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Policy::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_broken_knob() {
        let policy = Policy {
            min_replicas: 5,
            max_replicas: 2,
            ..Policy::default()
        };
        assert_eq!(
            policy.validate(),
            Err(PolicyError::MinAboveMax { min: 5, max: 2 })
        );
        let zero = Policy {
            target_per_replica: 0,
            ..Policy::default()
        };
        assert_eq!(zero.validate(), Err(PolicyError::ZeroTarget));
    }

    #[test]
    fn normalized_never_divides_by_zero_and_lets_max_win() {
        let policy = Policy {
            min_replicas: 5,
            max_replicas: 2,
            target_per_replica: 0,
            ..Policy::default()
        }
        .normalized();
        assert_eq!(policy.min_replicas, 2);
        assert_eq!(policy.recommend(1_000), 2);
    }

    #[test]
    fn recommend_rounds_up_and_clamps() {
        let policy = Policy {
            min_replicas: 1,
            max_replicas: 10,
            target_per_replica: 100,
            ..Policy::default()
        };
        assert_eq!(policy.recommend(0), 1);
        assert_eq!(policy.recommend(100), 1);
        assert_eq!(policy.recommend(101), 2);
        assert_eq!(policy.recommend(730), 8);
        assert_eq!(policy.recommend(u64::MAX), 10);
    }

    #[test]
    fn a_partial_spec_takes_defaults_for_the_rest() {
        let policy: Policy = serde_json::from_str(r#"{"maxReplicas": 20}"#).unwrap();
        assert_eq!(policy.max_replicas, 20);
        assert_eq!(policy.target_per_replica, 100);
    }
}
