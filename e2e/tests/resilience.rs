//! The operator survives being killed mid-reconcile, and two replicas never
//! reconcile at once: the standby waits for the leader's Lease.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, ResourceExt};
use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::objects::{
    apply_example, condition_true, expected_children, missing_or_unowned, shops,
};
use ordershop_e2e::operator::{Operator, Options};
use ordershop_e2e::{cluster, eventually_async, install, volumes};

async fn holder(client: &Client, lease: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), install::NAMESPACE)
        .get_opt(lease)
        .await
        .ok()??
        .spec?
        .holder_identity
}

async fn ready_and_complete(client: &Client, ns: &str, shop: &str, managed: bool) {
    let api = shops(client, ns);
    let uid = eventually_async(
        &format!("{ns}/{shop} Ready"),
        Duration::from_secs(90),
        || {
            let api = api.clone();
            async move {
                let s = api.get(shop).await.ok()?;
                condition_true(&s, "Ready").then(|| s.uid()).flatten()
            }
        },
    )
    .await;
    let problems =
        missing_or_unowned(client, ns, &uid, &expected_children(shop, managed, false)).await;
    assert!(problems.is_empty(), "children: {problems:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_operator_mid_reconcile_then_restarting_converges() {
    let client = cluster::connect().await;
    install::chart();
    let mut ns = TestNamespace::create(&client, "kill").await;
    volumes::provide_redis_volume(&client, &mut ns, "shop", "1Gi").await;
    let options = Options::for_namespace(&ns.name);
    let mut first = Operator::start(options.clone());
    eventually_async("first operator leads", Duration::from_secs(30), || {
        let client = client.clone();
        let lease = options.lease_name.clone();
        let id = options.identity.clone();
        async move { (holder(&client, &lease).await? == id).then_some(()) }
    })
    .await;

    apply_example(&ns.name, "minimal.yaml");
    // Kill as soon as the first child exists: the pass that creates ~35
    // children is then still running.
    let api = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns.name);
    eventually_async("the first child exists", Duration::from_secs(30), || {
        let api = api.clone();
        async move { api.get_opt("shop-redis-auth").await.ok()?.map(|_| ()) }
    })
    .await;
    first.kill();
    let missing_at_kill = missing_or_unowned(
        &client,
        &ns.name,
        "-",
        &expected_children("shop", true, false),
    )
    .await
    .iter()
    .filter(|p| p.ends_with("missing"))
    .count();
    eprintln!("children missing when the operator was killed: {missing_at_kill}");

    // A new process (new identity) takes over once the dead one's Lease
    // lapses, and finishes the job.
    let _second = Operator::start(options.with_identity(format!("{}-b", ns.name)));
    ready_and_complete(&client, &ns.name, "shop", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_replica_stays_standby_until_the_leaders_lease_lapses() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "standby").await;
    let a_options = Options::for_namespace(&ns.name);
    let lease = a_options.lease_name.clone();
    let lease_duration = a_options.lease_duration;
    let mut a = Operator::start(a_options.clone());
    let a_id = a_options.identity.clone();
    eventually_async("A leads", Duration::from_secs(30), || {
        let client = client.clone();
        let lease = lease.clone();
        let a_id = a_id.clone();
        async move { (holder(&client, &lease).await? == a_id).then_some(()) }
    })
    .await;

    let b_id = format!("{}-b", ns.name);
    let b = Operator::start(a_options.clone().with_identity(b_id.clone()));
    eventually_async(
        "B up and ready as a standby",
        Duration::from_secs(30),
        || {
            let b = &b;
            async move {
                (b.ready().await && b.metric("ordershop_operator_leader").await == Some(0.0))
                    .then_some(())
            }
        },
    )
    .await;

    // For two Lease durations, A keeps the Lease and B neither leads nor reconciles.
    apply_example(&ns.name, "external-redis.yaml");
    let watch_until = Instant::now() + 2 * lease_duration;
    while Instant::now() < watch_until {
        assert_eq!(
            holder(&client, &lease).await.as_deref(),
            Some(a_id.as_str())
        );
        assert_eq!(b.metric("ordershop_operator_leader").await, Some(0.0));
        assert_eq!(
            b.metric("ordershop_operator_reconciles_total").await,
            Some(0.0)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ready_and_complete(&client, &ns.name, "shop-ext", false).await;

    // A dies without releasing: B takes over after the Lease lapses (and
    // not much later), then reconciles a change.
    let killed = Instant::now();
    a.kill();
    eventually_async("B takes over", lease_duration * 3, || {
        let client = client.clone();
        let lease = lease.clone();
        let b_id = b_id.clone();
        async move { (holder(&client, &lease).await? == b_id).then_some(()) }
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after SIGKILL of the leader: {takeover:?} (lease {lease_duration:?})");
    eventually_async("B reports leading", Duration::from_secs(10), || {
        let b = &b;
        async move { (b.metric("ordershop_operator_leader").await == Some(1.0)).then_some(()) }
    })
    .await;
    // The new leader must also finish the deletion (it removes the cleanup
    // finalizer); applying before that would update the terminating object,
    // which then disappears instead of coming back.
    shops(&client, &ns.name)
        .delete("shop-ext", &Default::default())
        .await
        .unwrap();
    eventually_async(
        "B finishes deleting shop-ext",
        Duration::from_secs(60),
        || {
            let api = shops(&client, &ns.name);
            async move { api.get_opt("shop-ext").await.ok()?.is_none().then_some(()) }
        },
    )
    .await;
    apply_example(&ns.name, "external-redis.yaml");
    ready_and_complete(&client, &ns.name, "shop-ext", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_shutdown_releases_the_lease_and_the_standby_takes_over() {
    let client = cluster::connect().await;
    install::chart();
    let ns = TestNamespace::create(&client, "handover").await;
    let options = Options::for_namespace(&ns.name);
    let lease = options.lease_name.clone();
    let lease_duration = options.lease_duration;
    let mut a = Operator::start(options.clone());
    eventually_async("A leads", Duration::from_secs(30), || {
        let client = client.clone();
        let lease = lease.clone();
        let id = options.identity.clone();
        async move { (holder(&client, &lease).await? == id).then_some(()) }
    })
    .await;
    let b_id = format!("{}-b", ns.name);
    let b = Operator::start(options.clone().with_identity(b_id.clone()));
    eventually_async("B is a ready standby", Duration::from_secs(30), || {
        let b = &b;
        async move { b.ready().await.then_some(()) }
    })
    .await;

    let stopped = Instant::now();
    assert!(
        a.terminate(Duration::from_secs(20)),
        "A must exit 0 on SIGTERM:\n{}",
        a.log_tail()
    );
    // A released the Lease on its way out (a SIGKILLed leader cannot).
    let released = holder(&client, &lease).await;
    assert!(
        released.is_none() || released.as_deref() == Some(b_id.as_str()),
        "the Lease still names {released:?} after A exited"
    );
    // kube-lease-manager's standby re-checks at the old expiry, so it takes
    // over within one Lease duration.
    eventually_async("B takes over", lease_duration * 2, || {
        let client = client.clone();
        let lease = lease.clone();
        let b_id = b_id.clone();
        async move { (holder(&client, &lease).await? == b_id).then_some(()) }
    })
    .await;
    eprintln!(
        "takeover after SIGTERM of the leader: {:?}",
        stopped.elapsed()
    );
}
