//! One namespace per test, deleted when the test ends.
//!
//! Two kinds: [`TestNamespace::create`] sends every pod of the namespace to
//! kwok's fake node (tests of the operator's API behaviour, with made-up
//! images and many shops), [`TestNamespace::create_real`] leaves pods to the
//! scheduler, so they run as real containers on a real node.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rand::Rng;
use rand::distr::Alphanumeric;

/// A fresh namespace; deleted (without waiting) on drop unless
/// `ORDERSHOP_E2E_KEEP=1`, to look at what a failed test left.
#[derive(Debug)]
pub struct TestNamespace {
    pub name: String,
    /// Cluster-scoped objects a test made for this namespace (PersistentVolumes).
    pub volumes: Vec<String>,
    /// Whether its pods go to kwok's fake node (no container ever runs).
    pub fake_pods: bool,
}

/// The node selector and toleration that put a pod on kwok's fake node
/// (`e2e/cluster.sh` taints it so that nothing else lands there), applied to
/// every pod of a namespace by the PodNodeSelector and
/// PodTolerationRestriction admission plugins.
const FAKE_NODE_ANNOTATIONS: [(&str, &str); 2] = [
    ("scheduler.alpha.kubernetes.io/node-selector", "type=kwok"),
    (
        "scheduler.alpha.kubernetes.io/defaultTolerations",
        r#"[{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]"#,
    ),
];

impl TestNamespace {
    /// A namespace whose pods are faked by kwok.
    pub async fn create(client: &Client, prefix: &str) -> Self {
        Self::make(client, prefix, true).await
    }

    /// A namespace whose pods run as real containers.
    pub async fn create_real(client: &Client, prefix: &str) -> Self {
        Self::make(client, prefix, false).await
    }

    async fn make(client: &Client, prefix: &str, fake_pods: bool) -> Self {
        let suffix: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(5)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        let name = format!("e2e-{prefix}-{suffix}");
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("ordershop.io/e2e".to_string(), "true".to_string())].into()),
                annotations: fake_pods.then(|| {
                    FAKE_NODE_ANNOTATIONS
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        Self {
            name,
            volumes: Vec::new(),
            fake_pods,
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var("ORDERSHOP_E2E_KEEP").is_ok_and(|v| v == "1") {
            return;
        }
        // The test's operator has stopped by now: an OrderShop still here
        // would keep its cleanup finalizer, and the namespace Terminating.
        let shops =
            crate::tools::kubectl_output(&["get", "ordershops", "-n", &self.name, "-o", "name"]);
        for shop in shops.stdout.lines().filter(|l| !l.is_empty()) {
            let _ = crate::tools::kubectl_output(&[
                "patch",
                shop,
                "-n",
                &self.name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
        }
        let _ = crate::tools::kubectl_output(&["delete", "namespace", &self.name, "--wait=false"]);
        // The test operators' Lease (see `operator::Options::for_namespace`).
        let lease = format!("e2e-{}", self.name);
        let _ = crate::tools::kubectl_output(&[
            "delete",
            "lease",
            &lease,
            "-n",
            crate::install::NAMESPACE,
            "--ignore-not-found",
            "--wait=false",
        ]);
        for pv in &self.volumes {
            let _ = crate::tools::kubectl_output(&["delete", "pv", pv, "--wait=false"]);
        }
    }
}
