//! `cargo run -p xtask -- <task>`: the project's checks in one place, so
//! developers and CI run exactly the same thing.
//!
//! - `test`: format check, clippy, every workspace test (real redis-server
//!   per test binary; schemathesis from PyPI for the contract test), then the end-to-end tests on a local Kubernetes
//!   cluster with a real node (`e2e/cluster.sh`): images of this checkout
//!   are built and imported, and the cluster is always torn down.
//! - `e2e`: only the cluster part.
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

/// The checkout `cargo run` was invoked in. Read at run time first: with a
/// target directory shared between checkouts, cargo may run an `xtask`
/// binary last linked from another checkout, whose compile-time path would
/// then test that other tree.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
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

/// Passed and failed test counts, summed over `cargo test` runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// One plain closing line for CI, whatever libtest printed last.
    fn print(&self) {
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout(),
            "summary: {} passed, {} failed",
            self.passed,
            self.failed
        );
    }

    /// Adds a libtest closing line: `test result: ok. 9 passed; 0 failed; ...`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let number_before = |word: &str| {
            rest.split(';')
                .find_map(|part| part.trim().strip_suffix(word))
                .and_then(|n| n.trim().rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.passed += number_before(" passed");
        self.failed += number_before(" failed");
    }
}

/// `cargo test ...`, echoing its output and counting its results.
fn cargo_test(
    root: &Path,
    args: &[&str],
    envs: &[(&str, String)],
    tally: &mut Tally,
) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Write};
    let started = Instant::now();
    step(&format!("cargo {}", args.join(" ")));
    let mut child = Command::new("cargo")
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        tally.add_line(&line);
        let _ = writeln!(out, "{line}");
    }
    drop(out);
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    step(&format!(
        "cargo {} finished in {:.0?}: {status}",
        args.join(" "),
        started.elapsed()
    ));
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed", args.join(" ")))
    }
}

fn test(root: &Path) -> Result<(), String> {
    warn_if_disk_is_short(root);
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
    let schemathesis = install_schemathesis(root)?;
    let mut tally = Tally::default();
    let outcome = cargo_test(
        root,
        &[
            "test",
            "--workspace",
            "--no-fail-fast",
            "--exclude",
            "ordershop-e2e",
        ],
        &[("ORDERSHOP_SCHEMATHESIS", schemathesis)],
        &mut tally,
    )
    .and_then(|()| e2e_counted(root, &mut tally));
    tally.print();
    outcome
}

/// What a cold run of `test` writes, with a margin: measured 6.3 GB in all,
/// the target directory 5.4 GB at its peak (`CARGO_INCREMENTAL=0`, as
/// `.ci/run` sets it). A run on a fuller disk fails minutes later with a
/// bare "No space left on device" from rustc, so say it up front.
const COLD_RUN_GIB: u64 = 10;

fn warn_if_disk_is_short(root: &Path) {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let probe = if target.exists() {
        target.as_path()
    } else {
        root
    };
    let Some(free_gib) = free_gib(probe) else {
        return;
    };
    if free_gib < COLD_RUN_GIB {
        step(&format!(
            "WARNING: {free_gib} GiB free on the disk of {}; a cold run writes about \
             {COLD_RUN_GIB} GiB (cargo target, images) and fails with \
             \"No space left on device\" if it runs out",
            probe.display()
        ));
    } else {
        step(&format!("{free_gib} GiB free for the build"));
    }
}

/// Free space under `path` in GiB, from POSIX `df -Pk`.
fn free_gib(path: &Path) -> Option<u64> {
    let output = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let available_kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(available_kib / (1024 * 1024))
}

/// The contract test's fuzzer (PyPI), installed once into the project's
/// cache by the test's own script; returns the path of its `st`.
fn install_schemathesis(root: &Path) -> Result<String, String> {
    let script = root.join("services/ordershop/tests/contract/install.sh");
    step(&format!(
        "{} (schemathesis for the contract test)",
        script.display()
    ));
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed", script.display()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The operator's end-to-end tests against a real control plane. The
/// cluster is deleted whatever the outcome.
fn e2e(root: &Path) -> Result<(), String> {
    let mut tally = Tally::default();
    let outcome = e2e_counted(root, &mut tally);
    tally.print();
    outcome
}

fn e2e_counted(root: &Path, tally: &mut Tally) -> Result<(), String> {
    let cluster = root.join("e2e/cluster.sh");
    let cluster = cluster.to_str().ok_or("non-UTF-8 path")?;
    // The API-behaviour tests run the operator binary out of cluster; the
    // real-pod scenario drives flows with the load generator.
    run(
        root,
        "cargo",
        &[
            "build",
            "-p",
            "ordershop-operator",
            "-p",
            "ordershop-loadgen",
        ],
        &[],
    )?;
    let outcome = run(root, "bash", &[cluster, "up"], &[])
        // Release builds of this checkout, imported into the real node.
        .and_then(|()| run(root, "bash", &[cluster, "images"], &[]))
        .and_then(|()| cluster_env(root, cluster))
        .and_then(|env| {
            let tested = cargo_test(
                root,
                &["test", "-p", "ordershop-e2e", "--", "--test-threads=1"],
                &env,
                tally,
            );
            if tested.is_err() {
                // What the cluster looked like, before `down` removes it.
                let _ = run(root, "bash", &[cluster, "diagnose"], &[]);
            }
            tested
        });
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
            "ORDERSHOP_NODE_CTR" => env.push(("ORDERSHOP_NODE_CTR", value)),
            _ => {}
        }
    }
    if !env.iter().any(|(k, _)| *k == "KUBECONFIG") {
        return Err(format!("{cluster} env printed no KUBECONFIG"));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tallies_libtest_closing_lines() {
        let mut tally = Tally::default();
        tally.add_line("test result: ok. 9 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 6.27s");
        tally.add_line(
            "test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out",
        );
        tally.add_line("running 4 tests");
        assert_eq!(
            tally,
            Tally {
                passed: 12,
                failed: 2
            }
        );
    }
}
