//! The short chaos run of the suite: `ordershop chaos` for 40 s with four
//! clients, a `kill -9` every 4 s, the event store and the queue paused
//! past their lease, Redis killed and restarted, every Redis connection
//! dropped — then every check of its audit must pass. The long run's
//! figures are in the README.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_chaos_run_accounts_for_every_flow_and_effect() {
    let output = Command::new(env!("CARGO_BIN_EXE_ordershop"))
        .args(["chaos", "--duration", "40s", "--clients", "4"])
        .args(["--kill-every", "4s", "--seed", "7", "--format", "json"])
        .output()
        .expect("cannot run ordershop chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "ordershop chaos printed no report ({e}; it needs redis-server on PATH); \
             stdout:\n{stdout}\nstderr (end):\n{}",
            tail(&stderr)
        )
    });
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|check| check["passed"] != Value::Bool(true))
        .collect();
    assert!(
        failed.is_empty() && output.status.success(),
        "failed checks: {failed:#?}\nfaults: {:#}\nload: {:#}\nstderr (end):\n{}",
        report["faults"],
        report["load"],
        tail(&stderr)
    );
    let faults: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|fault| fault["fault"].as_str())
        .collect();
    assert!(
        faults
            .iter()
            .any(|fault| fault.starts_with("kill -9 ") && !fault.contains("redis")),
        "no role killed: {faults:?}"
    );
    for expected in [
        "SIGSTOP event-store",
        "SIGSTOP message-queue",
        "kill -9 redis-server",
        "CLIENT KILL",
    ] {
        assert!(
            faults.iter().any(|fault| fault.starts_with(expected)),
            "no {expected:?} fault in {faults:?}"
        );
    }
    assert!(report["load"]["completed"].as_u64() > Some(0));
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
