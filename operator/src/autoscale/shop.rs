//! The scaler of one OrderShop: every poll interval, read the backlog of
//! all its autoscaled consumers in one round trip, decide for each, scale
//! the Deployments that need it, and report (status, Events, metrics).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use ordershop_scaling::{
    GroupError, MeasureOptions, Measurement, Sample, UnixMillis, create_groups, ensure_groups,
    measure_all,
};
use ordershop_topology::Role;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::consumer::ConsumerScaler;
use super::events::{self, Note};
use super::policy::{measure_options, policy};
use super::redis_target::{RedisAddress, RedisLink, RedisTarget};
use super::report::{Health, StatusWriter, scaling_condition, status_patch};
use super::{AUTOSCALER_FIELD_MANAGER, autoscaled_consumers, may_actuate, poll_interval};
use crate::crd::condition::SCALING;
use crate::crd::{AutoscalingSpec, OrderShop, ServiceStatus};
use crate::metrics::{ConsumerLabels, Metrics};
use crate::names::Names;

/// A poll that has not finished by then is abandoned and counts as Redis
/// being unreadable (the connection's own timeouts normally fire first).
const POLL_BUDGET: Duration = Duration::from_secs(5);
/// The Redis password is read again this often (a rotated password is
/// picked up without a restart)...
const CREDENTIALS_REFRESH: Duration = Duration::from_secs(60);
/// ... and this often while polls fail (it may be the reason), without a
/// Secret read per poll during a Redis outage.
const CREDENTIALS_RETRY: Duration = Duration::from_secs(10);

/// What every OrderShop's scaler shares.
pub struct Shared {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub shops: Store<OrderShop>,
    pub deployments: Store<Deployment>,
    /// Whether the operator runs in a pod (see [`super::redis_target::in_cluster`]).
    pub in_cluster: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("in_cluster", &self.in_cluster)
            .finish_non_exhaustive()
    }
}

/// What makes a status write urgent: per consumer the decided count, cause,
/// dry run and last scale; the condition's status and reason.
type UrgentKey = (
    Vec<(Role, (Option<i32>, Option<String>, bool, Option<Time>))>,
    String,
    String,
);

/// The scaler of one OrderShop, alive while it has autoscaled consumers.
#[derive(Debug)]
pub struct ShopScaler {
    shared: Arc<Shared>,
    key: ObjectRef<OrderShop>,
    /// `namespace/name`, for logs.
    id: String,
    link: Option<RedisLink>,
    consumers: BTreeMap<Role, ConsumerScaler>,
    /// Whether the last poll could read the backlog.
    readable: Option<bool>,
    condition: Option<Condition>,
    writer: StatusWriter<UrgentKey>,
}

/// Whether to go on polling.
enum Flow {
    Continue,
    Finished,
}

impl ShopScaler {
    pub fn new(shared: Arc<Shared>, key: ObjectRef<OrderShop>) -> Self {
        let id = format!(
            "{}/{}",
            key.namespace.as_deref().unwrap_or_default(),
            key.name
        );
        Self {
            shared,
            key,
            id,
            link: None,
            consumers: BTreeMap::new(),
            readable: None,
            condition: None,
            writer: StatusWriter::default(),
        }
    }

    /// Polls until the OrderShop is gone, has no autoscaled consumer left,
    /// or `stop` (shutdown, lost leadership).
    pub async fn run(mut self, stop: CancellationToken) {
        info!(ordershop = %self.id, "autoscaler started");
        while let Some(shop) = self.shared.shops.get(&self.key) {
            if shop.metadata.deletion_timestamp.is_some() {
                break;
            }
            let started = Instant::now();
            if let Flow::Finished = self.poll(&shop).await {
                break;
            }
            // Fixed rate: the time a poll took is part of the interval.
            let wait = poll_interval(&shop.spec).saturating_sub(started.elapsed());
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        let roles: Vec<Role> = self.consumers.keys().copied().collect();
        for role in roles {
            self.shared.metrics.forget_consumer(&self.labels(role));
        }
        info!(ordershop = %self.id, "autoscaler stopped");
    }

    fn labels(&self, role: Role) -> ConsumerLabels {
        ConsumerLabels {
            namespace: self.key.namespace.clone().unwrap_or_default(),
            ordershop: self.key.name.clone(),
            service: role.slug().into(),
        }
    }

    async fn poll(&mut self, shop: &OrderShop) -> Flow {
        let consumers = autoscaled_consumers(&shop.spec);
        let removed: Vec<Role> = self
            .consumers
            .keys()
            .filter(|role| !consumers.iter().any(|(r, _)| r == *role))
            .copied()
            .collect();
        for role in removed {
            self.consumers.remove(&role);
            self.shared.metrics.forget_consumer(&self.labels(role));
        }
        if consumers.is_empty() {
            self.release(shop).await;
            return Flow::Finished;
        }
        let now = UnixMillis::from_system_time(SystemTime::now());
        for (role, _) in &consumers {
            self.consumers
                .entry(*role)
                .or_insert_with(|| ConsumerScaler::resume(*role, status_entry(shop, *role), now));
        }

        let health = if shop.spec.suspend {
            Health::Suspended
        } else if shop.spec.stopped {
            Health::Stopped
        } else {
            self.measure_and_decide(shop, &consumers).await
        };
        let measuring = !matches!(health, Health::Suspended | Health::Stopped);
        let note = measuring
            .then(|| events::for_redis(self.readable, health.readable(), &health_message(&health)))
            .flatten();
        if let Some(note) = note {
            if health.readable() {
                info!(ordershop = %self.id, "{}", note.note);
            } else {
                warn!(ordershop = %self.id, "{}", note.note);
            }
            self.publish(shop, note, None).await;
        }
        if measuring {
            self.readable = Some(health.readable());
        }
        self.report(shop, &health).await;
        Flow::Continue
    }

    async fn measure_and_decide(
        &mut self,
        shop: &OrderShop,
        consumers: &[(Role, &AutoscalingSpec)],
    ) -> Health {
        let roles: Vec<Role> = consumers.iter().map(|(r, _)| *r).collect();
        let started = Instant::now();
        let measured = self
            .measure(shop, &roles, &measure_options(consumers))
            .await;
        let commands = measured
            .as_ref()
            .map_or(0, |m| u64::try_from(m.cost.commands).unwrap_or(u64::MAX));
        for (role, spec) in consumers {
            let sample = match &measured {
                Ok(measurement) => measurement.sample(*role),
                Err(reason) => Sample::Unavailable {
                    reason: reason.clone(),
                },
            };
            self.step(shop, *role, spec, &sample).await;
        }
        self.shared
            .metrics
            .autoscaler_polled(measured.is_ok(), commands, started.elapsed());

        let address = RedisAddress::of(shop);
        match measured {
            Ok(_) => Health::Measuring {
                redis: address.url,
                consumers: roles.iter().map(|r| r.slug().to_string()).collect(),
                interval_ms: u64::try_from(poll_interval(&shop.spec).as_millis())
                    .unwrap_or(u64::MAX),
                dry_run: named(consumers, |a| a.dry_run),
                paused: named(consumers, |a| a.paused),
            },
            Err(reason) => {
                let held: Vec<String> = self
                    .consumers
                    .values()
                    .map(|c| match c.desired() {
                        Some(n) => format!("{} {n}", c.role.slug()),
                        None => format!("{} (no decision yet)", c.role.slug()),
                    })
                    .collect();
                Health::Unavailable {
                    message: format!("{reason}; holding the last decisions: {}", held.join(", ")),
                }
            }
        }
    }

    /// One round trip (two when a nil lag must be counted) for every
    /// consumer; the consumer groups are created first on a new connection.
    /// The error is the reason to show, the connection is dropped with it.
    async fn measure(
        &mut self,
        shop: &OrderShop,
        roles: &[Role],
        options: &MeasureOptions,
    ) -> Result<Measurement, String> {
        let address = RedisAddress::of(shop);
        let explain = |error: &dyn std::fmt::Display| {
            let mut reason = format!("the backlog cannot be read from {}: {error}", address.url);
            if address.managed && !self.shared.in_cluster {
                reason.push_str(
                    " (the operator runs outside the cluster, where the managed Redis Service is unreachable; use spec.redis.external, or run the operator in the cluster)",
                );
            }
            reason
        };
        let stale = self.link.as_ref().is_none_or(|link| {
            let refresh = if link.failing {
                CREDENTIALS_RETRY
            } else {
                CREDENTIALS_REFRESH
            };
            link.target.address != address || link.resolved_at.elapsed() >= refresh
        });
        if stale {
            let namespace = shop.namespace().unwrap_or_default();
            match RedisTarget::resolve(&self.shared.client, &namespace, &address).await {
                Ok(target) => match &mut self.link {
                    Some(link) if link.target == target => link.resolved_at = Instant::now(),
                    _ => {
                        let conn = target.connect().map_err(|e| explain(&e))?;
                        self.link = Some(RedisLink {
                            target,
                            conn,
                            groups_ensured_for: Vec::new(),
                            resolved_at: Instant::now(),
                            failing: false,
                        });
                    }
                },
                Err(error) => {
                    self.link = None;
                    return Err(explain(&error));
                }
            }
        }
        let link = self.link.as_mut().expect("resolved above");
        let measured = tokio::time::timeout(POLL_BUDGET, async {
            if !roles.iter().all(|r| link.groups_ensured_for.contains(r)) {
                ensure(&mut link.conn, roles).await?;
                link.groups_ensured_for = roles.to_vec();
            }
            let measurement = measure_all(&mut link.conn, roles, options)
                .await
                .map_err(|e| e.to_string())?;
            let missing = measurement.missing_groups();
            if !missing.is_empty() {
                // Deleted behind the operator's back: made again, measured
                // as a lower bound meanwhile (never a silent 0).
                match create_groups(&mut link.conn, &missing).await {
                    Ok(created) => {
                        info!(groups = created.len(), "re-created missing consumer groups")
                    }
                    Err(error) => warn!(%error, "re-creating missing consumer groups"),
                }
            }
            Ok::<_, String>(measurement)
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {POLL_BUDGET:?}")));
        match measured {
            Ok(measurement) => {
                link.failing = false;
                Ok(measurement)
            }
            Err(error) => {
                // Next poll: a fresh connection, the groups made sure of
                // again (a Redis that restarted empty lost them), the
                // password read again soon.
                if let Ok(conn) = link.target.connect() {
                    link.conn = conn;
                }
                link.groups_ensured_for.clear();
                link.failing = true;
                Err(explain(&error))
            }
        }
    }

    /// Decide for one consumer, scale its Deployment if the decision says
    /// so and the spec allows it, and publish what deserves publishing.
    async fn step(
        &mut self,
        shop: &OrderShop,
        role: Role,
        spec: &AutoscalingSpec,
        sample: &Sample,
    ) {
        let namespace = shop.namespace().unwrap_or_default();
        let deployment_name = Names::new(shop.name_any()).service(role);
        let Some(deployment) = self
            .shared
            .deployments
            .get(&ObjectRef::new(&deployment_name).within(&namespace))
        else {
            debug!(ordershop = %self.id, consumer = role.slug(), "no Deployment yet: nothing to scale");
            return;
        };
        let labels = self.labels(role);
        let scaler = self.consumers.get_mut(&role).expect("created in poll");
        let current = scaler.current_replicas(&deployment);
        let now = SystemTime::now();
        let (decision, previous) = scaler.decide(
            &policy(spec),
            sample,
            current,
            UnixMillis::from_system_time(now),
            Timestamp::now(),
        );
        self.shared.metrics.record_consumer(
            &labels,
            scaler
                .backlog()
                .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            i64::from(decision.desired),
        );
        if let Some(gauges) = scaler.gauges() {
            self.shared.metrics.record_backlog_parts(&labels, gauges);
        }

        let related = deployment.object_ref(&());
        // The spec as the cache has it now, not as it was when this poll
        // started (a measurement can take seconds): once autoscaling is
        // switched off the reconcile owns the count, and a forced scale
        // from a stale spec would take it back.
        let allowed = self
            .shared
            .shops
            .get(&self.key)
            .is_some_and(|now| may_actuate(&now.spec, now.spec.suspend, role));
        if allowed && decision.should_apply(current) {
            match scale(
                &self.shared.client,
                &namespace,
                &deployment_name,
                decision.desired,
            )
            .await
            {
                Ok(()) => {
                    info!(ordershop = %self.id, consumer = role.slug(), from = current, to = decision.desired, reason = %decision.reason, "scaled");
                    let scaler = self.consumers.get_mut(&role).expect("created in poll");
                    scaler.scaled(
                        &decision,
                        deployment.metadata.resource_version.clone(),
                        Timestamp::now(),
                    );
                }
                Err(error) => {
                    warn!(ordershop = %self.id, consumer = role.slug(), %error, "scaling failed");
                    let error = error.to_string();
                    let scaler = self.consumers.get_mut(&role).expect("created in poll");
                    if scaler.scale_failed(&error) {
                        let note = events::scale_failed(
                            role.slug(),
                            &deployment_name,
                            decision.desired,
                            &error,
                        );
                        self.publish(shop, note, Some(related.clone())).await;
                    }
                }
            }
        }
        if let Some(note) = events::for_decision(role.slug(), &decision, previous) {
            self.publish(shop, note, Some(related)).await;
        }
    }

    /// Writes the autoscaler's share of the status when it is due.
    async fn report(&mut self, shop: &OrderShop, health: &Health) {
        let previous: Vec<Condition> = match &self.condition {
            Some(own) => vec![own.clone()],
            None => shop
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default(),
        };
        let condition = scaling_condition(
            &previous,
            health,
            shop.metadata.generation,
            Timestamp::now(),
        );
        let entries: Vec<ServiceStatus> = self
            .consumers
            .values()
            .map(ConsumerScaler::status_entry)
            .collect();
        let backlogs: Vec<u64> = self
            .consumers
            .values()
            .filter_map(ConsumerScaler::backlog)
            .collect();
        let total = (!backlogs.is_empty()).then(|| {
            i64::try_from(backlogs.iter().fold(0u64, |a, b| a.saturating_add(*b)))
                .unwrap_or(i64::MAX)
        });
        let body = status_patch(&entries, total, Some(&condition));
        let urgent: UrgentKey = (
            self.consumers
                .iter()
                .map(|(role, c)| (*role, c.urgent_key()))
                .collect(),
            condition.status.clone(),
            condition.reason.clone(),
        );
        let comparable = comparable(&body);
        let now = Instant::now();
        if !self.writer.due(&urgent, &comparable, now) {
            return;
        }
        match apply_status(&self.shared.client, shop, &body).await {
            Ok(()) => {
                self.writer.written(urgent, comparable, now);
                self.condition = Some(condition);
            }
            Err(error) => warn!(ordershop = %self.id, %error, "writing the autoscaling status"),
        }
    }

    /// Removes everything the autoscaler wrote to the status (no consumer is
    /// autoscaled any more): an apply without its fields drops them.
    async fn release(&mut self, shop: &OrderShop) {
        if !has_autoscaler_status(shop) {
            return;
        }
        match apply_status(&self.shared.client, shop, &status_patch(&[], None, None)).await {
            Ok(()) => info!(ordershop = %self.id, "autoscaling disabled: status released"),
            Err(error) => warn!(ordershop = %self.id, %error, "releasing the autoscaling status"),
        }
    }

    async fn publish(&self, shop: &OrderShop, note: Note, related: Option<ObjectReference>) {
        let event = Event {
            type_: note.type_,
            reason: note.reason.into(),
            note: Some(truncate(note.note, 1000)),
            action: "Scale".into(),
            secondary: related,
        };
        if let Err(error) = self
            .shared
            .recorder
            .publish(&event, &shop.object_ref(&()))
            .await
        {
            warn!(ordershop = %self.id, %error, reason = note.reason, "could not record Event");
        }
    }
}

/// Creates the consumer groups of `roles` that do not exist yet. A group
/// Redis refuses (the key holds something else) is left to the
/// measurement, which reports it as unreadable.
async fn ensure(conn: &mut redis::aio::ConnectionManager, roles: &[Role]) -> Result<(), String> {
    match ensure_groups(conn, roles).await {
        Ok(groups) => {
            let created: Vec<String> = groups
                .iter()
                .filter(|g| g.outcome == ordershop_scaling::GroupOutcome::Created)
                .map(|g| g.group.to_string())
                .collect();
            if !created.is_empty() {
                info!(groups = ?created, "created consumer groups");
            }
            Ok(())
        }
        Err(GroupError::Refused(refused)) => {
            warn!(
                refused = refused.len(),
                "Redis refused some consumer groups"
            );
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Sets a Deployment's replicas through its scale subresource, as the
/// autoscaler's field manager, taking the field over from any other manager
/// (the reconcile leaves it out while autoscaling is on).
async fn scale(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: u32,
) -> Result<(), kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let replicas = i32::try_from(replicas).unwrap_or(i32::MAX);
    let body = super::handover::scale_body(namespace, name, replicas, None);
    api.patch_scale(
        name,
        &PatchParams::apply(AUTOSCALER_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

async fn apply_status(
    client: &Client,
    shop: &OrderShop,
    body: &serde_json::Value,
) -> Result<(), kube::Error> {
    let api: Api<OrderShop> =
        Api::namespaced(client.clone(), &shop.namespace().unwrap_or_default());
    api.patch_status(
        &shop.name_any(),
        &PatchParams::apply(AUTOSCALER_FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}

fn status_entry(shop: &OrderShop, role: Role) -> Option<&ServiceStatus> {
    shop.status
        .as_ref()?
        .services
        .iter()
        .find(|s| s.name == role.slug())
}

/// Whether the status still holds what the autoscaler wrote (its fields are
/// cleaned up when autoscaling is switched off).
pub(super) fn has_autoscaler_status(shop: &OrderShop) -> bool {
    shop.status.as_ref().is_some_and(|s| {
        s.backlog.is_some()
            || s.conditions.iter().any(|c| c.type_ == SCALING)
            || s.services.iter().any(|e| e.autoscaling.is_some())
    })
}

fn named(
    consumers: &[(Role, &AutoscalingSpec)],
    pick: impl Fn(&AutoscalingSpec) -> bool,
) -> Vec<String> {
    consumers
        .iter()
        .filter(|(_, a)| pick(a))
        .map(|(r, _)| r.slug().to_string())
        .collect()
}

fn health_message(health: &Health) -> String {
    scaling_condition(&[], health, None, Timestamp::UNIX_EPOCH).message
}

/// The status body as compared between polls: the time of the newest
/// recommendation in each window moves at every poll and needs no write of
/// its own (a restarted scaler takes it to be now, see
/// [`super::memory::from_status`]).
fn comparable(body: &serde_json::Value) -> serde_json::Value {
    let mut body = body.clone();
    if let Some(services) = body
        .pointer_mut("/status/services")
        .and_then(|s| s.as_array_mut())
    {
        for entry in services {
            if let Some(newest) = entry
                .pointer_mut("/autoscaling/memory/window")
                .and_then(|w| w.as_array_mut())
                .and_then(|w| w.last_mut())
            {
                newest["atMillis"] = json!(0);
            }
        }
    }
    body
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_window_time_is_ignored_between_polls() {
        let body = |newest: i64, oldest: i64| {
            json!({"status": {"services": [{"name": "order", "autoscaling": {"memory": {"window": [
                {"atMillis": oldest, "replicas": 5},
                {"atMillis": newest, "replicas": 1}
            ]}}}]}})
        };
        assert_eq!(comparable(&body(1_000, 1)), comparable(&body(2_000, 1)));
        assert_ne!(comparable(&body(1_000, 1)), comparable(&body(1_000, 2)));
    }

    #[test]
    fn event_notes_are_cut_on_a_character_boundary() {
        let cut = truncate("é".repeat(600), 1000);
        assert_eq!(cut.len(), 1000);
        assert_eq!(truncate("short".into(), 1000), "short");
    }
}
