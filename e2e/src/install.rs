//! Installs the chart once per test process: CRD, ServiceAccount and RBAC,
//! without the in-cluster operator (the tests run it out of cluster).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::tools::{helm, kubectl};

/// Release name and namespace of the chart under test.
pub const RELEASE: &str = "ordershop-operator";
pub const NAMESPACE: &str = "ordershop-system";
/// The ServiceAccount the chart creates (its full name for this release).
pub const SERVICE_ACCOUNT: &str = "ordershop-operator";

/// What the one-time installation produced.
#[derive(Debug)]
pub struct Installed {
    /// A kubeconfig that authenticates as the chart's ServiceAccount.
    pub operator_kubeconfig: PathBuf,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs (or upgrades) the chart and prepares the operator's identity;
/// later calls return the first result.
pub fn chart() -> &'static Installed {
    INSTALLED.get_or_init(|| {
        let chart = crate::repo_root().join("charts/ordershop-operator");
        let chart = chart.to_str().expect("UTF-8 path");
        helm(&[
            "upgrade",
            "--install",
            RELEASE,
            chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "operator.enabled=false",
            "--wait",
            "--timeout",
            "2m",
        ]);
        // helm installs crds/ only on first install, never on upgrade: apply
        // the chart's CRD so the cluster always has the committed one.
        let crds = format!("{chart}/crds");
        kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &crds]);
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/ordershops.ordershop.io",
            "--timeout=60s",
        ]);
        Installed {
            operator_kubeconfig: crate::identity::service_account_kubeconfig(
                NAMESPACE,
                SERVICE_ACCOUNT,
            ),
        }
    })
}
