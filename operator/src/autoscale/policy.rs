//! From the OrderShop's `autoscaling` settings to the decision's [`Policy`]
//! and the measurement's options.

use ordershop_scaling::{MeasureOptions, Policy};
use ordershop_topology::Role;

use crate::crd::AutoscalingSpec;

/// The decision's policy for one consumer. The CRD schema already refuses
/// out-of-range values; negative numbers that slip through (an old stored
/// object) become 0, and the decision bends any remaining inconsistency
/// (min above max) to the nearest usable policy instead of failing.
pub fn policy(spec: &AutoscalingSpec) -> Policy {
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    let seconds = |s: i32| u64::try_from(s).unwrap_or(0) * 1_000;
    Policy {
        min_replicas: count(spec.min_replicas),
        max_replicas: count(spec.max_replicas),
        target_per_replica: u64::try_from(spec.target_backlog_per_replica).unwrap_or(0),
        // The CRD documents "unbounded when unset".
        max_scale_up_step: spec.scale_up_max_step.map_or(u32::MAX, count),
        scale_down_stabilization_ms: seconds(spec.scale_down_stabilization_seconds),
        max_scale_down_step: count(spec.scale_down_max_step),
        scale_down_interval_ms: seconds(spec.scale_down_interval_seconds),
        dry_run: spec.dry_run,
        paused: spec.paused,
    }
}

/// Fewest entries counted for a lag Redis reports as nil.
const MIN_NIL_LAG_CAP: u64 = 100;
/// Most entries counted for one such lag: the count runs inside Redis (about
/// 2 µs an entry) and Redis serves nothing else meanwhile.
const MAX_NIL_LAG_CAP: u64 = 100_000;

/// How to measure the given consumers. A nil lag is counted up to the
/// largest backlog any of them could act on (`target × maxReplicas`): a
/// larger count could not ask for more replicas, so the cap loses nothing
/// and keeps each poll's cost bounded.
pub fn measure_options(consumers: &[(Role, &AutoscalingSpec)]) -> MeasureOptions {
    let actionable = consumers
        .iter()
        .map(|(_, spec)| {
            u64::try_from(spec.target_backlog_per_replica)
                .unwrap_or(0)
                .saturating_mul(u64::try_from(spec.max_replicas).unwrap_or(0))
        })
        .max()
        .unwrap_or(0);
    MeasureOptions {
        nil_lag_cap: actionable.clamp(MIN_NIL_LAG_CAP, MAX_NIL_LAG_CAP),
        ..MeasureOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_defaults_become_the_documented_policy() {
        let p = policy(&AutoscalingSpec::default());
        assert_eq!((p.min_replicas, p.max_replicas), (1, 10));
        assert_eq!(p.target_per_replica, 100);
        assert_eq!(p.max_scale_up_step, u32::MAX, "unbounded when unset");
        assert_eq!(p.scale_down_stabilization_ms, 60_000);
        assert_eq!(p.max_scale_down_step, 1);
        assert_eq!(p.scale_down_interval_ms, 15_000);
        assert!(!p.dry_run && !p.paused);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn every_knob_is_carried_over() {
        let spec = AutoscalingSpec {
            enabled: true,
            min_replicas: 2,
            max_replicas: 7,
            target_backlog_per_replica: 25,
            scale_down_stabilization_seconds: 3,
            scale_down_max_step: 4,
            scale_down_interval_seconds: 0,
            scale_up_max_step: Some(2),
            dry_run: true,
            paused: true,
        };
        assert_eq!(
            policy(&spec),
            Policy {
                min_replicas: 2,
                max_replicas: 7,
                target_per_replica: 25,
                max_scale_up_step: 2,
                scale_down_stabilization_ms: 3_000,
                max_scale_down_step: 4,
                scale_down_interval_ms: 0,
                dry_run: true,
                paused: true,
            }
        );
    }

    #[test]
    fn negative_values_never_wrap() {
        let spec = AutoscalingSpec {
            min_replicas: -1,
            scale_down_stabilization_seconds: -5,
            ..AutoscalingSpec::default()
        };
        let p = policy(&spec);
        assert_eq!(p.min_replicas, 0);
        assert_eq!(p.scale_down_stabilization_ms, 0);
    }

    #[test]
    fn the_nil_lag_cap_covers_the_largest_actionable_backlog() {
        let small = AutoscalingSpec {
            target_backlog_per_replica: 10,
            max_replicas: 5,
            ..AutoscalingSpec::default()
        };
        let large = AutoscalingSpec {
            target_backlog_per_replica: 500,
            max_replicas: 8,
            ..AutoscalingSpec::default()
        };
        let options = measure_options(&[(Role::Order, &small), (Role::Crm, &large)]);
        assert_eq!(options.nil_lag_cap, 4_000);
        assert_eq!(
            measure_options(&[(Role::Order, &small)]).nil_lag_cap,
            MIN_NIL_LAG_CAP
        );
        let huge = AutoscalingSpec {
            target_backlog_per_replica: i64::MAX,
            ..AutoscalingSpec::default()
        };
        assert_eq!(
            measure_options(&[(Role::Mail, &huge)]).nil_lag_cap,
            MAX_NIL_LAG_CAP
        );
    }
}
