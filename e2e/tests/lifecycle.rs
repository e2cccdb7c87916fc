//! The life of an OrderShop: apply an example, children and status, Events,
//! printer columns, spec edits, reverted hand edits, stop, delete and GC.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::objects::{
    self, apply_example, condition_true, expected_children, missing_or_unowned, replicas_managers,
    shops, still_present,
};
use ordershop_e2e::operator::{Operator, Options};
use ordershop_e2e::tools::kubectl;
use ordershop_e2e::{cluster, eventually_async, install, volumes};
use ordershop_operator::crd::OrderShop;
use serde_json::json;

/// Generous for a loaded 2-core machine; kwok makes pods Ready in about a second.
const READY_WITHIN: Duration = Duration::from_secs(90);
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

async fn wait_ready(client: &Client, ns: &str, name: &str) -> OrderShop {
    let api = shops(client, ns);
    eventually_async(
        &format!("OrderShop {ns}/{name} Ready"),
        READY_WITHIN,
        || {
            let api = api.clone();
            async move {
                let shop = api.get(name).await.ok()?;
                condition_true(&shop, "Ready").then_some(shop)
            }
        },
    )
    .await
}

async fn deployment_replicas(client: &Client, ns: &str, name: &str) -> Option<i32> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    d.spec?.replicas
}

async fn event_reasons(client: &Client, ns: &str, shop: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(shop))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn minimal_example_lifecycle() {
    let client = cluster::connect().await;
    install::chart();
    let mut ns = TestNamespace::create(&client, "minimal").await;
    volumes::provide_redis_volume(&client, &mut ns, "shop", "1Gi").await;
    let _operator = Operator::start(Options::for_namespace(&ns.name));
    let n = ns.name.as_str();

    // Apply the example the documented way; children appear, all owned.
    apply_example(n, "minimal.yaml");
    let shop = wait_ready(&client, n, "shop").await;
    let uid = shop.uid().expect("uid");
    let expected = expected_children("shop", true, false);
    let problems = missing_or_unowned(&client, n, &uid, &expected).await;
    assert!(problems.is_empty(), "children: {problems:?}");
    let status = shop.status.clone().expect("status");
    assert_eq!(status.services_ready.as_deref(), Some("13/13"));
    assert_eq!(status.services.len(), 13);
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == shop.metadata.generation)
    );

    // Events: one per created child, and Ready.
    let reasons = event_reasons(&client, n, "shop").await;
    assert!(
        reasons.iter().filter(|r| *r == "Created").count() >= expected.len(),
        "expected a Created Event per child, got {reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "Ready"),
        "no Ready Event in {reasons:?}"
    );

    // `kubectl get ordershops` shows the printer columns.
    let table = kubectl(&["get", "ordershops", "-n", n]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "SERVICES", "BACKLOG", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["shop", "True", "13/13"], "{table}");
    // The short name works too.
    assert!(kubectl(&["get", "shop", "-n", n]).contains("13/13"));

    // Editing the spec updates the children.
    shops(&client, n)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"customer": {
                "replicas": 2,
                "env": [{"name": "E2E_MARKER", "value": "edited"}]
            }}}})),
        )
        .await
        .expect("patching the spec");
    let deployments = Api::<Deployment>::namespaced(client.clone(), n);
    eventually_async(
        "customer Deployment follows the spec",
        CONVERGE_WITHIN,
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("shop-customer").await.ok()?;
                let spec = d.spec.as_ref()?;
                let env = spec.template.spec.as_ref()?.containers[0].env.clone()?;
                (spec.replicas == Some(2) && env.iter().any(|e| e.name == "E2E_MARKER"))
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        replicas_managers(&deployments.get("shop-customer").await.unwrap()),
        ["ordershop-operator"],
        "the reconcile owns replicas of a role without autoscaling"
    );

    // A hand edit of an owned field is reverted: scale and image.
    kubectl(&["scale", "deployment/shop-customer", "--replicas=5", "-n", n]);
    deployments
        .patch(
            "shop-cart",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "ordershop", "image": "example.invalid/hand-edited:1"}
            ]}}}})),
        )
        .await
        .expect("hand-editing the cart image");
    eventually_async("hand edits reverted", CONVERGE_WITHIN, || {
        let deployments = deployments.clone();
        let client = client.clone();
        async move {
            let replicas = deployment_replicas(&client, n, "shop-customer").await?;
            let cart = deployments.get("shop-cart").await.ok()?;
            let image = cart.spec?.template.spec?.containers[0].image.clone()?;
            (replicas == 2 && image.starts_with("ghcr.io/ordershop/ordershop:")).then_some(())
        }
    })
    .await;

    // `stopped` scales everything to zero and keeps the data.
    shops(&client, n)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"stopped": true}})),
        )
        .await
        .expect("stopping");
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), n);
    eventually_async("every workload at zero", CONVERGE_WITHIN, || {
        let deployments = deployments.clone();
        let statefulsets = statefulsets.clone();
        async move {
            let all = deployments.list(&ListParams::default()).await.ok()?;
            let zero = all
                .items
                .iter()
                .all(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(0));
            let redis = statefulsets.get("shop-redis").await.ok()?;
            (zero && all.items.len() == 13 && redis.spec?.replicas == Some(0)).then_some(())
        }
    })
    .await;
    let stopped = eventually_async("Ready=False/Stopped", CONVERGE_WITHIN, || {
        let api = shops(&client, n);
        async move {
            let shop = api.get("shop").await.ok()?;
            let status = shop.status.clone()?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (status.observed_generation == shop.metadata.generation && ready.reason == "Stopped")
                .then_some(ready.status.clone())
        }
    })
    .await;
    assert_eq!(stopped, "False");
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), n);
    assert!(
        claims.get_opt("data-shop-redis-0").await.unwrap().is_some(),
        "stopped keeps the Redis volume"
    );

    // Starting again restores the replicas and readiness.
    shops(&client, n)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"stopped": false}})),
        )
        .await
        .expect("starting");
    wait_ready(&client, n, "shop").await;
    assert_eq!(
        deployment_replicas(&client, n, "shop-customer").await,
        Some(2)
    );

    // Deleting the OrderShop garbage-collects every child; the volume stays
    // (retainOnDelete defaults to true).
    shops(&client, n)
        .delete("shop", &Default::default())
        .await
        .expect("deleting the OrderShop");
    eventually_async(
        "children garbage-collected",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let expected = expected.clone();
            async move {
                still_present(&client, n, &expected)
                    .await
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(claims.get_opt("data-shop-redis-0").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn external_redis_example_leaves_autoscaled_replicas_to_the_autoscaler() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "external").await;
    let _operator = Operator::start(Options::for_namespace(&ns.name));
    let n = ns.name.as_str();

    apply_example(n, "external-redis.yaml");
    let shop = wait_ready(&client, n, "shop-ext").await;
    let uid = shop.uid().expect("uid");
    let problems = missing_or_unowned(
        &client,
        n,
        &uid,
        &expected_children("shop-ext", false, false),
    )
    .await;
    assert!(problems.is_empty(), "children: {problems:?}");
    assert!(
        Api::<StatefulSet>::namespaced(client.clone(), n)
            .get_opt("shop-ext-redis")
            .await
            .unwrap()
            .is_none(),
        "no managed Redis in external mode"
    );
    let redis = shop.status.unwrap().redis.unwrap();
    assert_eq!(redis.endpoint, "redis.example.internal:6379");

    // The Redis clients get the URL, and the password from the Secret apart.
    let deployments = Api::<Deployment>::namespaced(client.clone(), n);
    let store = deployments.get("shop-ext-event-store").await.unwrap();
    let env = store.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let url = env
        .iter()
        .find(|e| e.name == "ORDERSHOP_REDIS_URL")
        .unwrap();
    assert_eq!(
        url.value.as_deref(),
        Some("redis://redis.example.internal:6379/0")
    );
    let password = env
        .iter()
        .find(|e| e.name == "ORDERSHOP_REDIS_PASSWORD")
        .unwrap();
    let secret = password
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("shop-external-redis", "password")
    );

    // inventory autoscales: the reconcile does not own its replicas, so a
    // scale by someone else (the autoscaler's field manager) stays.
    let inventory = deployments.get("shop-ext-inventory").await.unwrap();
    assert!(
        !replicas_managers(&inventory).contains(&"ordershop-operator".to_string()),
        "the reconcile must not own replicas of an autoscaled role: {:?}",
        replicas_managers(&inventory)
    );
    deployments
        .patch_scale(
            "shop-ext-inventory",
            &PatchParams::apply(ordershop_operator::autoscale::AUTOSCALER_FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "spec": {"replicas": 3}
            })),
        )
        .await
        .expect("scaling like the autoscaler");
    // Touch the spec so a reconcile certainly runs after the scale.
    shops(&client, n)
        .patch(
            "shop-ext",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"log": {"filter": "debug"}}})),
        )
        .await
        .unwrap();
    eventually_async("the spec edit is reconciled", CONVERGE_WITHIN, || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("shop-ext-inventory").await.ok()?;
            let env = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                .env
                .clone()?;
            env.iter()
                .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug"))
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        deployment_replicas(&client, n, "shop-ext-inventory").await,
        Some(3)
    );
    assert_eq!(
        replicas_managers(&deployments.get("shop-ext-inventory").await.unwrap()),
        ["ordershop-autoscaler"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn production_example_and_pruning_of_removed_children() {
    let client = cluster::connect().await;
    install::chart();
    let mut ns = TestNamespace::create(&client, "production").await;
    volumes::provide_redis_volume(&client, &mut ns, "shop-prod", "10Gi").await;
    let _operator = Operator::start(Options::for_namespace(&ns.name));
    let n = ns.name.as_str();

    apply_example(n, "production.yaml");
    let shop = wait_ready(&client, n, "shop-prod").await;
    let uid = shop.uid().expect("uid");
    let problems = missing_or_unowned(
        &client,
        n,
        &uid,
        &expected_children("shop-prod", true, true),
    )
    .await;
    assert!(problems.is_empty(), "children: {problems:?}");
    assert_eq!(
        deployment_replicas(&client, n, "shop-prod-api-gateway").await,
        Some(3)
    );
    let ingress = Api::<Ingress>::namespaced(client.clone(), n)
        .get("shop-prod-gateway")
        .await
        .unwrap();
    let spec = ingress.spec.unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        spec.rules.unwrap()[0].host.as_deref(),
        Some("shop.example.com")
    );
    let status = shop.status.unwrap();
    let autoscaled: Vec<&str> = status
        .services
        .iter()
        .filter(|s| s.autoscaled == Some(true))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(autoscaled, ["inventory", "order", "mail"]);

    // Removing the Ingress and the NetworkPolicy from the spec deletes them.
    shops(&client, n)
        .patch(
            "shop-prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"gateway": {"ingress": null}, "networkPolicy": {"enabled": false}}})),
        )
        .await
        .unwrap();
    let gone = [
        objects::Expected {
            kind: "Ingress",
            name: "shop-prod-gateway".into(),
        },
        objects::Expected {
            kind: "NetworkPolicy",
            name: "shop-prod-redis".into(),
        },
    ];
    eventually_async("Ingress and NetworkPolicy pruned", CONVERGE_WITHIN, || {
        let client = client.clone();
        let gone = gone.clone();
        async move {
            still_present(&client, n, &gone)
                .await
                .is_empty()
                .then_some(())
        }
    })
    .await;
    // The Event follows the deletion: poll for it.
    eventually_async("a Deleted Event", CONVERGE_WITHIN, || {
        let client = client.clone();
        async move {
            let reasons = event_reasons(&client, n, "shop-prod").await;
            reasons.iter().any(|r| r == "Deleted").then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_degrades_with_a_warning_and_recovers() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "degraded").await;
    let _operator = Operator::start(Options::for_namespace(&ns.name));
    let n = ns.name.as_str();

    // The example's OrderShop without its Secret.
    let shop: OrderShop = serde_json::from_value(json!({
        "apiVersion": "ordershop.io/v1alpha1", "kind": "OrderShop",
        "metadata": {"name": "shop"},
        "spec": {"redis": {"external": {
            "url": "redis://redis.example.internal:6379/0",
            "passwordSecretRef": {"name": "late-secret"}
        }}}
    }))
    .unwrap();
    shops(&client, n)
        .create(&Default::default(), &shop)
        .await
        .unwrap();
    let message = eventually_async("Degraded=True", CONVERGE_WITHIN, || {
        let api = shops(&client, n);
        async move {
            let shop = api.get("shop").await.ok()?;
            let status = shop.status?;
            let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded")?;
            (degraded.status == "True").then(|| degraded.message.clone())
        }
    })
    .await;
    assert!(message.contains("late-secret"), "{message}");
    eventually_async("a ReconcileFailed Warning Event", CONVERGE_WITHIN, || {
        let client = client.clone();
        async move {
            let reasons = event_reasons(&client, n, "shop").await;
            reasons.iter().any(|r| r == "ReconcileFailed").then_some(())
        }
    })
    .await;

    kubectl(&[
        "create",
        "secret",
        "generic",
        "late-secret",
        "-n",
        n,
        "--from-literal=password=pw",
    ]);
    // Retried with backoff (1 s, 2 s, 4 s, ...): recovers without any spec change.
    wait_ready(&client, n, "shop").await;
    eventually_async("a Recovered Event", CONVERGE_WITHIN, || {
        let client = client.clone();
        async move {
            let reasons = event_reasons(&client, n, "shop").await;
            reasons.iter().any(|r| r == "Recovered").then_some(())
        }
    })
    .await;
}
