//! One reconciliation of an OrderShop: build the desired children, apply
//! them (server-side apply, one field manager), prune what is no longer
//! desired, and write the status and Events. A deleted OrderShop gets one
//! last pass, the finalizer's [`cleanup`].

mod backoff;
mod children;
pub mod cleanup;
mod generated;
mod redis_auth;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, Event as Finalizing, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use ordershop_topology::Role;
use serde_json::json;
use tracing::{info, warn};

pub use backoff::FailureBackoff;
pub use children::ChildStores;
pub use cleanup::FINALIZER;

use crate::FIELD_MANAGER;
use crate::autoscale;
use crate::children::{self as build, BuildError, GrpcSecrets, RedisConnection, Settings};
use crate::crd::condition::{self, DEGRADED, READY, SUSPENDED};
use crate::crd::{GROUP, OrderShop, OrderShopStatus, VERSION};
use crate::metrics::Metrics;
use crate::names::Names;

/// How often a healthy OrderShop is reconciled without any change, to catch
/// drift that no watch reports.
const RESYNC: Duration = Duration::from_secs(300);

/// Everything a reconciliation needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub settings: Settings,
    pub stores: ChildStores,
    pub backoff: FailureBackoff,
    /// Generation each OrderShop (by uid) was last pruned at: pruning reads
    /// only caches but deletes, so it runs once per spec change (and once
    /// per OrderShop after a restart), not on every child status change.
    pruned_at: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: Metrics,
        settings: Settings,
        stores: ChildStores,
    ) -> Self {
        Self {
            client,
            recorder,
            metrics,
            settings,
            stores,
            backoff: FailureBackoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            pruned_at: Mutex::new(HashMap::new()),
        }
    }

    /// Drops the bookkeeping of a deleted OrderShop.
    fn forget(&self, uid: &str) {
        self.pruned_at
            .lock()
            .expect("prune bookkeeping poisoned")
            .remove(uid);
    }
}

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("{action} {kind} {name}: {source}")]
    Kube {
        action: &'static str,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    ExternalSecret(String),
    #[error(transparent)]
    Certificates(#[from] ordershop_grpc_auth::PkiError),
    #[error("the child caches stopped (shutting down)")]
    CachesClosed,
    #[error("the finalizer name {FINALIZER} is not a valid JSON pointer segment")]
    InvalidFinalizer,
}

impl Error {
    /// Bounded label for the error counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Build(_) => "build",
            Error::Kube { source, .. } => match source {
                kube::Error::Api(e) if e.code == 403 => "forbidden",
                kube::Error::Api(e) if e.code == 409 => "conflict",
                kube::Error::Api(e) if e.code == 422 => "invalid",
                kube::Error::Api(_) => "api",
                _ => "transport",
            },
            Error::ExternalSecret(_) => "external_secret",
            Error::Certificates(_) => "certificates",
            Error::CachesClosed => "caches_closed",
            Error::InvalidFinalizer => "finalizer",
        }
    }

    /// The reconcile's own error as it was, the finalizer helper's API
    /// calls in the reconcile's terms.
    fn from_finalizer(error: finalizer::Error<Error>, shop: &OrderShop) -> Self {
        let kube = |action, source| Error::Kube {
            action,
            kind: "OrderShop".into(),
            name: shop.name_any(),
            source,
        };
        match error {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(source) => kube("add the finalizer to", source),
            finalizer::Error::RemoveFinalizer(source) => kube("remove the finalizer from", source),
            finalizer::Error::UnnamedObject => Error::Build(BuildError::NotPersisted),
            finalizer::Error::InvalidFinalizer => Error::InvalidFinalizer,
        }
    }
}

fn key(shop: &OrderShop) -> String {
    format!(
        "{}/{}",
        shop.namespace().unwrap_or_default(),
        shop.name_any()
    )
}

/// The controller's reconcile function.
///
/// Through kube's finalizer helper: an OrderShop without [`FINALIZER`] only
/// gets it (the pass ends there, and the update it makes triggers the
/// next), so no child exists before the finalizer does and every deletion
/// reaches [`cleanup::cleanup`]; a deleted one is cleaned up and let go.
pub async fn reconcile(shop: Arc<OrderShop>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconcile_started();
    let started = Instant::now();
    let result = match shop.namespace() {
        // The shop's own namespace: works whether the operator watches one
        // namespace or all.
        Some(namespace) => {
            let shops: Api<OrderShop> = Api::namespaced(ctx.client.clone(), &namespace);
            finalizer(&shops, FINALIZER, shop.clone(), |event| async {
                match event {
                    Finalizing::Apply(shop) => reconcile_inner(&shop, &ctx).await,
                    Finalizing::Cleanup(shop) => cleanup::cleanup(&shop, &ctx).await,
                }
            })
            .await
            .map_err(|error| Error::from_finalizer(error, &shop))
        }
        None => Err(BuildError::NotPersisted.into()),
    };
    ctx.metrics.reconcile_finished(started.elapsed());
    if result.is_ok() {
        ctx.backoff.reset(&key(&shop));
    }
    result
}

/// The controller's error policy: count, log, and retry with exponential
/// backoff per OrderShop.
pub fn error_policy(shop: Arc<OrderShop>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    let delay = ctx.backoff.next_delay(&key(&shop));
    warn!(ordershop = %key(&shop), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_inner(shop: &OrderShop, ctx: &Context) -> Result<Action, Error> {
    // The finalizer helper hands a deleted shop to the cleanup, never here;
    // should one come anyway, its children are owned: garbage collection
    // removes them.
    if shop.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Creation Events and pruning read the caches: never act on a cache
    // that has not listed yet (right after a start or a takeover).
    if !ctx.stores.wait_until_ready().await {
        return Err(Error::CachesClosed);
    }
    let namespace = shop.namespace().ok_or(BuildError::NotPersisted)?;
    let was = shop
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);

    if shop.spec.suspend {
        let status = status::suspended(shop, Timestamp::now());
        if !condition::is_true(was, SUSPENDED) {
            publish(
                ctx,
                shop,
                EventType::Normal,
                "Suspended",
                "spec.suspend is true: reconciliation paused",
                None,
            )
            .await;
        }
        write_status(ctx, shop, &status).await?;
        return Ok(Action::await_change());
    }
    if condition::is_true(was, SUSPENDED) {
        publish(
            ctx,
            shop,
            EventType::Normal,
            "Resumed",
            "spec.suspend is false: reconciling again",
            None,
        )
        .await;
    }

    let names = Names::new(shop.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let applied = apply_children(ctx, shop, &namespace, &names, &secrets).await;
    let failure = applied.as_ref().err().map(ToString::to_string);

    let redis = match &shop.spec.redis.external {
        Some(external) => RedisConnection::external(external),
        None => RedisConnection::managed(&names),
    };
    let redis_sts = ctx.stores.stateful_set(&namespace, &names.redis());
    let deployments: Vec<_> = Role::ALL
        .into_iter()
        .map(|role| {
            (
                role,
                ctx.stores.deployment(&namespace, &names.service(role)),
            )
        })
        .collect();
    let observed = status::Observed {
        redis: redis_sts.as_deref(),
        deployments: deployments
            .iter()
            .map(|(r, d)| (*r, d.as_deref()))
            .collect(),
        failure: failure.clone(),
    };
    let new_status = status::compute(shop, &redis, &observed, Timestamp::now());

    match (&failure, condition::is_true(was, DEGRADED)) {
        (Some(message), _) => {
            publish(
                ctx,
                shop,
                EventType::Warning,
                "ReconcileFailed",
                message,
                None,
            )
            .await;
        }
        (None, true) => {
            publish(
                ctx,
                shop,
                EventType::Normal,
                "Recovered",
                "reconciliation succeeds again",
                None,
            )
            .await;
        }
        (None, false) => {}
    }
    let now_ready = condition::is_true(&new_status.conditions, READY);
    if now_ready && !condition::is_true(was, READY) {
        publish(
            ctx,
            shop,
            EventType::Normal,
            "Ready",
            "Redis and every service are ready",
            None,
        )
        .await;
    }
    // A failed status write must not hide the reconcile error, which has
    // the more useful message.
    let written = write_status(ctx, shop, &new_status).await;
    applied?;
    written?;
    Ok(Action::requeue(RESYNC))
}

/// Builds, applies and prunes the children; publishes an Event per created
/// or deleted child.
async fn apply_children(
    ctx: &Context,
    shop: &OrderShop,
    namespace: &str,
    names: &Names,
    secrets: &Api<Secret>,
) -> Result<(), Error> {
    let mut existing_secrets = HashSet::new();
    let password = match &shop.spec.redis.external {
        None => {
            let managed = redis_auth::managed_password(secrets, &names.redis_secret()).await?;
            if managed.secret_exists {
                existing_secrets.insert(names.redis_secret());
            }
            Some(managed.password)
        }
        Some(external) => {
            if let Some(reference) = &external.password_secret_ref {
                redis_auth::check_external(secrets, reference).await?;
            }
            None
        }
    };
    let grpc_secret = names.grpc_secret();
    let stored_grpc = generated::read(secrets, &grpc_secret).await?;
    if stored_grpc.exists {
        existing_secrets.insert(grpc_secret.clone());
    }
    let grpc = |stored: &generated::Stored| {
        GrpcSecrets::stored_or_generated(&stored.data, names, namespace)
    };
    let mut grpc_secrets = grpc(&stored_grpc)?;
    let mut desired = build::desired(shop, password.as_ref(), &grpc_secrets, &ctx.settings)?;
    let mut password = password;
    if shop.spec.redis.external.is_none() && !existing_secrets.contains(&names.redis_secret()) {
        // Created, never applied (see `generated`). When this pass created
        // it, the apply below still reports it as created (the Event); an
        // adopted one was created by the other pass.
        if let Some(adopted) = redis_auth::create_once(secrets, &desired.secrets, names).await? {
            password = Some(adopted);
            existing_secrets.insert(names.redis_secret());
        }
    }
    if !stored_grpc.exists
        && let Some(adopted) =
            generated::create_once(secrets, &desired.secrets, &grpc_secret).await?
    {
        grpc_secrets = grpc(&adopted)?;
        existing_secrets.insert(grpc_secret);
    }
    desired = build::desired(shop, password.as_ref(), &grpc_secrets, &ctx.settings)?;
    keep_immutable_storage(ctx, shop, namespace, &mut desired).await;
    // Before any Deployment apply that leaves `replicas` out for the first
    // time: otherwise the count drops to 1 until the autoscaler writes.
    hand_over_replicas(ctx, shop, namespace, names).await?;
    let created =
        children::apply_all(&ctx.client, &ctx.stores, &desired, &existing_secrets).await?;
    futures::future::join_all(created.into_iter().map(|child| async move {
        let note = format!(
            "created {} {}",
            child.kind.as_deref().unwrap_or("object"),
            child.name.as_deref().unwrap_or("?")
        );
        info!(ordershop = %key(shop), "{note}");
        publish(ctx, shop, EventType::Normal, "Created", &note, Some(child)).await;
    }))
    .await;

    let uid = shop.uid().ok_or(BuildError::NotPersisted)?;
    let generation = shop.metadata.generation.unwrap_or(0);
    let due = ctx
        .pruned_at
        .lock()
        .expect("prune bookkeeping poisoned")
        .get(&uid)
        != Some(&generation);
    if due {
        let deleted = children::prune(&ctx.client, &ctx.stores, namespace, &uid, &desired).await?;
        for what in deleted {
            let note = format!("deleted {what}: no longer in the spec");
            info!(ordershop = %key(shop), "{note}");
            publish(ctx, shop, EventType::Normal, "Deleted", &note, None).await;
        }
        ctx.pruned_at
            .lock()
            .expect("prune bookkeeping poisoned")
            .insert(uid, generation);
    }
    Ok(())
}

/// Makes the autoscaler own `replicas` of every newly autoscaled consumer
/// at its current count ([`autoscale::handover`]). A failure fails the
/// pass before any Deployment is applied, so no apply drops the field
/// while no one else owns it.
async fn hand_over_replicas(
    ctx: &Context,
    shop: &OrderShop,
    namespace: &str,
    names: &Names,
) -> Result<(), Error> {
    let pending = autoscale::handover::pending(&shop.spec, |role| {
        ctx.stores.deployment(namespace, &names.service(role))
    });
    futures::future::try_join_all(pending.into_iter().map(|(role, autoscaling)| async move {
        let name = names.service(role);
        let count = autoscale::handover::hand_over(&ctx.client, namespace, &name, autoscaling)
            .await
            .map_err(|source| Error::Kube {
                action: "hand the replicas over to the autoscaler of",
                kind: "Deployment".into(),
                name: name.clone(),
                source,
            })?;
        if let Some(count) = count {
            info!(ordershop = %key(shop), deployment = %name, replicas = count, "replicas handed over to the autoscaler");
        }
        Ok::<_, Error>(())
    }))
    .await?;
    Ok(())
}

/// Keeps the live volume claim templates of StatefulSets whose desired ones
/// differ ([`build::keep_live_claim_templates`]): the apply would be refused
/// on every pass. Says so in a Warning Event.
async fn keep_immutable_storage(
    ctx: &Context,
    shop: &OrderShop,
    namespace: &str,
    desired: &mut build::Desired,
) {
    for stateful_set in &mut desired.stateful_sets {
        let Some(live) = ctx.stores.stateful_set(namespace, &stateful_set.name_any()) else {
            continue;
        };
        if let Some(note) = build::keep_live_claim_templates(stateful_set, &live) {
            warn!(ordershop = %key(shop), "{note}");
            publish(
                ctx,
                shop,
                EventType::Warning,
                "StorageChangeNotApplied",
                &note,
                None,
            )
            .await;
        }
    }
}

/// Writes the reconcile's share of the status, unless it says nothing new.
async fn write_status(
    ctx: &Context,
    shop: &OrderShop,
    status: &OrderShopStatus,
) -> Result<(), Error> {
    if status::same(&status::own_part(shop.status.as_ref()), status) {
        return Ok(());
    }
    let api: Api<OrderShop> =
        Api::namespaced(ctx.client.clone(), &shop.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "OrderShop",
        "status": status,
    });
    api.patch_status(
        &shop.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::Kube {
        action: "apply status of",
        kind: "OrderShop".into(),
        name: shop.name_any(),
        source,
    })?;
    Ok(())
}

/// Publishes an Event about `shop` (see [`record`]).
async fn publish(
    ctx: &Context,
    shop: &OrderShop,
    type_: EventType,
    reason: &str,
    note: &str,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: related,
    };
    record(ctx, shop, event).await;
}

/// Records `event` about `shop`; a refusal is logged and otherwise ignored
/// (Events are best effort by design), so neither a pass nor the deletion
/// cleanup ever waits on the Events API.
async fn record(ctx: &Context, shop: &OrderShop, mut event: Event) {
    // Events carry at most 1 kB of note.
    if let Some(note) = event.note.as_mut()
        && note.len() > 1000
    {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    if let Err(error) = ctx.recorder.publish(&event, &shop.object_ref(&())).await {
        warn!(ordershop = %key(shop), %error, reason = %event.reason, "could not record Event");
    }
}
