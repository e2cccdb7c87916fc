//! Support for the scenarios on real containers: the images under test, the
//! operator installed in the cluster from its image, a port-forward that
//! survives the pod behind it, pods' restarts and memory, and containers
//! frozen on the node.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::tools::{helm, kubectl};

/// The images a real-pod run uses. Defaults are what `e2e/cluster.sh
/// images` imports into the local node; kind's workflow sets the variables
/// to the images it loaded.
#[derive(Debug, Clone)]
pub struct Images {
    /// `ORDERSHOP_E2E_IMAGE`: every OrderShop role.
    pub services: String,
    /// `ORDERSHOP_E2E_OPERATOR_IMAGE`.
    pub operator: String,
    /// `ORDERSHOP_E2E_REDIS_IMAGE`: the managed Redis.
    pub redis: String,
}

impl Images {
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Self {
            services: var("ORDERSHOP_E2E_IMAGE", "localhost/ordershop:dev"),
            operator: var(
                "ORDERSHOP_E2E_OPERATOR_IMAGE",
                "localhost/ordershop-operator:dev",
            ),
            redis: var("ORDERSHOP_E2E_REDIS_IMAGE", "localhost/redis:dev"),
        }
    }
}

/// `repository:tag` split at the tag's colon (a registry port stays in the
/// repository).
pub fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => panic!("image {image:?} has no tag"),
    }
}

/// Fails with a clear message unless some schedulable node runs real
/// containers (the local cluster's node or kind's), so that a cluster with
/// fake nodes only never passes for one that runs the product.
pub async fn require_real_node(client: &Client) -> String {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("listing nodes");
    let real = nodes.items.iter().find(|node| {
        let fake = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get("type").is_some_and(|t| t == "kwok"));
        let runtime = node
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.container_runtime_version.as_str())
            .unwrap_or_default();
        !fake && !runtime.is_empty() && !runtime.starts_with("kwok")
    });
    match real {
        Some(node) => node.metadata.name.clone().unwrap_or_default(),
        None => panic!(
            "no node that runs containers: these scenarios need one (`e2e/cluster.sh up` gives the local cluster a real node; kind has one)"
        ),
    }
}

/// The operator chart installed with its operator running in the cluster.
#[derive(Debug)]
pub struct InClusterOperator {
    pub release: String,
    pub namespace: String,
    pub watch_namespace: String,
}

impl InClusterOperator {
    /// `helm upgrade --install` of the chart as a release of its own,
    /// reconciling only `watch_namespace`, with `extra` `--set` values.
    pub fn install(
        release: &str,
        namespace: &str,
        watch_namespace: &str,
        images: &Images,
        extra: &[&str],
    ) -> Self {
        let operator = Self {
            release: release.into(),
            namespace: namespace.into(),
            watch_namespace: watch_namespace.into(),
        };
        operator.upgrade(images, extra);
        operator
    }

    /// `helm upgrade` of the release with `extra` `--set` values (the
    /// others as at install).
    pub fn upgrade(&self, images: &Images, extra: &[&str]) {
        let chart = crate::repo_root().join("charts/ordershop-operator");
        let (repository, tag) = split_image(&images.operator);
        let (_, service_tag) = split_image(&images.services);
        let mut sets = vec![
            format!("image.repository={repository}"),
            format!("image.tag={tag}"),
            // Loaded into the node, never pulled.
            "image.pullPolicy=Never".to_string(),
            format!("defaultServiceImageTag={service_tag}"),
            format!("watchNamespace={}", self.watch_namespace),
            "logFormat=text".to_string(),
        ];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let mut args = vec![
            "upgrade".to_string(),
            "--install".into(),
            self.release.clone(),
            chart.to_str().expect("UTF-8 path").into(),
            "--namespace".into(),
            self.namespace.clone(),
            "--create-namespace".into(),
            "--wait".into(),
            "--timeout".into(),
            "5m".into(),
        ];
        for set in sets {
            args.push("--set".into());
            args.push(set);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        helm(&args);
    }

    /// Who holds the operator's Lease (the chart names it after the release).
    pub async fn leader(&self, client: &Client) -> Option<String> {
        Api::<Lease>::namespaced(client.clone(), &self.namespace)
            .get_opt(&self.release)
            .await
            .ok()
            .flatten()?
            .spec?
            .holder_identity
    }

    /// Removes the release (its cluster-scoped RBAC too) and its namespace;
    /// also when the test fails, on drop.
    fn uninstall(&self) {
        let _ = crate::tools::helm_output(&[
            "uninstall",
            &self.release,
            "--namespace",
            &self.namespace,
            "--ignore-not-found",
        ]);
        let _ =
            crate::tools::kubectl_output(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

impl Drop for InClusterOperator {
    fn drop(&mut self) {
        if std::env::var("ORDERSHOP_E2E_KEEP").is_ok_and(|v| v == "1") {
            return;
        }
        self.uninstall();
    }
}

/// `kubectl port-forward` to a Service, restarted whenever it exits (it
/// does when the pod it picked goes away), always on the same local port.
#[derive(Debug)]
pub struct PortForward {
    pub local_port: u16,
    stop: Arc<AtomicBool>,
    keeper: Option<JoinHandle<()>>,
}

impl PortForward {
    pub fn service(namespace: &str, service: &str, port: u16) -> Self {
        let local_port = ordershop_testkit::free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let target = format!("svc/{service}");
        let ports = format!("{local_port}:{port}");
        let namespace = namespace.to_string();
        let flag = stop.clone();
        let keeper = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let spawned: std::io::Result<Child> = Command::new("kubectl")
                    .args([
                        "port-forward",
                        "--address",
                        "127.0.0.1",
                        "-n",
                        &namespace,
                        &target,
                        &ports,
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                let Ok(mut child) = spawned else {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                };
                while !flag.load(Ordering::SeqCst) {
                    if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = child.kill();
                let _ = child.wait();
                if !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        Self {
            local_port,
            stop,
            keeper: Some(keeper),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.local_port)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

/// Pods of `namespace` matching `selector`.
pub async fn pods(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap_or_else(|e| panic!("listing pods {selector} in {namespace}: {e}"))
        .items
}

/// Container restarts per pod name.
pub async fn restarts(client: &Client, namespace: &str) -> BTreeMap<String, i32> {
    pods(client, namespace, "")
        .await
        .into_iter()
        .map(|pod| {
            let restarts = pod
                .status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default()
                .iter()
                .map(|c| c.restart_count)
                .sum();
            (pod.metadata.name.unwrap_or_default(), restarts)
        })
        .collect()
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        && pod.metadata.deletion_timestamp.is_none()
}

/// Deletes a pod at once, without a grace period: the container gets
/// SIGKILL, as in a crash.
pub async fn kill_pod(client: &Client, namespace: &str, name: &str) {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("deleting pod {name}: {e}"));
}

/// Working-set memory per pod in `namespace`, in MiB, from the kubelet's
/// summary API (through the API server).
pub fn pod_memory_mib(node: &str, namespace: &str) -> BTreeMap<String, f64> {
    let raw = kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
    ]);
    let summary: Value = serde_json::from_str(&raw).expect("the kubelet's summary is JSON");
    summary["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["podRef"]["namespace"] == namespace)
        .filter_map(|p| {
            let name = p["podRef"]["name"].as_str()?.to_string();
            // A container the kubelet has not sampled yet reports nothing
            // or 0: left out rather than shown as free.
            let bytes = p["memory"]["workingSetBytes"]
                .as_f64()
                .filter(|b| *b > 0.0)?;
            Some((name, bytes / 1024.0 / 1024.0))
        })
        .collect()
}

/// The node's container runtime CLI, from `ORDERSHOP_NODE_CTR`: containerd's
/// `ctr` with whatever reaches the node's socket (`e2e/cluster.sh env` sets
/// it for the local node; kind's workflow sets `docker exec <node> ctr`).
fn node_ctr() -> Vec<String> {
    let ctr = std::env::var("ORDERSHOP_NODE_CTR").unwrap_or_default();
    let words: Vec<String> = ctr.split_whitespace().map(str::to_owned).collect();
    assert!(
        !words.is_empty(),
        "freezing a container needs ORDERSHOP_NODE_CTR, the node's `ctr` command \
         (eval \"$(e2e/cluster.sh env)\" sets it; on kind: `docker exec <node> ctr`)"
    );
    words
}

fn ctr_task(action: &str, container_id: &str) -> Result<(), String> {
    let mut words = node_ctr();
    let program = words.remove(0);
    let output = Command::new(&program)
        .args(&words)
        .args(["--namespace", "k8s.io", "tasks", action, container_id])
        .output()
        .map_err(|e| format!("cannot run `{program}` (ORDERSHOP_NODE_CTR): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ctr tasks {action} {container_id} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A pod's first container, frozen (cgroup freezer) until this is dropped:
/// a consumer that holds its work but makes no progress, so a backlog
/// builds however fast the consumer would have drained it. Thawed on drop,
/// panics included, well before the liveness probe would restart it.
#[derive(Debug)]
pub struct Frozen {
    container_id: String,
}

impl Frozen {
    pub fn pod(pod: &Pod) -> Self {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let container_id = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|statuses| statuses.first())
            .and_then(|c| c.container_id.as_deref())
            .and_then(|id| id.strip_prefix("containerd://"))
            .unwrap_or_else(|| panic!("pod {name} has no running containerd container"))
            .to_owned();
        ctr_task("pause", &container_id).unwrap_or_else(|e| panic!("freezing pod {name}: {e}"));
        Self { container_id }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // No panic here: this may run while a failed test unwinds.
        if let Err(e) = ctr_task("resume", &self.container_id) {
            eprintln!("[real-pods] cannot thaw a frozen container: {e}");
        }
    }
}
