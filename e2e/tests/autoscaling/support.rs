//! An OrderShop in external-Redis mode on a loopback `redis-server` of the
//! test's own, with its operator running out of cluster, and the means to
//! push backlogs into its Redis and watch what the autoscaler makes of them.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::operator::{Operator, Options};
use ordershop_e2e::{cluster, eventually_async, install};
use ordershop_operator::crd::{
    AutoscalingSpec, ExternalRedisSpec, OrderShop, OrderShopSpec, SecretKeyRef, ServiceStatus,
};
use ordershop_operator::names::Names;
use ordershop_testkit::RedisServer;
use ordershop_topology::{QueueKeys, Role, StreamKeys};
use redis::aio::MultiplexedConnection;
use serde_json::Value;

/// The password of every test Redis: the autoscaler must read it from the
/// Secret the spec names, as the services do.
pub(crate) const PASSWORD: &str = "e2e-autoscaling-pw";
/// Everything but the reactions themselves: creating the OrderShop, first
/// poll, status writes (throttled to every few seconds when only numbers move).
pub(crate) const SETTLE: Duration = Duration::from_secs(60);

/// Autoscaling that reacts fast and scales in all at once after `window_s`.
pub(crate) fn autoscaling(min: i32, max: i32, target: i64, window_s: i32) -> AutoscalingSpec {
    AutoscalingSpec {
        enabled: true,
        min_replicas: min,
        max_replicas: max,
        target_backlog_per_replica: target,
        scale_down_stabilization_seconds: window_s,
        scale_down_max_step: 100,
        scale_down_interval_seconds: 0,
        scale_up_max_step: None,
        dry_run: false,
        paused: false,
    }
}

/// One test's OrderShop, Redis and operator.
pub(crate) struct Shop {
    pub(crate) client: Client,
    pub(crate) name: String,
    pub(crate) poll: Duration,
    pub(crate) redis: RedisServer,
    pub(crate) operator: Operator,
    // Dropped last: deleting the namespace ends everything in it.
    pub(crate) ns: TestNamespace,
}

impl std::fmt::Debug for Shop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop")
            .field("namespace", &self.ns.name)
            .field("name", &self.name)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl Shop {
    /// Starts Redis (with a password) and the operator, creates the
    /// OrderShop with the given autoscaled consumers, and waits for the
    /// autoscaler's first report.
    pub(crate) async fn start(
        prefix: &str,
        poll_ms: i32,
        consumers: &[(Role, AutoscalingSpec)],
    ) -> Self {
        let client = cluster::connect().await;
        install::chart();
        let ns = TestNamespace::create(&client, prefix).await;
        let redis =
            RedisServer::spawn(&["--requirepass", PASSWORD]).unwrap_or_else(|e| panic!("{e}"));
        let operator = Operator::start(Options::for_namespace(&ns.name));
        let shop = Self {
            client,
            name: "shop".into(),
            poll: Duration::from_millis(u64::try_from(poll_ms).expect("positive")),
            redis,
            operator,
            ns,
        };
        shop.create(poll_ms, consumers).await;
        shop.wait_scaling("True", "BacklogMeasured").await;
        shop
    }

    async fn create(&self, poll_ms: i32, consumers: &[(Role, AutoscalingSpec)]) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns.name);
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some("redis-auth".into()),
                        ..ObjectMeta::default()
                    },
                    string_data: Some([("password".to_string(), PASSWORD.to_string())].into()),
                    ..Secret::default()
                },
            )
            .await
            .expect("creating the Redis password Secret");
        let mut spec = OrderShopSpec::default();
        spec.autoscaling.poll_interval_ms = poll_ms;
        spec.redis.external = Some(ExternalRedisSpec {
            url: format!("redis://127.0.0.1:{}/0", self.redis.port()),
            password_secret_ref: Some(SecretKeyRef {
                name: "redis-auth".into(),
                key: "password".into(),
            }),
            ca_secret_ref: None,
        });
        for (role, autoscaling) in consumers {
            *consumer_autoscaling(&mut spec, *role) = autoscaling.clone();
        }
        self.shops()
            .create(&PostParams::default(), &OrderShop::new(&self.name, spec))
            .await
            .expect("creating the OrderShop");
        for (role, _) in consumers {
            eventually_async(
                &format!("Deployment of {} at its min replicas", role.slug()),
                SETTLE,
                || async move { self.replicas(*role).await.filter(|n| *n >= 0) },
            )
            .await;
        }
    }

    pub(crate) fn shops(&self) -> Api<OrderShop> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub(crate) fn deployment_name(&self, role: Role) -> String {
        Names::new(&self.name).service(role)
    }

    pub(crate) async fn shop(&self) -> Option<OrderShop> {
        self.shops().get(&self.name).await.ok()
    }

    /// `spec.replicas` of a role's Deployment.
    pub(crate) async fn replicas(&self, role: Role) -> Option<i32> {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns.name)
            .get(&self.deployment_name(role))
            .await
            .ok()?
            .spec?
            .replicas
    }

    pub(crate) async fn deployment(&self, role: Role) -> Deployment {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns.name)
            .get(&self.deployment_name(role))
            .await
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.deployment_name(role)))
    }

    /// Waits until `role`'s Deployment asks for `n` replicas; returns how
    /// long that took from `since`.
    pub(crate) async fn wait_replicas(
        &self,
        role: Role,
        n: i32,
        since: Instant,
        within: Duration,
    ) -> Duration {
        eventually_async(
            &format!("{} at {n} replicas", role.slug()),
            within,
            || async move { (self.replicas(role).await == Some(n)).then(|| since.elapsed()) },
        )
        .await
    }

    /// The role's entry in `status.services`.
    pub(crate) async fn service_status(&self, role: Role) -> Option<ServiceStatus> {
        self.shop()
            .await?
            .status?
            .services
            .into_iter()
            .find(|s| s.name == role.slug())
    }

    /// Waits for a status entry of `role` that satisfies `check`.
    pub(crate) async fn wait_status<T>(
        &self,
        what: &str,
        role: Role,
        check: impl Fn(&ServiceStatus) -> Option<T>,
    ) -> T {
        let check = &check;
        eventually_async(&format!("{}: {what}", role.slug()), SETTLE, || async move {
            check(&self.service_status(role).await?)
        })
        .await
    }

    /// The `Scaling` condition.
    pub(crate) async fn scaling(&self) -> Option<Condition> {
        self.shop()
            .await?
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Scaling")
    }

    /// Waits until the condition `type_` has `status` and `reason`.
    pub(crate) async fn wait_condition(
        &self,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> Condition {
        eventually_async(
            &format!("{type_} condition {status} ({reason})"),
            SETTLE,
            || async move {
                self.shop()
                    .await?
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == type_ && c.status == status && c.reason == reason)
            },
        )
        .await
    }

    pub(crate) async fn wait_scaling(&self, status: &str, reason: &str) -> Condition {
        eventually_async(
            &format!("Scaling condition {status} ({reason})"),
            SETTLE,
            || async move {
                self.scaling()
                    .await
                    .filter(|c| c.status == status && c.reason == reason)
            },
        )
        .await
    }

    /// Events the autoscaler published about the OrderShop: (reason, note).
    pub(crate) async fn autoscaler_events(&self) -> Vec<(String, String)> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns.name)
            .list(&ListParams::default())
            .await
            .expect("listing Events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(self.name.as_str())
                    && e.reporting_controller.as_deref() == Some("ordershop-autoscaler")
            })
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits for an autoscaler Event with `reason` whose note contains `needle`.
    pub(crate) async fn wait_event(&self, reason: &str, needle: &str) -> String {
        eventually_async(
            &format!("an Event {reason} with {needle:?}"),
            SETTLE,
            || async move {
                self.autoscaler_events()
                    .await
                    .into_iter()
                    .find(|(r, note)| r == reason && note.contains(needle))
                    .map(|(_, note)| note)
            },
        )
        .await
    }

    /// A per-consumer metric of this OrderShop, from the operator's `/metrics`.
    pub(crate) async fn consumer_metric(&self, name: &str, role: Role) -> Option<f64> {
        let labels = format!(
            "{{namespace=\"{}\",ordershop=\"{}\",service=\"{}\"}} ",
            self.ns.name,
            self.name,
            role.slug()
        );
        let text = self.operator.metrics().await?;
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(&labels)?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Merge-patches the OrderShop's spec.
    pub(crate) async fn patch_spec(&self, spec: Value) {
        self.shops()
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .expect("patching the OrderShop spec");
    }

    /// A connection to the test's Redis.
    pub(crate) async fn redis(&self) -> MultiplexedConnection {
        let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.redis.port());
        redis::Client::open(url)
            .expect("Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to the test Redis")
    }
}

fn consumer_autoscaling(spec: &mut OrderShopSpec, role: Role) -> &mut AutoscalingSpec {
    let s = &mut spec.services;
    let consumer = match role {
        Role::ReadModel => &mut s.read_model,
        Role::Customer => &mut s.customer,
        Role::Product => &mut s.product,
        Role::Inventory => &mut s.inventory,
        Role::Cart => &mut s.cart,
        Role::Order => &mut s.order,
        Role::Billing => &mut s.billing,
        Role::Shipping => &mut s.shipping,
        Role::Crm => &mut s.crm,
        Role::Mail => &mut s.mail,
        other => panic!("{other:?} consumes nothing"),
    };
    &mut consumer.autoscaling
}

/// The queue keys of the first channel `role` serves.
pub(crate) fn queue(role: Role) -> QueueKeys {
    let channel = role
        .channels()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{} serves no channel", role.slug()));
    QueueKeys::new(&channel)
}

/// Pushes `n` message ids onto the waiting list of `role`'s first channel.
pub(crate) async fn push_waiting(conn: &mut MultiplexedConnection, role: Role, n: usize) {
    let ids: Vec<String> = (0..n).map(|i| format!("e2e-{i}")).collect();
    let _: () = redis::cmd("LPUSH")
        .arg(&queue(role).waiting)
        .arg(&ids)
        .query_async(conn)
        .await
        .expect("LPUSH");
}

/// Moves `n` messages of `role`'s first channel from waiting to in flight
/// (as a consumer's receive does): `n` waiting ids leave, `n` appear in flight.
pub(crate) async fn receive(conn: &mut MultiplexedConnection, role: Role, n: usize) {
    let keys = queue(role);
    for _ in 0..n {
        let _: Option<String> = redis::cmd("LMOVE")
            .arg(&keys.waiting)
            .arg(&keys.inflight)
            .arg("RIGHT")
            .arg("LEFT")
            .query_async(conn)
            .await
            .expect("LMOVE");
    }
}

/// Acknowledges `n` in-flight messages of `role`'s first channel.
pub(crate) async fn ack_in_flight(conn: &mut MultiplexedConnection, role: Role, n: usize) {
    for _ in 0..n {
        let _: Option<String> = redis::cmd("RPOP")
            .arg(&queue(role).inflight)
            .query_async(conn)
            .await
            .expect("RPOP");
    }
}

/// Empties the waiting list of `role`'s first channel.
pub(crate) async fn drain_waiting(conn: &mut MultiplexedConnection, role: Role) {
    let _: () = redis::cmd("DEL")
        .arg(&queue(role).waiting)
        .query_async(conn)
        .await
        .expect("DEL");
}

/// Appends `n` events to the stream of `topic`; returns their IDs.
pub(crate) async fn add_events(
    conn: &mut MultiplexedConnection,
    topic: &str,
    n: usize,
) -> Vec<String> {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD")
            .arg(StreamKeys::new(topic).stream)
            .arg("*")
            .arg("e2e")
            .arg(i);
    }
    pipe.query_async(conn).await.expect("XADD")
}

/// In one step, so the operator never measures a state in between: appends
/// `n` events to `topic`'s stream, delivers the first `delivered` of them to
/// `role`'s group and deletes the undelivered entry at `deleted` (as a
/// retention job might), which makes Redis report the group's lag as nil.
/// Returns the IDs appended.
pub(crate) async fn add_deliver_and_delete(
    conn: &mut MultiplexedConnection,
    role: Role,
    topic: &str,
    (n, delivered, deleted): (usize, usize, usize),
) -> Vec<String> {
    assert!(
        delivered <= deleted && deleted < n,
        "the deleted entry is undelivered"
    );
    redis::Script::new(
        r"
        local ids = {}
        for i = 1, tonumber(ARGV[2]) do
            ids[i] = redis.call('XADD', KEYS[1], '*', 'e2e', i)
        end
        redis.call('XREADGROUP', 'GROUP', ARGV[1], 'e2e-consumer',
            'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
        redis.call('XDEL', KEYS[1], ids[tonumber(ARGV[4]) + 1])
        return ids
        ",
    )
    .key(StreamKeys::new(topic).stream)
    .arg(role.service_name())
    .arg(n)
    .arg(delivered)
    .arg(deleted)
    .invoke_async(conn)
    .await
    .expect("XADD, XREADGROUP and XDEL in one script")
}

/// Delivers up to `n` new entries of `topic` to `role`'s consumer group (as
/// a consumer of that role would) and returns their IDs.
pub(crate) async fn deliver(
    conn: &mut MultiplexedConnection,
    role: Role,
    topic: &str,
    n: usize,
) -> Vec<String> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(role.service_name())
        .arg("e2e-consumer")
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(StreamKeys::new(topic).stream)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|entry| entry.id)
        .collect()
}

/// Acknowledges entries of `topic` for `role`'s consumer group.
pub(crate) async fn ack(conn: &mut MultiplexedConnection, role: Role, topic: &str, ids: &[String]) {
    let _: u64 = redis::cmd("XACK")
        .arg(StreamKeys::new(topic).stream)
        .arg(role.service_name())
        .arg(ids)
        .query_async(conn)
        .await
        .expect("XACK");
}

/// The consumer groups of `topic`'s stream.
pub(crate) async fn groups(conn: &mut MultiplexedConnection, topic: &str) -> Vec<String> {
    let reply: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(StreamKeys::new(topic).stream)
        .query_async(conn)
        .await
        .unwrap_or_default();
    reply.groups.into_iter().map(|g| g.name).collect()
}

/// The `p`-th percentile (0..=100) of `samples`, nearest rank.
pub(crate) fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}
