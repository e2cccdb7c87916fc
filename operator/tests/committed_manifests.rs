//! The committed copies of generated or versioned artifacts must match the
//! code: the CRD (deploy/ and the chart) and the operator's version in the
//! install manifests.

use std::path::PathBuf;

fn repo_file(relative: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

const REGENERATE: &str = "regenerate with:\n  cargo run -q -p ordershop-operator -- crdgen > deploy/01-crd.yaml\n  cp deploy/01-crd.yaml charts/ordershop-operator/crds/ordershops.ordershop.io.yaml";

#[test]
fn committed_crds_match_the_rust_types() {
    let generated = ordershop_operator::crd::crd_yaml().expect("CRD serializes");
    for relative in [
        "deploy/01-crd.yaml",
        "charts/ordershop-operator/crds/ordershops.ordershop.io.yaml",
    ] {
        let (path, committed) = repo_file(relative);
        if committed != generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or_else(
                    || "length differs".to_string(),
                    |n| format!("first difference at line {}", n + 1),
                );
            panic!(
                "{} drifted from the Rust types ({line}); {REGENERATE}",
                path.display()
            );
        }
    }
}

#[test]
fn install_manifests_name_this_operator_version() {
    let version = env!("CARGO_PKG_VERSION");
    let (_, deployment) = repo_file("deploy/03-operator.yaml");
    assert!(
        deployment.contains(&format!(
            "image: ghcr.io/ordershop/ordershop-operator:{version}"
        )),
        "deploy/03-operator.yaml must run ghcr.io/ordershop/ordershop-operator:{version}"
    );
    let (_, chart) = repo_file("charts/ordershop-operator/Chart.yaml");
    assert!(
        chart.contains(&format!("appVersion: \"{version}\"")),
        "charts/ordershop-operator/Chart.yaml appVersion must be \"{version}\""
    );
}

#[test]
fn chart_and_plain_manifests_grant_the_same_rules() {
    let (_, plain) = repo_file("deploy/02-rbac.yaml");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&plain).expect("deploy/02-rbac.yaml is YAML");
    let cluster_role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("a ClusterRole in deploy/02-rbac.yaml");
    let lease_role = docs
        .iter()
        .find(|d| d["kind"] == "Role")
        .expect("a Role in deploy/02-rbac.yaml");

    let (_, template) = repo_file("charts/ordershop-operator/templates/_rules.tpl");
    let body: String = template
        .lines()
        .skip_while(|l| !l.starts_with("{{- define"))
        .skip(1)
        .take_while(|l| !l.starts_with("{{- end"))
        .map(|l| format!("{l}\n"))
        .collect();
    let chart_rules: serde_json::Value =
        serde_saphyr::from_str(&body).expect("the chart's rules are plain YAML");
    assert_eq!(
        cluster_role["rules"], chart_rules,
        "deploy/02-rbac.yaml and charts/ordershop-operator/templates/_rules.tpl differ"
    );

    let (_, rbac_template) = repo_file("charts/ordershop-operator/templates/rbac.yaml");
    for verb in lease_role["rules"][0]["verbs"].as_array().expect("verbs") {
        assert!(
            rbac_template.contains(&format!("\"{}\"", verb.as_str().unwrap())),
            "the chart's leader-election Role lacks {verb}"
        );
    }
}

/// Least privilege where it matters most: the operator reads Secrets one by
/// one (its own and the external Redis' password), never lists or watches
/// them (that would expose every Secret in scope), and never deletes them
/// (garbage collection does). No wildcard anywhere.
#[test]
fn secrets_are_only_read_created_and_patched() {
    let (_, plain) = repo_file("deploy/02-rbac.yaml");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&plain).expect("deploy/02-rbac.yaml is YAML");
    let mut secret_verbs = Vec::new();
    for role in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for rule in role["rules"].as_array().expect("rules") {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .unwrap_or_else(|| panic!("{key} in {rule}"))
                    .iter()
                    .map(|v| v.as_str().expect("a string").to_string())
                    .collect()
            };
            let (resources, verbs) = (strings("resources"), strings("verbs"));
            assert!(
                !resources.contains(&"*".to_string()) && !verbs.contains(&"*".to_string()),
                "wildcard in {rule}"
            );
            if resources.iter().any(|r| r == "secrets") {
                assert_eq!(resources, ["secrets"], "Secrets share a rule: {rule}");
                secret_verbs.extend(verbs);
            }
        }
    }
    assert_eq!(secret_verbs, ["get", "create", "patch"]);
}
