//! The cluster under test, and a clear failure when there is none.

use std::time::Duration;

use kube::Client;

/// A client for the cluster `KUBECONFIG` points at, after checking that its
/// API server answers. Panics with instructions when it does not: these
/// tests never skip.
pub async fn connect() -> Client {
    let hint = "start the local control plane with `e2e/cluster.sh up && eval \"$(e2e/cluster.sh env)\"`, or point KUBECONFIG at a cluster";
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
    let client = Client::try_default().await.unwrap_or_else(|e| {
        panic!("no usable Kubernetes configuration (KUBECONFIG={kubeconfig}): {e}; {hint}")
    });
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => client,
        Ok(Err(e)) => {
            panic!("no Kubernetes API server answers (KUBECONFIG={kubeconfig}): {e}; {hint}")
        }
        Err(_) => panic!(
            "the Kubernetes API server did not answer within 10 s (KUBECONFIG={kubeconfig}); {hint}"
        ),
    }
}
