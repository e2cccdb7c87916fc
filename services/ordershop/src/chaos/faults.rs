//! What a chaos run does to the shop, and when: a plan drawn from a seed
//! (so a failing run can be replayed), carried out in order.

use std::time::Duration;

use nix::{sys::signal::Signal, unistd::Pid};
use ordershop_topology::Role;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tokio::time::Instant;

use super::target::ShopUnderTest;

/// How long a killed role's supervisor may take to start it again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// When the first fault comes: the load has seeded its catalogue by then.
const FIRST_FAULT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultKind {
    /// `kill -9` of a role's process.
    Kill(Role),
    /// SIGSTOP, then SIGCONT after the duration.
    Pause(Role, Duration),
    /// Redis killed and started again on its AOF.
    RestartRedis,
    /// `CLIENT KILL TYPE normal`: every connection to Redis drops.
    DropConnections,
}

impl FaultKind {
    fn label(self) -> String {
        match self {
            FaultKind::Kill(role) => format!("kill -9 {}", role.slug()),
            FaultKind::Pause(role, held) => {
                format!("SIGSTOP {} for {:.1} s", role.slug(), held.as_secs_f64())
            }
            FaultKind::RestartRedis => "kill -9 redis-server, restart on its AOF".into(),
            FaultKind::DropConnections => "CLIENT KILL TYPE normal".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PlannedFault {
    /// From the start of the run.
    pub(super) after: Duration,
    pub(super) kind: FaultKind,
}

/// A `kill -9` of a random role every `kill_every`, and once each, at a
/// fifth, two fifths, three and four fifths of the run: the event store
/// paused, the queue paused (each for `pause`, longer than a lease), Redis
/// restarted, every Redis connection dropped.
pub(super) fn plan(
    duration: Duration,
    kill_every: Duration,
    pause: Duration,
    seed: u64,
) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::new();
    let mut after = FIRST_FAULT;
    while after < duration && !kill_every.is_zero() {
        let role = Role::ALL[rng.random_range(0..Role::ALL.len())];
        faults.push(PlannedFault {
            after,
            kind: FaultKind::Kill(role),
        });
        after += kill_every;
    }
    let fifth = duration / 5;
    for (n, kind) in [
        FaultKind::Pause(Role::EventStore, pause),
        FaultKind::Pause(Role::MessageQueue, pause),
        FaultKind::RestartRedis,
        FaultKind::DropConnections,
    ]
    .into_iter()
    .enumerate()
    {
        faults.push(PlannedFault {
            // Half a kill interval off the kills' beat, so the two do not
            // hit the same instant.
            after: fifth * (n as u32 + 1) + kill_every / 2,
            kind,
        });
    }
    faults.sort_by_key(|fault| fault.after);
    faults
}

/// What happened when a fault was carried out.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FaultRecord {
    pub(super) fault: String,
    /// Seconds from the start of the run.
    pub(super) at_s: f64,
    /// How long the part was gone: until a killed role's new process
    /// started, a paused one was resumed, Redis answered again; none for
    /// dropped connections (the clients reconnect by themselves).
    pub(super) gone_s: Option<f64>,
    /// Why it could not be done, or what did not come back.
    pub(super) problem: Option<String>,
    #[serde(skip)]
    pub(super) at: std::time::Instant,
}

/// Carries out `plan`, each fault at its time from `started` (or right
/// after the one before, when that took longer).
pub(super) async fn inject(
    shop: &mut ShopUnderTest,
    plan: &[PlannedFault],
    started: Instant,
) -> Vec<FaultRecord> {
    let mut records = Vec::with_capacity(plan.len());
    for fault in plan {
        tokio::time::sleep_until(started + fault.after).await;
        let at = Instant::now();
        tracing::info!(fault = %fault.kind.label(), "injecting");
        let outcome = carry_out(shop, fault.kind).await;
        let (gone_s, problem) = match outcome {
            Ok(gone) => (gone.map(|d| d.as_secs_f64()), None),
            Err(problem) => {
                tracing::warn!(fault = %fault.kind.label(), %problem, "fault went wrong");
                (None, Some(problem))
            }
        };
        records.push(FaultRecord {
            fault: fault.kind.label(),
            at_s: (at - started).as_secs_f64(),
            gone_s,
            problem,
            at: at.into_std(),
        });
    }
    records
}

/// Does one fault; answers how long the part was gone.
async fn carry_out(shop: &mut ShopUnderTest, kind: FaultKind) -> Result<Option<Duration>, String> {
    match kind {
        FaultKind::Kill(role) => {
            let pid = shop.pid(role).ok_or("no pid file")?;
            let began = Instant::now();
            signal(pid, Signal::SIGKILL)?;
            // The supervisor writes the new process's pid when it starts it.
            while shop.pid(role) == Some(pid) {
                if began.elapsed() > RESTART_TIMEOUT {
                    return Err(format!("not restarted within {RESTART_TIMEOUT:?}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(Some(began.elapsed()))
        }
        FaultKind::Pause(role, held) => {
            let pid = shop.pid(role).ok_or("no pid file")?;
            let began = Instant::now();
            signal(pid, Signal::SIGSTOP)?;
            tokio::time::sleep(held).await;
            signal(pid, Signal::SIGCONT)?;
            Ok(Some(began.elapsed()))
        }
        FaultKind::RestartRedis => {
            let began = Instant::now();
            shop.redis
                .crash_and_restart()
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok(Some(began.elapsed()))
        }
        FaultKind::DropConnections => {
            let client = shop.redis_client().map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let dropped: u64 = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(dropped, "Redis connections dropped");
            Ok(None)
        }
    }
}

fn signal(pid: i32, signal: Signal) -> Result<(), String> {
    nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(|e| format!("{signal}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_kills_on_a_beat_and_does_each_other_fault_once() {
        let faults = plan(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Duration::from_secs(4),
            7,
        );
        let kills = faults
            .iter()
            .filter(|f| matches!(f.kind, FaultKind::Kill(_)))
            .count();
        assert_eq!(kills, 12, "3 s, 8 s, ..., 58 s");
        for once in [
            FaultKind::Pause(Role::EventStore, Duration::from_secs(4)),
            FaultKind::Pause(Role::MessageQueue, Duration::from_secs(4)),
            FaultKind::RestartRedis,
            FaultKind::DropConnections,
        ] {
            assert_eq!(faults.iter().filter(|f| f.kind == once).count(), 1);
        }
        assert!(faults.windows(2).all(|w| w[0].after <= w[1].after));
        assert!(faults.iter().all(|f| f.after < Duration::from_secs(60)));
        let again = plan(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Duration::from_secs(4),
            7,
        );
        assert!(
            faults.iter().zip(&again).all(|(a, b)| a.kind == b.kind),
            "one seed, one plan"
        );
    }
}
