//! The committed copies of generated or versioned artifacts must match the
//! code: the CRD (deploy/ and the chart) and the operator's version in the
//! install manifests.

use std::path::PathBuf;

fn repo_file(relative: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
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
                .map_or_else(|| "length differs".to_string(), |n| format!("first difference at line {}", n + 1));
            panic!("{} drifted from the Rust types ({line}); {REGENERATE}", path.display());
        }
    }
}

#[test]
fn install_manifests_name_this_operator_version() {
    let version = env!("CARGO_PKG_VERSION");
    let (_, deployment) = repo_file("deploy/03-operator.yaml");
    assert!(
        deployment.contains(&format!("image: ghcr.io/ordershop/ordershop-operator:{version}")),
        "deploy/03-operator.yaml must run ghcr.io/ordershop/ordershop-operator:{version}"
    );
    let (_, chart) = repo_file("charts/ordershop-operator/Chart.yaml");
    assert!(
        chart.contains(&format!("appVersion: \"{version}\"")),
        "charts/ordershop-operator/Chart.yaml appVersion must be \"{version}\""
    );
}
