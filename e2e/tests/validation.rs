//! The API server refuses invalid OrderShops with the CRD's messages, before
//! the operator ever sees them (no operator runs in this test).

use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::tools::kubectl_output;
use ordershop_e2e::{cluster, install};

fn apply_stdin(namespace: &str, yaml: &str) -> ordershop_e2e::tools::Finished {
    let path = ordershop_e2e::work_dir().join(format!("{namespace}-invalid.yaml"));
    std::fs::write(&path, yaml).expect("writing the manifest");
    kubectl_output(&["apply", "-n", namespace, "-f", path.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_invalid_example_is_refused_with_every_rule_message() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "invalid").await;
    let path = ordershop_e2e::repo_root().join("deploy/examples/invalid-autoscaling.yaml");
    let out = kubectl_output(&["apply", "-n", &ns.name, "-f", path.to_str().unwrap()]);
    assert!(!out.success, "the API server accepted the invalid example");
    for message in [
        "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
        "replicas must not be set while autoscaling.enabled is true",
        "must not contain credentials",
    ] {
        assert!(
            out.stderr.contains(message),
            "missing {message:?} in:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_enums_and_name_length_are_enforced() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "ranges").await;
    let cases = [
        (
            "maxReplicas below its minimum",
            "metadata: {name: a}\nspec: {services: {cart: {autoscaling: {maxReplicas: 0}}}}",
            "spec.services.cart.autoscaling.maxReplicas",
        ),
        (
            "poll interval out of range",
            "metadata: {name: b}\nspec: {autoscaling: {pollIntervalMs: 5}}",
            "spec.autoscaling.pollIntervalMs",
        ),
        (
            "unknown gateway Service type",
            "metadata: {name: c}\nspec: {gateway: {serviceType: ExternalName}}",
            "spec.gateway.serviceType",
        ),
        (
            "external URL with another scheme",
            "metadata: {name: d}\nspec: {redis: {external: {url: 'http://r:6379'}}}",
            "must start with redis:// or rediss://",
        ),
        (
            "a CA for a Redis without TLS",
            "metadata: {name: e}\nspec: {redis: {external: {url: 'redis://r:6379/0', caSecretRef: {name: ca}}}}",
            "caSecretRef is the CA of a TLS Redis: the url must start with rediss://",
        ),
        (
            "a tracing collector over https",
            "metadata: {name: f}\nspec: {tracing: {otlpEndpoint: 'https://collector:4317'}}",
            "must be an http:// URL of an OTLP/gRPC collector",
        ),
        (
            "an event-id window under a minute",
            "metadata: {name: g}\nspec: {retention: {eventIdWindowSeconds: 30}}",
            "spec.retention.eventIdWindowSeconds",
        ),
        (
            "name longer than 40 characters",
            "metadata: {name: abcdefghij-abcdefghij-abcdefghij-abcdefghij}\nspec: {}",
            "metadata.name must be at most 40 characters",
        ),
    ];
    for (what, body, expected) in cases {
        let yaml = format!("apiVersion: ordershop.io/v1alpha1\nkind: OrderShop\n{body}\n");
        let out = apply_stdin(&ns.name, &yaml);
        assert!(!out.success, "{what}: accepted");
        assert!(
            out.stderr.contains(expected),
            "{what}: missing {expected:?} in:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn defaults_are_filled_in_by_the_api_server() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "defaults").await;
    let out = apply_stdin(
        &ns.name,
        "apiVersion: ordershop.io/v1alpha1\nkind: OrderShop\nmetadata: {name: d}\nspec: {}\n",
    );
    assert!(out.success, "{}", out.stderr);
    let shop = ordershop_e2e::objects::shops(&client, &ns.name)
        .get("d")
        .await
        .unwrap();
    let spec = shop.spec;
    assert_eq!(spec.image.repository, "ghcr.io/ordershop/ordershop");
    assert_eq!(spec.redis.storage.size.0, "1Gi");
    assert_eq!(spec.autoscaling.poll_interval_ms, 1000);
    assert_eq!(spec.services.inventory.autoscaling.max_replicas, 10);
    assert!(spec.network_policy.enabled);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plain_manifests_and_valid_examples_are_accepted() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "manifests").await;
    let root = ordershop_e2e::repo_root();
    // Server-side dry run: the API server validates (CRD schema, RBAC
    // objects, the client-side apply annotation size of the CRD) without
    // disturbing the chart installed by the other tests.
    let deploy = root.join("deploy");
    let out = kubectl_output(&["apply", "--dry-run=server", "-f", deploy.to_str().unwrap()]);
    assert!(
        out.success,
        "kubectl apply -f deploy/ refused:\n{}",
        out.stderr
    );
    for example in [
        "minimal.yaml",
        "production.yaml",
        "external-redis.yaml",
        "local.yaml",
    ] {
        let path = root.join("deploy/examples").join(example);
        let out = kubectl_output(&[
            "apply",
            "--dry-run=server",
            "-n",
            &ns.name,
            "-f",
            path.to_str().unwrap(),
        ]);
        assert!(out.success, "{example} refused:\n{}", out.stderr);
    }
}
