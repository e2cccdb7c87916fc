//! A kubeconfig that authenticates as a ServiceAccount, so the operator under
//! test has exactly the permissions the chart grants it.

use std::path::PathBuf;

use serde_json::Value;

use crate::tools::kubectl;

/// Requests a token for `namespace/name` (TokenRequest API) and writes a
/// kubeconfig for the current cluster that uses it.
pub fn service_account_kubeconfig(namespace: &str, name: &str) -> PathBuf {
    let token = kubectl(&["create", "token", name, "-n", namespace, "--duration=4h"]);
    let config: Value = serde_json::from_str(&kubectl(&[
        "config", "view", "--minify", "--raw", "-o", "json",
    ]))
    .expect("kubectl config view prints JSON");
    let cluster = &config["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .expect("the current context names a server");
    let mut cluster_entry = serde_json::json!({ "server": server });
    if let Some(ca) = cluster["certificate-authority-data"].as_str() {
        cluster_entry["certificate-authority-data"] = ca.into();
    } else if let Some(ca) = cluster["certificate-authority"].as_str() {
        cluster_entry["certificate-authority"] = ca.into();
    } else if cluster["insecure-skip-tls-verify"].as_bool() == Some(true) {
        cluster_entry["insecure-skip-tls-verify"] = true.into();
    }
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "e2e", "cluster": cluster_entry }],
        "users": [{ "name": name, "user": { "token": token.trim() } }],
        "contexts": [{ "name": "operator", "context": {
            "cluster": "e2e", "user": name, "namespace": namespace } }],
        "current-context": "operator",
    });
    let path = crate::work_dir().join(format!("operator-kubeconfig-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(&kubeconfig).expect("JSON"))
        .expect("writing the operator kubeconfig");
    path
}
