//! `kubectl` and `helm`, run as the test's user (KUBECONFIG).

use std::process::{Command, Output};

/// Output of a finished command.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

fn run(program: &str, args: &[&str]) -> Finished {
    let output: Output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}` ({e}); put it on PATH, e.g. eval \"$(e2e/cluster.sh env)\""
            )
        });
    Finished {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs kubectl; returns its output whether it failed or not.
pub fn kubectl_output(args: &[&str]) -> Finished {
    run("kubectl", args)
}

/// Runs kubectl and panics with its stderr when it fails.
pub fn kubectl(args: &[&str]) -> String {
    let out = run("kubectl", args);
    assert!(
        out.success,
        "kubectl {} failed:\n{}",
        args.join(" "),
        out.stderr
    );
    out.stdout
}

/// Runs helm; returns its output whether it failed or not.
pub fn helm_output(args: &[&str]) -> Finished {
    run("helm", args)
}

/// Runs helm and panics with its stderr when it fails.
pub fn helm(args: &[&str]) -> String {
    let out = run("helm", args);
    assert!(
        out.success,
        "helm {} failed:\n{}",
        args.join(" "),
        out.stderr
    );
    out.stdout
}
