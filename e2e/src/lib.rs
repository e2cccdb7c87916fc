//! End-to-end tests of the OrderShop operator against any Kubernetes API
//! server (the one `KUBECONFIG` points at): the local control plane of
//! `e2e/cluster.sh` (a real node, and a tainted kwok node for fake pods) or kind in GitHub Actions.
//!
//! Every test binary:
//! 1. checks that an API server answers, and fails with a clear message if not;
//! 2. installs the chart once (`helm upgrade --install`, CRD + RBAC, no
//!    in-cluster operator) — see [`install`];
//! 3. runs the operator out of cluster as a child process with the chart's
//!    ServiceAccount identity (a kubeconfig holding a TokenRequest token), so
//!    an RBAC gap in the chart fails the test — see [`identity`], [`operator`];
//! 4. works in its own namespace per test, with its own operator scoped to it
//!    and its own leader Lease, so tests run in parallel.
//!
//! ```text
//! e2e/cluster.sh up && eval "$(e2e/cluster.sh env)"
//! cargo build -p ordershop-operator
//! cargo test -p ordershop-e2e
//! ```
//! The operator binary is `$ORDERSHOP_OPERATOR_BIN`, else the workspace's
//! `target/debug/ordershop-operator` (build it first, as above).
//!
//! The real-pod scenario (`tests/real_pods.rs`: the operator installed by
//! helm, an OrderShop of real containers, flows, scaling and faults) needs a
//! node that runs containers and the images under test loaded into it:
//! `e2e/cluster.sh images` here, `kind load` in GitHub Actions.

pub mod cluster;
pub mod identity;
pub mod install;
pub mod namespace;
pub mod objects;
pub mod operator;
pub mod real;
pub mod tools;
pub mod volumes;

pub use ordershop_testkit::eventually_async;

use std::path::PathBuf;

/// The repository root (manifests, chart, examples).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Where the tests write operator logs and kubeconfigs:
/// `$ORDERSHOP_E2E_WORK_DIR`, else `target/e2e` in the repository.
pub fn work_dir() -> PathBuf {
    let dir = std::env::var_os("ORDERSHOP_E2E_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("e2e"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}
