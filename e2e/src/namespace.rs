//! One namespace per test, deleted when the test ends.

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
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
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
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var("ORDERSHOP_E2E_KEEP").is_ok_and(|v| v == "1") {
            return;
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
