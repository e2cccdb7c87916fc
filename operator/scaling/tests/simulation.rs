//! The decision driven by recorded series of samples, as the operator would
//! drive it: poll every 500 ms, apply what is decided, feed the replicas
//! back. Deterministic: time is a counter.

use ordershop_scaling::{
    Backlog, Cause, Change, Decision, EntryId, GroupBacklog, GroupRef, Lag, Observation, Policy,
    Sample, ScalerState, StreamBacklog, StreamState, UnixMillis, decide,
};
use ordershop_topology::Role;

const POLL_MS: u64 = 500;

/// A scaler and the Deployment it drives.
struct Sim {
    policy: Policy,
    state: ScalerState,
    replicas: u32,
    now: u64,
}

impl Sim {
    fn new(policy: Policy, replicas: u32) -> Self {
        Self {
            policy,
            state: ScalerState::default(),
            replicas,
            now: 1_700_000_000_000,
        }
    }

    /// One poll: decide, apply unless dry run, advance the clock.
    fn step(&mut self, sample: &Sample) -> Decision {
        let decision = decide(
            &self.policy,
            &mut self.state,
            sample,
            self.replicas,
            UnixMillis(self.now),
        );
        if decision.should_apply(self.replicas) {
            self.replicas = decision.desired;
        }
        self.now += POLL_MS;
        decision
    }

    /// Polls with the same sample for `millis`, returning every decision.
    fn run(&mut self, sample: &Sample, millis: u64) -> Vec<Decision> {
        (0..millis / POLL_MS).map(|_| self.step(sample)).collect()
    }
}

fn policy() -> Policy {
    Policy {
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

fn streams(lag: u64, pending: u64) -> Sample {
    Sample::Measured(Observation {
        lag,
        pending,
        exact: true,
        ..Observation::default()
    })
}

fn queue(waiting: u64, in_flight: u64) -> Sample {
    Sample::Measured(Observation {
        waiting,
        in_flight,
        exact: true,
        ..Observation::default()
    })
}

fn idle() -> Sample {
    Sample::Measured(Observation::idle())
}

fn outage() -> Sample {
    Sample::Unavailable {
        reason: "Redis could not be read: Connection refused".into(),
    }
}

/// Replica counts after each decision.
fn trace(decisions: &[Decision]) -> Vec<u32> {
    decisions.iter().map(|d| d.desired).collect()
}

/// Indices (poll numbers) at which the replicas changed.
fn changes(decisions: &[Decision]) -> Vec<(usize, u32)> {
    decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.change != Change::Hold)
        .map(|(i, d)| (i, d.desired))
        .collect()
}

#[test]
fn the_reason_carries_the_numbers() {
    let mut sim = Sim::new(
        Policy {
            max_scale_up_step: 10,
            ..policy()
        },
        2,
    );
    let decision = sim.step(&streams(700, 30));
    assert_eq!(
        decision.reason,
        "backlog 730 (lag 700 + pending 30) / target 100 → 8, up from 2"
    );
    assert_eq!(
        (decision.desired, decision.change, decision.cause),
        (8, Change::Up, Cause::ScaledUp)
    );
    assert_eq!(
        (decision.recommended, decision.backlog),
        (Some(8), Some(730))
    );
}

#[test]
fn a_burst_scales_up_at_once_and_down_after_the_window_at_a_bounded_rate() {
    let mut sim = Sim::new(policy(), 1);
    sim.run(&idle(), 5_000);
    assert_eq!(sim.replicas, 1);

    // The burst: 730 waiting messages, acted on at the first poll and
    // stepped by 4 per poll: within a second.
    let burst = sim.run(&queue(730, 0), 1_500);
    assert_eq!(trace(&burst), vec![5, 8, 8]);
    assert!(
        burst[0].reason.ends_with("up from 1 to 5 (step limit 4)"),
        "{}",
        burst[0].reason
    );

    // Drained: 60 s of stabilization (the last 8 was recommended at the last
    // burst poll), then one replica per 15 s down to the min.
    let drain = sim.run(&idle(), 200_000);
    let first_down = drain.iter().position(|d| d.change == Change::Down).unwrap();
    assert_eq!(first_down as u64 * POLL_MS, 60_000);
    assert!(
        drain[..first_down]
            .iter()
            .all(|d| d.cause == Cause::Stabilizing),
        "{:?}",
        drain[first_down - 1]
    );
    let downs = changes(&drain);
    let steps: Vec<u32> = downs.iter().map(|(_, r)| *r).collect();
    assert_eq!(steps, vec![7, 6, 5, 4, 3, 2, 1]);
    for pair in downs.windows(2) {
        assert_eq!((pair[1].0 - pair[0].0) as u64 * POLL_MS, 15_000);
    }
    assert!(
        drain[first_down + 1]
            .reason
            .contains("next scale-in allowed in 14.5 s")
    );
}

#[test]
fn steady_load_never_changes_the_replicas() {
    let mut sim = Sim::new(policy(), 5);
    let mut decisions = Vec::new();
    // 10 minutes of backlogs between 401 and 500: always 5 replicas.
    for i in 0..1_200u64 {
        let lag = 401 + (i * 37) % 100;
        decisions.push(sim.step(&streams(lag, 0)));
    }
    assert!(changes(&decisions).is_empty());
    assert!(decisions.iter().all(|d| d.cause == Cause::Steady));
}

#[test]
fn flapping_around_the_threshold_scales_up_once_and_never_back_while_it_flaps() {
    let mut sim = Sim::new(policy(), 2);
    let mut decisions = Vec::new();
    for i in 0..1_200 {
        let lag = if i % 2 == 0 { 199 } else { 201 };
        decisions.push(sim.step(&streams(lag, 0)));
    }
    assert_eq!(changes(&decisions), vec![(1, 3)]);
    // Once it settles below the threshold, the window lets it down.
    let settled = sim.run(&streams(150, 0), 70_000);
    assert_eq!(changes(&settled).len(), 1);
    assert_eq!(sim.replicas, 2);
}

fn nil_lag_backlog(lag: Lag) -> Backlog {
    Backlog {
        role: Role::Inventory,
        streams: vec![StreamBacklog {
            group: GroupRef::new(Role::Inventory, "order"),
            state: StreamState::Measured(GroupBacklog {
                lag,
                pending: 0,
                last_delivered: EntryId { ms: 5, seq: 0 },
                reported_lag: None,
                stream_length: 20_000,
                oldest_undelivered_age_ms: None,
            }),
        }],
        channels: Vec::new(),
    }
}

#[test]
fn a_nil_lag_counted_exactly_scales_both_ways() {
    let mut sim = Sim::new(policy(), 1);
    let up = sim.step(&nil_lag_backlog(Lag::Counted(250)).sample());
    assert_eq!(up.desired, 3);
    assert!(
        up.reason
            .starts_with("backlog 250 (lag 250) / target 100 → 3"),
        "{}",
        up.reason
    );
    let down = sim.run(&nil_lag_backlog(Lag::Counted(0)).sample(), 61_000);
    assert_eq!(changes(&down), vec![(120, 2)]);
}

#[test]
fn a_capped_nil_lag_scales_up_but_never_in() {
    let mut sim = Sim::new(policy(), 1);
    let capped = nil_lag_backlog(Lag::AtLeast(10_001)).sample();
    let decisions = sim.run(&capped, 1_500);
    assert_eq!(trace(&decisions), vec![5, 9, 10]);
    assert!(
        decisions[0].reason.starts_with("backlog at least 10001"),
        "{}",
        decisions[0].reason
    );

    // A lower bound below the current count does not allow scale-in, however
    // long it lasts: the true backlog may be far larger.
    let low_bound = nil_lag_backlog(Lag::AtLeast(101)).sample();
    let held = sim.run(&low_bound, 300_000);
    assert!(changes(&held).is_empty());
    assert!(held.iter().all(|d| d.cause == Cause::LowerBound));
    assert!(
        held[0].reason.contains("counted at least 101"),
        "{}",
        held[0].reason
    );
}

#[test]
fn a_missing_group_is_a_lower_bound_too() {
    let backlog = Backlog {
        role: Role::Inventory,
        streams: vec![StreamBacklog {
            group: GroupRef::new(Role::Inventory, "order"),
            state: StreamState::GroupMissing,
        }],
        channels: Vec::new(),
    };
    let mut sim = Sim::new(policy(), 3);
    let held = sim.run(&backlog.sample(), 120_000);
    assert!(changes(&held).is_empty());
    assert_eq!(held[0].cause, Cause::LowerBound);
    assert!(
        held[0]
            .reason
            .contains("group inventory-service is missing on events:order")
    );
}

#[test]
fn a_redis_outage_holds_the_last_decision_and_keeps_the_window() {
    let mut sim = Sim::new(policy(), 1);
    sim.run(&streams(800, 0), 1_000);
    assert_eq!(sim.replicas, 8);

    let down = sim.run(&outage(), 90_000);
    assert!(changes(&down).is_empty());
    assert!(
        down.iter()
            .all(|d| d.cause == Cause::MeasurementFailed && d.desired == 8)
    );
    assert_eq!(
        down[0].reason,
        "backlog unknown (Redis could not be read: Connection refused); holding 8 replicas (last decision)"
    );

    // Back, and idle: the outage counted as "8 still needed", so scale-in
    // waits a full window of real measurements.
    let back = sim.run(&idle(), 70_000);
    let first_down = back.iter().position(|d| d.change == Change::Down).unwrap();
    assert_eq!(first_down as u64 * POLL_MS, 60_000);
}

#[test]
fn an_outage_before_any_decision_keeps_the_current_replicas() {
    let mut sim = Sim::new(policy(), 3);
    let decision = sim.step(&outage());
    assert_eq!((decision.desired, decision.change), (3, Change::Hold));
    assert!(
        decision
            .reason
            .contains("holding 3 replicas (current count, no decision yet)")
    );
}

#[test]
fn an_operator_restart_mid_window_keeps_the_window() {
    let series = |sim: &mut Sim| {
        sim.run(&streams(900, 0), 2_000);
        sim.run(&idle(), 30_000)
    };
    let mut uninterrupted = Sim::new(policy(), 1);
    series(&mut uninterrupted);
    let expected = uninterrupted.run(&idle(), 120_000);

    // The same, but the operator restarts after 30 s of the window: its state
    // went through the status as JSON.
    let mut before = Sim::new(policy(), 1);
    series(&mut before);
    let status = serde_json::to_string(&before.state).unwrap();
    let mut after = Sim {
        state: serde_json::from_str(&status).unwrap(),
        ..Sim::new(policy(), before.replicas)
    };
    after.now = before.now;
    let resumed = after.run(&idle(), 120_000);
    assert_eq!(resumed, expected);
    assert_eq!(changes(&resumed)[0], (60, 8));

    // Without the persisted state the window would be lost: the scaler would
    // scale in right away. (This is what the persisted state prevents.)
    let mut amnesiac = Sim::new(policy(), before.replicas);
    amnesiac.now = before.now;
    let forgetful = amnesiac.run(&idle(), 120_000);
    assert_eq!(changes(&forgetful)[0], (0, 8));
}

#[test]
fn work_in_flight_blocks_scale_in_even_to_zero() {
    let mut sim = Sim::new(
        Policy {
            min_replicas: 0,
            ..policy()
        },
        4,
    );
    // Three stream entries pending, or two queue messages in flight: the
    // recommendation is 1, but nothing is removed for ten minutes.
    let pending = sim.run(&streams(0, 3), 300_000);
    let in_flight = sim.run(&queue(0, 2), 300_000);
    assert!(changes(&pending).is_empty() && changes(&in_flight).is_empty());
    assert!(pending.iter().all(|d| d.cause == Cause::WorkInFlight));
    assert!(
        pending[0]
            .reason
            .ends_with("holding 4: no scale-in while 3 entries are pending or messages in flight"),
        "{}",
        pending[0].reason
    );
    assert_eq!(sim.replicas, 4);

    // Only once nothing is held does it go down, and to zero (min 0).
    let idle_run = sim.run(&idle(), 120_000);
    assert_eq!(
        changes(&idle_run).iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![3, 2, 1, 0]
    );
    // And back up from zero at the first message.
    assert_eq!(sim.step(&queue(1, 0)).desired, 1);
}

#[test]
fn min_and_max_clamp_the_recommendation() {
    let mut sim = Sim::new(
        Policy {
            min_replicas: 2,
            max_replicas: 6,
            max_scale_up_step: 10,
            ..policy()
        },
        2,
    );
    assert_eq!(sim.step(&streams(1_000_000, 0)).desired, 6);
    let quiet = sim.run(&idle(), 300_000);
    assert_eq!(quiet.last().unwrap().desired, 2);
    assert!(quiet.iter().all(|d| d.desired >= 2));
}

#[test]
fn replicas_outside_a_changed_policy_are_brought_inside_at_once() {
    // Below a raised min: straight to the min, whatever the step.
    let mut sim = Sim::new(
        Policy {
            min_replicas: 6,
            max_scale_up_step: 1,
            ..policy()
        },
        1,
    );
    let raised = sim.step(&idle());
    assert_eq!((raised.desired, raised.cause), (6, Cause::PolicyBounds));
    assert!(
        raised.reason.ends_with("up from 1 to minReplicas 6"),
        "{}",
        raised.reason
    );

    // Above a lowered max: straight to the max.
    let mut sim = Sim::new(
        Policy {
            max_replicas: 3,
            ..policy()
        },
        9,
    );
    let lowered = sim.step(&streams(900, 0));
    assert_eq!((lowered.desired, lowered.cause), (3, Cause::PolicyBounds));
}

#[test]
fn step_limits_bound_each_decision() {
    let mut sim = Sim::new(
        Policy {
            max_scale_up_step: 3,
            max_scale_down_step: 2,
            scale_down_stabilization_ms: 0,
            scale_down_interval_ms: 10_000,
            ..policy()
        },
        1,
    );
    let up = sim.run(&streams(1_000, 0), 2_000);
    assert_eq!(trace(&up), vec![4, 7, 10, 10]);
    let down = sim.run(&idle(), 60_000);
    assert_eq!(
        changes(&down),
        vec![(0, 8), (20, 6), (40, 4), (60, 2), (80, 1)]
    );
}

#[test]
fn dry_run_reports_the_path_a_live_scaler_would_take_without_acting() {
    let dry = Policy {
        dry_run: true,
        ..policy()
    };
    let mut sim = Sim::new(dry, 2);
    let decisions = sim.run(&streams(900, 0), 1_500);
    assert_eq!(sim.replicas, 2, "dry run must not act");
    assert_eq!(trace(&decisions), vec![6, 9, 9]);
    assert!(decisions.iter().all(|d| d.dry_run && !d.should_apply(2)));
    assert_eq!(
        decisions[0].reason,
        "dry run: backlog 900 (lag 900) / target 100 → 9, up from 2 to 6 (step limit 4)"
    );
    assert_eq!(decisions[1].from, 6);
}

#[test]
fn paused_keeps_the_replicas_and_still_reports_the_recommendation() {
    let mut sim = Sim::new(
        Policy {
            paused: true,
            ..policy()
        },
        2,
    );
    let paused = sim.run(&streams(900, 0), 10_000);
    assert!(changes(&paused).is_empty());
    assert_eq!(paused[0].cause, Cause::Paused);
    assert_eq!(
        paused[0].reason,
        "paused, keeping 2 (backlog 900 (lag 900) / target 100 → 9)"
    );
    // Unpaused: the window remembers what was recommended while paused.
    sim.policy.paused = false;
    assert_eq!(sim.step(&streams(900, 0)).desired, 6);
}
