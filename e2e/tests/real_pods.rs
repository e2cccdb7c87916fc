//! The product loop on real containers: the operator installed by helm runs
//! in the cluster from its image, an OrderShop of real pods serves the
//! reference client's flows through its gateway Service, consumers scale on
//! a real backlog that their new pods drain, pods and Redis are killed
//! mid-flow, and deleting the OrderShop removes its children.
//!
//! Needs a node that runs containers and the images under test loaded into
//! it: `e2e/cluster.sh up && e2e/cluster.sh images` here (defaults
//! `localhost/*:dev`), kind in GitHub Actions (`ORDERSHOP_E2E_IMAGE`,
//! `ORDERSHOP_E2E_OPERATOR_IMAGE`, `ORDERSHOP_E2E_REDIS_IMAGE`). The times
//! and memory it measures go to `target/e2e/real-pods.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::objects::{condition_true, expected_children, shops, still_present};
use ordershop_e2e::real::{self, Images, InClusterOperator, PortForward};
use ordershop_e2e::tools::{kubectl, kubectl_output};
use ordershop_e2e::{cluster, eventually_async};
use ordershop_operator::crd::{OrderShop, OrderShopSpec};
use ordershop_operator::names::{LABEL_COMPONENT, Names};
use ordershop_testkit::ShopApi;
use ordershop_topology::Role;
use serde_json::{Value, json};

const SHOP: &str = "shop";
/// Real pods on a shared 2-core machine: starts and recoveries take a while.
const SLOW: Duration = Duration::from_secs(240);

/// Times and memory, written as Markdown at the end.
#[derive(Default)]
struct Measured {
    times: Vec<(String, Duration)>,
    notes: Vec<String>,
}

impl Measured {
    fn time(&mut self, what: &str, took: Duration) {
        eprintln!("[real-pods] {what}: {took:.1?}");
        self.times.push((what.into(), took));
    }

    fn write(&self, memory: &[(String, BTreeMap<String, f64>)]) {
        let mut out = String::from("# Real-pod run\n\n| step | time |\n|---|---:|\n");
        for (what, took) in &self.times {
            let _ = writeln!(out, "| {what} | {:.1} s |", took.as_secs_f64());
        }
        for (label, pods) in memory {
            let _ = writeln!(
                out,
                "\n## Memory (working set, MiB): {label}\n\n| pod | MiB |\n|---|---:|"
            );
            for (pod, mib) in pods {
                let _ = writeln!(out, "| {pod} | {mib:.1} |");
            }
            let total: f64 = pods.values().sum();
            let _ = writeln!(out, "| **total** | {total:.1} |");
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        let path = ordershop_e2e::work_dir().join("real-pods.md");
        std::fs::write(&path, &out).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("{out}");
    }
}

fn shop_spec(images: &Images) -> OrderShopSpec {
    let (repository, tag) = real::split_image(&images.services);
    // Consumers the scaling step bursts: the CRM saga (customer events) and
    // the mail service (its queue). Short windows keep the test short.
    let autoscaled = json!({
        "autoscaling": {
            "enabled": true, "minReplicas": 1, "maxReplicas": 3,
            "targetBacklogPerReplica": 100,
            "scaleDownStabilizationSeconds": 20, "scaleDownIntervalSeconds": 5
        }
    });
    serde_json::from_value(json!({
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "redis": {
            "image": images.redis,
            "storage": {"size": "256Mi"},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
        },
        "autoscaling": {"pollIntervalMs": 500},
        "services": {"crm": autoscaled, "mail": autoscaled},
        "log": {"format": "text"}
    }))
    .expect("a valid OrderShop spec")
}

async fn deployment_replicas(client: &Client, ns: &str, role: Role) -> (i32, i32) {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(&Names::new(SHOP).service(role))
        .await
        .expect("reading a Deployment");
    let spec = d.spec.and_then(|s| s.replicas).unwrap_or(1);
    let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
    (spec, ready)
}

async fn shop_ready(api: &Api<OrderShop>) -> bool {
    api.get(SHOP)
        .await
        .is_ok_and(|s| condition_true(&s, "Ready"))
}

/// The last lines of a log file, for a failure message.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} (last 40 lines):\n{}",
        path.display(),
        lines[lines.len().saturating_sub(40)..].join("\n")
    )
}

fn loadgen_binary() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ordershop_e2e::repo_root().join("target"));
    let path = target.join("debug/ordershop-loadgen");
    assert!(
        path.is_file(),
        "{} not found: run `cargo build -p ordershop-loadgen` first",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_product_loop_on_real_pods() {
    let client = cluster::connect().await;
    let node = real::require_real_node(&client).await;
    let images = Images::from_env();
    let ns = TestNamespace::create_real(&client, "real").await;
    let mut measured = Measured::default();
    let mut memory = Vec::new();

    // 1. The operator in the cluster from its image: two replicas, one leads.
    let release = format!("ordershop-operator-{}", &ns.name[ns.name.len() - 5..]);
    let operator_ns = format!("{}-system", ns.name);
    let started = Instant::now();
    let operator = InClusterOperator::install(
        &release,
        &operator_ns,
        &ns.name,
        &images,
        // The chart's Lease (15 s, renewed 5 s ahead): shorter ones flap
        // on a busy 2-core machine.
        &[],
    );
    let first_leader = eventually_async("an operator replica to lead", SLOW, || {
        let operator = &operator;
        let client = &client;
        async move { operator.leader(client).await }
    })
    .await;
    measured.time("helm install → operator Ready, leading", started.elapsed());

    // 2. An OrderShop of the local images → every pod Ready, Redis on a
    // dynamically provisioned volume.
    let api = shops(&client, &ns.name);
    let started = Instant::now();
    api.create(
        &PostParams::default(),
        &OrderShop::new(SHOP, shop_spec(&images)),
    )
    .await
    .expect("creating the OrderShop");
    kubectl(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Ready",
        &format!("ordershop/{SHOP}"),
        "--timeout=300s",
    ]);
    measured.time(
        "kubectl apply → OrderShop Ready (14 Deployments, Redis)",
        started.elapsed(),
    );
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns.name)
        .get(&format!("data-{SHOP}-redis-0"))
        .await
        .expect("the Redis claim");
    assert_eq!(
        pvc.status.and_then(|s| s.phase).as_deref(),
        Some("Bound"),
        "the Redis volume is bound"
    );
    assert!(
        pvc.spec.and_then(|s| s.volume_name).is_some(),
        "the Redis claim got a volume"
    );
    let all_pods = real::pods(&client, &ns.name, "").await;
    assert!(
        all_pods
            .iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())),
        "every pod runs on the real node {node}"
    );
    memory.push(("idle".to_string(), real::pod_memory_mib(&node, &ns.name)));

    // 3. The reference client's flows through the gateway's Service.
    let forward = PortForward::service(&ns.name, &Names::new(SHOP).service(Role::ApiGateway), 80);
    let shop = ShopApi::new(forward.url()).with_deadline(Duration::from_secs(90));
    shop.wait_ready(Duration::from_secs(60)).await;
    let started = Instant::now();
    ordershop_testkit::scenarios::reference_flows(&shop).await;
    measured.time("the reference client's ten flows", started.elapsed());
    memory.push((
        "after the flows".to_string(),
        real::pod_memory_mib(&node, &ns.name),
    ));

    // 4. Backlog scaling, closed loop.
    scale_on_a_burst(&client, &ns.name, &shop, &mut measured).await;

    // 5. Faults.
    kill_pods_mid_flow(&client, &ns.name, &forward, &mut measured).await;
    redis_pod_deleted_keeps_acknowledged_data(&client, &ns.name, &shop, &mut measured).await;
    redis_unresponsive_causes_no_restart_storm(&client, &ns.name, &shop, &mut measured).await;

    // 6. The operator: leader handover, upgrade, admission, deletion.
    leader_handover(&client, &operator, &first_leader, &mut measured).await;
    helm_upgrade_keeps_the_shop(&client, &operator, &ns.name, &images, &api, &mut measured).await;
    invalid_shop_is_refused(&ns.name);
    drop(forward);
    deleting_the_shop_removes_its_children(&client, &ns.name, &api, &mut measured).await;

    drop(operator);
    measured.write(&memory);
}

/// 1,500 new customers at once: 1,500 customer events for the CRM saga and
/// as many welcome mails queued for the mail service. Both scale up, their
/// new pods drain the backlog, every customer gets exactly one mail, and
/// both scale back in after the window.
///
/// The CRM's pods are frozen while the burst is created and until the operator
/// scales: a CRM that drains 1,500 events between two polls leaves no lag
/// to see (it did, once in four runs), and the scenario is about what the
/// operator does with a backlog, not about how fast one CRM pod is.
async fn scale_on_a_burst(client: &Client, ns: &str, shop: &ShopApi, measured: &mut Measured) {
    const BURST: usize = 1500;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let crm_selector = format!("{LABEL_COMPONENT}={}", Role::Crm.slug());
    let frozen: Vec<real::Frozen> = real::pods(client, ns, &crm_selector)
        .await
        .iter()
        .filter(|p| real::pod_ready(p))
        .map(real::Frozen::pod)
        .collect();
    assert!(!frozen.is_empty(), "a Ready CRM pod before the burst");
    let burst_started = Instant::now();
    for chunk in 0..(BURST / 500) {
        let customers: Vec<Value> = (0..500)
            .map(|i| json!({"name": format!("burst {i}"), "email": format!("b{chunk}-{i}-{tag}@example.com")}))
            .collect();
        let ids = shop.create("customer", Value::Array(customers)).await;
        assert_eq!(ids.len(), 500);
    }
    let scaled = eventually_async("the CRM to scale up on its backlog", SLOW, || async {
        let (spec, _) = deployment_replicas(client, ns, Role::Crm).await;
        (spec > 1).then_some(spec)
    })
    .await;
    drop(frozen);
    measured.time(
        &format!("burst of {BURST} customers → CRM scaled to {scaled}"),
        burst_started.elapsed(),
    );
    let ready = eventually_async("the new CRM pods to be Ready", SLOW, || async {
        let (spec, ready) = deployment_replicas(client, ns, Role::Crm).await;
        (ready > 1 && ready == spec).then_some(ready)
    })
    .await;
    measured.time(
        &format!("… {ready} CRM pods Ready"),
        burst_started.elapsed(),
    );
    let count_mails = || async {
        let mails = shop.get("/mails/sent").await;
        mails
            .as_array()
            .expect("a list of mails")
            .iter()
            .filter(|m| {
                let data: Value = serde_json::from_str(m[1]["event_data"].as_str().unwrap_or("{}"))
                    .unwrap_or_default();
                data["recipient"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&format!("-{tag}@example.com")))
            })
            .count()
    };
    eventually_async("every welcome mail of the burst", SLOW, || async {
        (count_mails().await >= BURST).then_some(())
    })
    .await;
    measured.time(
        "… backlog drained (every welcome mail sent)",
        burst_started.elapsed(),
    );
    assert_eq!(
        count_mails().await,
        BURST,
        "exactly one welcome mail per customer"
    );
    let started = Instant::now();
    for role in [Role::Crm, Role::Mail] {
        eventually_async(
            &format!("{} to scale back in to 1", role.slug()),
            SLOW,
            || async {
                let (spec, ready) = deployment_replicas(client, ns, role).await;
                (spec == 1 && ready == 1).then_some(())
            },
        )
        .await;
    }
    measured.time(
        "drained → scaled back in to 1 (20 s window)",
        started.elapsed(),
    );
    assert_eq!(
        count_mails().await,
        BURST,
        "no mail sent twice while scaling in"
    );
}

/// While the load generator runs flows through the gateway, one pod of
/// every role but the gateway is killed (SIGKILL, no grace); every flow
/// completes, none fails, and the stock is exact.
async fn kill_pods_mid_flow(
    client: &Client,
    ns: &str,
    forward: &PortForward,
    measured: &mut Measured,
) {
    let loadgen_log = ordershop_e2e::work_dir().join("real-pods-loadgen.log");
    let loadgen = Command::new(loadgen_binary())
        .args([
            "--url",
            &forward.url(),
            "--clients",
            "2",
            "--duration",
            "120s",
        ])
        .args([
            "--wait-timeout",
            "120s",
            "--poll-interval",
            "50ms",
            "--settle",
            "60s",
            // A client of a shop whose parts restart retries with an
            // idempotency key; no try may apply twice (the stock check).
            "--retry-for",
            "120s",
        ])
        .args(["--products", "20", "--customers", "10", "--pause", "0s"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&loadgen_log).expect("creating the load generator's log"))
        .spawn()
        .expect("starting the load generator");
    let started = Instant::now();
    let names = Names::new(SHOP);
    // The gateway is the client's own connection (a killed gateway fails
    // the requests in flight on it); every other role must not be visible.
    let victims = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::ApiGateway)
        .collect::<Vec<_>>();
    // One role at a time: kill its Ready pod, wait until a new one is Ready,
    // then the next (a pod may be unready for a moment while the event
    // store or the queue it uses restarts).
    let mut recovery = Vec::new();
    for role in &victims {
        let selector = format!("{LABEL_COMPONENT}={}", role.slug());
        let victim = eventually_async(
            &format!("a Ready pod of {}", names.service(*role)),
            SLOW,
            || async {
                let pods = real::pods(client, ns, &selector).await;
                pods.iter()
                    .find(|p| real::pod_ready(p))
                    .and_then(|p| p.metadata.name.clone())
            },
        )
        .await;
        let killed = Instant::now();
        real::kill_pod(client, ns, &victim).await;
        eventually_async(
            &format!("{} Ready again", names.service(*role)),
            SLOW,
            || async {
                let pods = real::pods(client, ns, &selector).await;
                pods.iter()
                    .any(|p| {
                        real::pod_ready(p) && p.metadata.name.as_deref() != Some(victim.as_str())
                    })
                    .then_some(())
            },
        )
        .await;
        recovery.push(format!(
            "{} {:.1} s",
            role.slug(),
            killed.elapsed().as_secs_f64()
        ));
    }
    let output = tokio::task::spawn_blocking(move || loadgen.wait_with_output())
        .await
        .expect("joining the load generator")
        .expect("the load generator's output");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "flows failed or the stock was off while pods were killed:\n{report}\n{}",
        log_tail(&loadgen_log)
    );
    measured.time(
        &format!(
            "{} roles killed mid-flow, load run incl. recovery",
            victims.len()
        ),
        started.elapsed(),
    );
    measured.notes.push(format!(
        "Pod killed (SIGKILL) → a new Ready pod, per role: {}",
        recovery.join(", ")
    ));
    measured
        .notes
        .push(format!("Load run while pods were killed:\n\n{report}"));
    eventually_async("every Deployment Ready again", SLOW, || async {
        for role in Role::ALL {
            let (spec, ready) = deployment_replicas(client, ns, role).await;
            if ready < spec {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Counts of a few entity lists: what must survive a Redis restart.
async fn entity_counts(shop: &ShopApi) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for route in ["customers", "products", "orders", "billings", "shippings"] {
        let all = shop.get(&format!("/{route}")).await;
        let n = match &all {
            Value::Array(list) => list.len(),
            Value::Object(map) => map.len(),
            _ => 0,
        };
        counts.insert(route, n);
    }
    counts
}

/// Deleting the Redis pod brings it back on the same volume with every
/// acknowledged write.
async fn redis_pod_deleted_keeps_acknowledged_data(
    client: &Client,
    ns: &str,
    shop: &ShopApi,
    measured: &mut Measured,
) {
    let before = entity_counts(shop).await;
    let started = Instant::now();
    kubectl(&[
        "delete",
        "pod",
        "-n",
        ns,
        &format!("{SHOP}-redis-0"),
        "--wait=true",
    ]);
    // `kubectl wait` fails at once on a pod that does not exist yet: wait
    // for the StatefulSet to have made the new one first.
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let name = format!("{SHOP}-redis-0");
    eventually_async(
        "the StatefulSet to recreate the Redis pod",
        SLOW,
        || async {
            pods.get_opt(&name)
                .await
                .ok()
                .flatten()
                .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                .map(|_| ())
        },
    )
    .await;
    kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        &format!("pod/{SHOP}-redis-0"),
        "--timeout=180s",
    ]);
    shop.wait_ready(SLOW).await;
    measured.time(
        "Redis pod deleted → Ready again on its volume",
        started.elapsed(),
    );
    // The read model rebuilds from the event store, so equal lists mean
    // every acknowledged event came back.
    let after = eventually_async(
        "the read model to show every entity again",
        SLOW,
        || async {
            let now = entity_counts(shop).await;
            (now == before).then_some(now)
        },
    )
    .await;
    assert_eq!(after, before);
    shop.order_in_stock(5).await;
    let _ = client;
}

/// Redis answering nothing for longer than the probes' periods (45 s of
/// `CLIENT PAUSE`) takes pods out of their Services but restarts none;
/// they serve again when Redis does.
async fn redis_unresponsive_causes_no_restart_storm(
    client: &Client,
    ns: &str,
    shop: &ShopApi,
    measured: &mut Measured,
) {
    let before = real::restarts(client, ns).await;
    let started = Instant::now();
    kubectl(&[
        "exec",
        "-n",
        ns,
        &format!("{SHOP}-redis-0"),
        "--",
        "redis-cli",
        "CLIENT",
        "PAUSE",
        "45000",
        "ALL",
    ]);
    // Let the outage play out: longer than every liveness probe's period
    // times its failure threshold (3 × 10 s), so a liveness probe that
    // depended on Redis would have restarted its pod by now.
    tokio::time::sleep(Duration::from_secs(50).saturating_sub(started.elapsed())).await;
    let api = kube::Api::<OrderShop>::namespaced(client.clone(), ns);
    eventually_async("the shop Ready again after the pause", SLOW, || async {
        shop_ready(&api).await.then_some(())
    })
    .await;
    measured.time("Redis paused 45 s → shop Ready again", started.elapsed());
    let after = real::restarts(client, ns).await;
    let restarted: Vec<_> = after
        .iter()
        .filter(|(pod, n)| before.get(*pod).is_some_and(|b| *n > b))
        .collect();
    assert!(
        restarted.is_empty(),
        "pods restarted during a Redis outage: {restarted:?}"
    );
    shop.order_in_stock(5).await;
}

/// Deleting the leading operator pod hands the Lease to the other replica
/// within the lease duration.
async fn leader_handover(
    client: &Client,
    operator: &InClusterOperator,
    first: &str,
    measured: &mut Measured,
) {
    let started = Instant::now();
    kubectl(&[
        "delete",
        "pod",
        "-n",
        &operator.namespace,
        first,
        "--wait=false",
    ]);
    // Within the chart's lease duration (15 s) and a margin for the API
    // server: a graceful stop releases the Lease, so it is usually at once.
    let next = eventually_async(
        "another operator replica to lead within the lease",
        Duration::from_secs(15 + 15),
        || async { operator.leader(client).await.filter(|l| l != first) },
    )
    .await;
    measured.time(
        &format!("leader pod deleted → {next} leads"),
        started.elapsed(),
    );
}

/// `helm upgrade` with a changed value rolls the operator out; the shop
/// stays Ready and is still reconciled.
async fn helm_upgrade_keeps_the_shop(
    client: &Client,
    operator: &InClusterOperator,
    ns: &str,
    images: &Images,
    api: &Api<OrderShop>,
    measured: &mut Measured,
) {
    let started = Instant::now();
    operator.upgrade(images, &["logFilter=debug\\,kube=warn"]);
    let upgraded = operator;
    let deployment = Api::<Deployment>::namespaced(client.clone(), &upgraded.namespace)
        .get(&upgraded.release)
        .await
        .expect("the operator's Deployment");
    let args = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| serde_json::to_string(&s.containers[0].env).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        args.contains("debug,kube=warn"),
        "the upgrade changed the log filter: {args}"
    );
    eventually_async("a leader after the upgrade", SLOW, || async {
        upgraded.leader(client).await
    })
    .await;
    // Still reconciled: a changed replica count is applied.
    kubectl(&[
        "patch",
        "ordershop",
        SHOP,
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"services":{"product":{"replicas":2}}}}"#,
    ]);
    eventually_async("the upgraded operator to apply a change", SLOW, || async {
        let (spec, ready) = deployment_replicas(client, ns, Role::Product).await;
        (spec == 2 && ready == 2).then_some(())
    })
    .await;
    eventually_async("the shop Ready after the upgrade", SLOW, || async {
        shop_ready(api).await.then_some(())
    })
    .await;
    measured.time(
        "helm upgrade → new operator applies a change",
        started.elapsed(),
    );
}

/// An invalid OrderShop is refused by the API server, with the CRD's
/// messages, and nothing is created.
fn invalid_shop_is_refused(ns: &str) {
    let path = ordershop_e2e::repo_root().join("deploy/examples/invalid-autoscaling.yaml");
    let out = kubectl_output(&["apply", "-n", ns, "-f", path.to_str().expect("UTF-8 path")]);
    assert!(!out.success, "an invalid OrderShop was accepted");
    assert!(
        out.stderr.contains(
            "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"
        ),
        "{}",
        out.stderr
    );
}

/// Deleting the OrderShop garbage-collects every child; the Redis volume is
/// kept (`retainOnDelete`, the default), and the operator says so.
async fn deleting_the_shop_removes_its_children(
    client: &Client,
    ns: &str,
    api: &Api<OrderShop>,
    measured: &mut Measured,
) {
    let started = Instant::now();
    api.delete(SHOP, &DeleteParams::default())
        .await
        .expect("deleting the OrderShop");
    let expected = expected_children(SHOP, true, false);
    eventually_async("every child of the OrderShop to be gone", SLOW, || async {
        still_present(client, ns, &expected)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    eventually_async("every pod of the OrderShop to be gone", SLOW, || async {
        real::pods(client, ns, &Names::new(SHOP).instance_selector())
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    measured.time(
        "OrderShop deleted → every child and pod gone",
        started.elapsed(),
    );
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    assert!(
        claims
            .get_opt(&format!("data-{SHOP}-redis-0"))
            .await
            .expect("reading the claim")
            .is_some(),
        "the Redis volume is retained (retainOnDelete defaults to true)"
    );
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("listing Events");
    let reported = events.items.iter().any(|e| {
        e.reason.as_deref() == Some("VolumeRetained")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains(&format!("data-{SHOP}-redis-0")))
    });
    assert!(reported, "no VolumeRetained Event names the kept claim");
}
