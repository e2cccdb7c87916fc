//! Wiring: client, admin server, leader election, watches and the controller.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, PartialObjectMeta};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::admin::{self, Health};
use crate::children::Settings;
use crate::cli::RunArgs;
use crate::crd::OrderShop;
use crate::leader::{Election, LeaseSettings, Outcome};
use crate::metrics::Metrics;
use crate::names::MANAGED_SELECTOR;
use crate::reconcile::{self, ChildStores, Context};

/// How often the readiness task looks again whether the OrderShop cache
/// has synced (see `run_controller`).
const SYNC_REPOLL: Duration = Duration::from_millis(250);
/// How long running reconciliations may take to finish after SIGTERM;
/// below the pods' 30 s termination grace period, so the Lease is still
/// released before the kubelet kills the process.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no Kubernetes client configuration (in-cluster or KUBECONFIG): {0}")]
    Config(#[source] kube::Error),
    #[error(
        "the OrderShop API is not served ({0}); install the CRD first: kubectl apply -f deploy/ or helm install"
    )]
    CrdMissing(#[source] kube::Error),
    #[error("binding the admin server to {addr}: {source}")]
    AdminBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("joining leader election: {0}")]
    Election(#[from] kube_lease_manager::LeaseManagerError),
    #[error("leadership lost; exiting so that this replica restarts as a standby")]
    LostLeadership,
}

/// Runs the operator until SIGTERM/SIGINT (or loss of leadership).
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let client = Client::try_default().await.map_err(RunError::Config)?;
    let metrics = Metrics::new();
    let health = Health::default();

    let listener = TcpListener::bind(args.admin_listen)
        .await
        .map_err(|source| RunError::AdminBind {
            addr: args.admin_listen,
            source,
        })?;
    info!(addr = %listener.local_addr().unwrap_or(args.admin_listen), "admin server listening");
    let admin = tokio::spawn(admin::serve(
        listener,
        health.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    // Fail fast, with a clear message, when the CRD is not installed.
    api::<OrderShop>(&client, args.watch_namespace.as_deref())
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(RunError::CrdMissing)?;
    health.set_api_reachable(true);

    let operator_namespace = args
        .operator_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    info!(%identity, namespace = %operator_namespace, watch = ?args.watch_namespace, "starting");

    let result = if args.leader_election {
        let settings = LeaseSettings {
            name: args.lease_name.clone(),
            namespace: operator_namespace.clone(),
            identity: identity.clone(),
            duration: args.lease_duration(),
            grace: args.lease_grace(),
        };
        let mut election = Election::join(client.clone(), &settings).await?;
        info!(lease = %settings.name, "standby: waiting for the leader Lease");
        match election.wait_for_leadership(&shutdown).await {
            Outcome::ShutDown => {
                election.resign().await;
                Ok(())
            }
            Outcome::Leading => {
                info!(lease = %settings.name, "leading");
                health.set_leading(true);
                metrics.set_leader(true);
                let stop = election.lost_token(&shutdown);
                run_controller(
                    &client,
                    &args,
                    &identity,
                    &operator_namespace,
                    &metrics,
                    &health,
                    stop.clone(),
                )
                .await;
                let lost = !shutdown.is_cancelled();
                stop.cancel();
                health.set_controller_running(false);
                metrics.set_leader(false);
                election.resign().await;
                if lost {
                    Err(RunError::LostLeadership)
                } else {
                    Ok(())
                }
            }
        }
    } else {
        health.set_leading(true);
        run_controller(
            &client,
            &args,
            &identity,
            &operator_namespace,
            &metrics,
            &health,
            shutdown.clone(),
        )
        .await;
        Ok(())
    };

    shutdown.cancel();
    if let Ok(Err(error)) = admin.await {
        warn!(%error, "admin server failed");
    }
    info!("stopped");
    result
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the operator");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutdown requested");
    token.cancel();
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ordershop-operator".into());
    format!("{host}-{}", std::process::id())
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

type ChildStream<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// A full-object watch of the operator's children of kind `K`, cached.
fn watch_full<K>(api: Api<K>) -> (Store<K>, ChildStream<K>)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().labels(MANAGED_SELECTOR))
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .boxed();
    (reader, stream)
}

/// A metadata-only watch of the operator's children of kind `K`, cached.
fn watch_meta<K>(
    api: Api<PartialObjectMeta<K>>,
) -> (
    Store<PartialObjectMeta<K>>,
    ChildStream<PartialObjectMeta<K>>,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().labels(MANAGED_SELECTOR))
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .boxed();
    (reader, stream)
}

/// Runs the controller until `stop` is cancelled, then lets running
/// reconciliations finish.
async fn run_controller(
    client: &Client,
    args: &RunArgs,
    identity: &str,
    operator_namespace: &str,
    metrics: &Metrics,
    health: &Health,
    stop: CancellationToken,
) {
    let scope = args.watch_namespace.as_deref();
    let (deployments, deployment_events) = watch_full::<Deployment>(api(client, scope));
    let (stateful_sets, stateful_set_events) = watch_full::<StatefulSet>(api(client, scope));
    let (services, service_events) = watch_meta::<Service>(api(client, scope));
    // No watch of Secrets: it would need list/watch on every Secret in
    // scope (RBAC cannot narrow that to the operator's own), for one
    // Secret per shop that the reconcile reads with a get anyway.
    let (disruption_budgets, pdb_events) = watch_meta::<PodDisruptionBudget>(api(client, scope));
    let (network_policies, netpol_events) = watch_meta::<NetworkPolicy>(api(client, scope));
    let (ingresses, ingress_events) = watch_meta::<Ingress>(api(client, scope));
    let stores = ChildStores {
        deployments,
        stateful_sets,
        services,
        disruption_budgets,
        network_policies,
        ingresses,
    };

    // Only spec changes (generation) and finalizer changes trigger a
    // reconcile from the OrderShop itself: its status writes must not
    // trigger another pass. The finalizer helper ends the pass that adds
    // the finalizer and counts on that update for the next one, which
    // creates the children; it leaves the generation alone. A deletion
    // does bump the generation, so it always gets through.
    let (shops, shop_writer) = reflector::store();
    let shop_events = watcher(api::<OrderShop>(client, scope), watcher::Config::default())
        .default_backoff()
        .reflect(shop_writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: crate::FIELD_MANAGER.into(),
            instance: Some(identity.to_string()),
        },
    );
    let settings = Settings {
        default_image_tag: args.default_image_tag.clone(),
        operator_namespace: Some(operator_namespace.to_string()),
    };
    let context = Arc::new(Context::new(
        client.clone(),
        recorder,
        metrics.clone(),
        settings,
        stores.clone(),
    ));

    let ready_health = health.clone();
    let ready_stores = stores.clone();
    let ready_shops = shops.clone();
    tokio::spawn(async move {
        // The Controller waits on the OrderShop store too, and kube-runtime
        // 5's readiness signal wakes only the waiter that polled it last
        // (one oneshot receiver, one waker): a single long wait here could
        // sleep forever, leaving the leader unready. A wait that is dropped
        // and polled again always sees a signal already sent.
        let shops_synced = async {
            loop {
                match tokio::time::timeout(SYNC_REPOLL, ready_shops.wait_until_ready()).await {
                    Ok(synced) => return synced.is_ok(),
                    Err(_elapsed) => continue,
                }
            }
        };
        if ready_stores.wait_until_ready().await && shops_synced.await {
            info!("caches synced; reconciling");
            ready_health.set_controller_running(true);
        }
    });

    // The backlog autoscaler (operator/src/autoscale), for as long as the
    // controller runs: it reads the controller's caches and stops with it.
    let autoscaler = tokio::spawn(
        crate::autoscale::Autoscaler::new(
            client.clone(),
            identity,
            metrics.clone(),
            shops.clone(),
            stores.deployments.clone(),
        )
        .run(stop.clone()),
    );

    // The dead-letter watch (operator/src/dead_letters.rs), likewise.
    let dead_letters = tokio::spawn(
        crate::dead_letters::DeadLetterWatch::new(client.clone(), metrics.clone(), shops.clone())
            .run(stop.clone()),
    );

    let stop_signal = stop.clone();
    let synced_shops = shops.clone();
    let controller = Controller::for_stream(shop_events, shops)
        .owns_stream(deployment_events)
        .owns_stream(stateful_set_events)
        .owns_stream(service_events)
        .owns_stream(pdb_events)
        .owns_stream(netpol_events)
        .owns_stream(ingress_events)
        .with_config(
            controller::Config::default()
                .concurrency(args.concurrency)
                // Applying ~35 children makes as many watch events; collect
                // them into one follow-up pass.
                .debounce(Duration::from_millis(200)),
        )
        .graceful_shutdown_on(async move { stop_signal.cancelled().await })
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(ordershop = %object, "reconciled"),
                Err(controller::Error::ReconcilerFailed(..)) => {
                    // Logged with its context by the error policy.
                }
                Err(controller::Error::ObjectNotFound(object)) => {
                    // Garbage collection removing the children of a deleted
                    // OrderShop triggers their owner, which is gone: expected.
                    tracing::debug!(ordershop = %object, "change of a child of a deleted OrderShop");
                }
                Err(error) => error!(%error, "controller"),
            }
        });
    // Graceful shutdown lets running passes finish, but kube-runtime holds
    // its runner until the OrderShop cache has listed once, and stops
    // feeding that cache on shutdown: a stop before the first list would
    // wait forever. Then no pass can be running, so stop at once; otherwise
    // give running passes SHUTDOWN_GRACE.
    let abandon = async {
        stop.cancelled().await;
        if synced_shops.wait_until_ready().now_or_never().is_none() {
            return;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        warn!(grace = ?SHUTDOWN_GRACE, "reconciliations still running at shutdown; abandoning them");
    };
    tokio::select! {
        () = controller => {}
        () = abandon => {}
    }
    // The controller stopped: `stop` is cancelled, the autoscaler and the
    // dead-letter watch end their poll.
    stop.cancel();
    let _ = autoscaler.await;
    let _ = dead_letters.await;
    info!("controller stopped");
}
