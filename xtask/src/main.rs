//! `cargo run -p xtask -- <task>`: the project's checks in one place, so
//! developers and CI run exactly the same thing.
//!
//! - `test`: format check, clippy, every workspace test (real redis-server
//!   per test binary), then the operator's end-to-end tests on a local
//!   Kubernetes control plane (`e2e/cluster.sh`), which is always torn down.
//! - `e2e`: only the control-plane part.
//!
//! Std only, so the task runner itself builds in seconds.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

fn main() -> ExitCode {
    let task = env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    let result = match task.as_str() {
        "test" => test(&root),
        "e2e" => e2e(&root),
        _ => Err(format!(
            "usage: cargo run -p xtask -- test|e2e (got {task:?})"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            step(&format!("FAILED: {message}"));
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Progress goes to stderr: the task runner's output is for people.
fn step(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n==> {message}");
}

fn run(root: &Path, program: &str, args: &[&str], envs: &[(&str, String)]) -> Result<(), String> {
    let started = Instant::now();
    step(&format!("{program} {}", args.join(" ")));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    step(&format!(
        "{program} {} finished in {:.0?}: {status}",
        args.first().copied().unwrap_or_default(),
        started.elapsed()
    ));
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed", args.join(" ")))
    }
}

fn test(root: &Path) -> Result<(), String> {
    run(root, "cargo", &["fmt", "--all", "--", "--check"], &[])?;
    run(
        root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    run(
        root,
        "cargo",
        &["test", "--workspace", "--exclude", "ordershop-e2e"],
        &[],
    )?;
    e2e(root)
}

/// The operator's end-to-end tests against a real control plane. The
/// cluster is deleted whatever the outcome.
fn e2e(root: &Path) -> Result<(), String> {
    let cluster = root.join("e2e/cluster.sh");
    let cluster = cluster.to_str().ok_or("non-UTF-8 path")?;
    // The e2e tests run the operator binary out of cluster.
    run(root, "cargo", &["build", "-p", "ordershop-operator"], &[])?;
    run(root, "bash", &[cluster, "up"], &[])?;
    let env = cluster_env(root, cluster)?;
    let outcome = run(
        root,
        "cargo",
        &["test", "-p", "ordershop-e2e", "--", "--test-threads=1"],
        &env,
    );
    let down = run(root, "bash", &[cluster, "down"], &[]);
    outcome.and(down)
}

/// `e2e/cluster.sh env` prints `export NAME=value` lines.
fn cluster_env(root: &Path, cluster: &str) -> Result<Vec<(&'static str, String)>, String> {
    let output = Command::new("bash")
        .args([cluster, "env"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run {cluster} env: {e}"))?;
    if !output.status.success() {
        return Err(format!("{cluster} env failed"));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut env = Vec::new();
    for line in text.lines() {
        let Some(assignment) = line.trim().strip_prefix("export ") else {
            continue;
        };
        let Some((name, value)) = assignment.split_once('=') else {
            continue;
        };
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        let value = value.replace("$PATH", &env::var("PATH").unwrap_or_default());
        match name {
            "KUBECONFIG" => env.push(("KUBECONFIG", value)),
            "PATH" => env.push(("PATH", value)),
            _ => {}
        }
    }
    if !env.iter().any(|(k, _)| *k == "KUBECONFIG") {
        return Err(format!("{cluster} env printed no KUBECONFIG"));
    }
    Ok(env)
}
