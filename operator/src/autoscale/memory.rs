//! The decision's memory ([`ScalerState`]) as it is kept in the OrderShop's
//! status ([`ScalerMemory`]), so a restarted operator, or a new leader,
//! resumes the stabilization window and the rate limits where they were.

use ordershop_scaling::{Recommendation, ScalerState, UnixMillis};

use crate::crd::{ScalerMemory, WindowEntry};

fn millis_out(at: UnixMillis) -> i64 {
    i64::try_from(at.0).unwrap_or(i64::MAX)
}

fn millis_in(at: i64) -> UnixMillis {
    UnixMillis(u64::try_from(at).unwrap_or(0))
}

/// The state as the status stores it.
pub fn to_status(state: &ScalerState) -> ScalerMemory {
    ScalerMemory {
        window: state
            .window
            .iter()
            .map(|r| WindowEntry {
                at_millis: millis_out(r.at),
                replicas: i32::try_from(r.replicas).unwrap_or(i32::MAX),
            })
            .collect(),
        last_desired: state
            .last_desired
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        last_scale_up_millis: state.last_scale_up.map(millis_out),
        last_scale_down_millis: state.last_scale_down.map(millis_out),
    }
}

/// The state read back from the status when a scaler starts at `now`.
///
/// The status is written at most every few seconds while nothing but the
/// numbers change, so the newest recommendation may have been made again
/// and again after it was stored. It is taken to have held until `now`:
/// the newest entry is the lowest of the window, so keeping it longer can
/// only delay a scale-in, never hasten one.
pub fn from_status(memory: &ScalerMemory, now: UnixMillis) -> ScalerState {
    let mut window: Vec<Recommendation> = memory
        .window
        .iter()
        .map(|e| Recommendation {
            at: millis_in(e.at_millis),
            replicas: u32::try_from(e.replicas).unwrap_or(0),
        })
        .collect();
    if let Some(newest) = window.last_mut() {
        newest.at = newest.at.max(now);
    }
    ScalerState {
        window,
        last_desired: memory.last_desired.map(|n| u32::try_from(n).unwrap_or(0)),
        last_scale_up: memory.last_scale_up_millis.map(millis_in),
        last_scale_down: memory.last_scale_down_millis.map(millis_in),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordershop_scaling::{Observation, Policy, Sample, decide};

    fn state() -> ScalerState {
        ScalerState {
            window: vec![
                Recommendation {
                    at: UnixMillis(1_000),
                    replicas: 5,
                },
                Recommendation {
                    at: UnixMillis(4_000),
                    replicas: 2,
                },
            ],
            last_desired: Some(5),
            last_scale_up: Some(UnixMillis(1_000)),
            last_scale_down: None,
        }
    }

    #[test]
    fn round_trips_when_read_back_at_the_newest_entry() {
        let stored = to_status(&state());
        assert_eq!(stored.window.len(), 2);
        assert_eq!(stored.last_desired, Some(5));
        assert_eq!(from_status(&stored, UnixMillis(4_000)), state());
    }

    #[test]
    fn the_newest_recommendation_is_taken_to_hold_until_the_restart() {
        let back = from_status(&to_status(&state()), UnixMillis(9_000));
        assert_eq!(
            back.window[0].at,
            UnixMillis(1_000),
            "older entries keep their time"
        );
        assert_eq!(back.window[1].at, UnixMillis(9_000));
    }

    #[test]
    fn a_restart_mid_window_keeps_the_window() {
        let policy = Policy {
            min_replicas: 1,
            max_replicas: 10,
            target_per_replica: 10,
            scale_down_stabilization_ms: 10_000,
            max_scale_down_step: 10,
            scale_down_interval_ms: 0,
            ..Policy::default()
        };
        let sample = |backlog: u64| {
            Sample::Measured(Observation {
                waiting: backlog,
                ..Observation::idle()
            })
        };
        let mut live = ScalerState::default();
        let up = decide(&policy, &mut live, &sample(50), 1, UnixMillis(0));
        assert_eq!(up.desired, 5);
        let _ = decide(&policy, &mut live, &sample(0), 5, UnixMillis(1_000));

        // The operator restarts 3 s into the window.
        let mut resumed = from_status(&to_status(&live), UnixMillis(3_000));
        let held = decide(&policy, &mut resumed, &sample(0), 5, UnixMillis(4_000));
        assert_eq!(held.desired, 5, "{}", held.reason);
        let after = decide(&policy, &mut resumed, &sample(0), 5, UnixMillis(10_001));
        assert_eq!(after.desired, 1, "{}", after.reason);
    }

    #[test]
    fn garbage_never_panics() {
        let memory = ScalerMemory {
            window: vec![WindowEntry {
                at_millis: -5,
                replicas: -1,
            }],
            last_desired: Some(-3),
            last_scale_up_millis: Some(-1),
            last_scale_down_millis: None,
        };
        let state = from_status(&memory, UnixMillis(7));
        assert_eq!(state.window[0].replicas, 0);
        assert_eq!(state.window[0].at, UnixMillis(7));
        assert_eq!(state.last_desired, Some(0));
    }
}
