//! Dead letters made visible to whoever runs the cluster. For every
//! OrderShop, every [`POLL`]: one pipelined round trip to its Redis (with
//! the services' credentials, see [`crate::autoscale::redis_target`]) counts
//! each topic's dead-letter stream and each queue channel's dead-letter
//! list, all named by `ordershop_topology`. The counts go to
//! `ordershop_operator_dead_letters{namespace,ordershop,kind,name}` and
//! into the `DeadLetters` condition: `True` naming the non-empty ones,
//! `False` when there are none, `Unknown` while Redis cannot be read.
//! `ordershop dead-letters list|show|redrive` is how to act on them.
//!
//! Like the autoscaler it runs only while this replica leads, reads the
//! controller's OrderShop cache, and writes only its own condition
//! (server-side apply under [`DEAD_LETTERS_FIELD_MANAGER`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use ordershop_topology::{QueueKeys, Role, StreamKeys, TOPICS};
use redis::aio::ConnectionManager;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::autoscale::redis_target::{RedisAddress, RedisTarget};
use crate::crd::OrderShop;
use crate::crd::condition::{self, DEAD_LETTERS, UNKNOWN};
use crate::metrics::{DeadLetterLabels, Metrics};

/// Field manager of the `DeadLetters` condition.
pub const DEAD_LETTERS_FIELD_MANAGER: &str = "ordershop-dead-letters";

/// How often Redis is asked. Dead letters are rare and stay until someone
/// acts; a few seconds late costs nothing.
const POLL: Duration = Duration::from_secs(10);
/// How often the set of OrderShops, and each one's generation, is looked at:
/// a new OrderShop gets its watch, a changed one its condition at the new
/// generation, within this.
const TICK: Duration = Duration::from_secs(1);
/// The password is read again this often (a rotation is picked up).
const CREDENTIALS_REFRESH: Duration = Duration::from_secs(60);
/// A count that has not answered by then counts as Redis unreadable.
const POLL_BUDGET: Duration = Duration::from_secs(5);

/// Each place's count, or why Redis could not be read.
pub type Counts = Result<Vec<(Place, i64)>, String>;

/// One place dead letters are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// `topic` or `channel`.
    pub kind: &'static str,
    pub name: String,
    key: String,
    /// `XLEN` for a stream, `LLEN` for a list.
    command: &'static str,
}

/// Every topic and every channel of `ordershop_topology`: a fixed set, so
/// the metric's cardinality is bounded whatever is in Redis.
pub fn places() -> Vec<Place> {
    let topics = TOPICS.iter().map(|topic| Place {
        kind: "topic",
        name: (*topic).to_owned(),
        key: StreamKeys::new(topic).dead,
        command: "XLEN",
    });
    let channels = Role::ALL
        .into_iter()
        .flat_map(Role::channels)
        .map(|channel| Place {
            kind: "channel",
            key: QueueKeys::new(&channel).dead,
            name: channel,
            command: "LLEN",
        });
    topics.chain(channels).collect()
}

/// The `DeadLetters` condition for a count (or why there is none),
/// keeping the previous transition time while its status holds.
pub fn dead_letter_condition(
    previous: &[Condition],
    counts: &Counts,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let counts = match counts {
        Ok(counts) => counts,
        Err(why) => {
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == DEAD_LETTERS && c.status == UNKNOWN)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            return Condition {
                type_: DEAD_LETTERS.into(),
                status: UNKNOWN.into(),
                reason: "RedisUnreadable".into(),
                message: why.clone(),
                observed_generation: generation,
                last_transition_time,
            };
        }
    };
    let kept: Vec<String> = counts
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(place, count)| format!("{} {} {count}", place.kind, place.name))
        .collect();
    let total: i64 = counts.iter().map(|(_, count)| count).sum();
    if total == 0 {
        return condition::transition(
            previous,
            DEAD_LETTERS,
            false,
            "NoDeadLetters",
            "no topic or channel holds dead letters",
            generation,
            now,
        );
    }
    condition::transition(
        previous,
        DEAD_LETTERS,
        true,
        "DeadLettersKept",
        format!(
            "{total} dead letter(s): {}; inspect and redrive with `ordershop dead-letters`",
            kept.join(", ")
        ),
        generation,
        now,
    )
}

/// The dead-letter watch of every OrderShop this operator reconciles.
#[derive(Debug)]
pub struct DeadLetterWatch {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    metrics: Metrics,
    shops: Store<OrderShop>,
    in_cluster: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("in_cluster", &self.in_cluster)
            .finish_non_exhaustive()
    }
}

impl DeadLetterWatch {
    pub fn new(client: Client, metrics: Metrics, shops: Store<OrderShop>) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                metrics,
                shops,
                in_cluster: crate::autoscale::redis_target::in_cluster(),
            }),
        }
    }

    /// Watches every OrderShop until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        info!("dead-letter watch running");
        crate::shop_tasks::run_per_shop(
            &self.shared.shops,
            TICK,
            &stop,
            |shop| shop.metadata.deletion_timestamp.is_none(),
            |key| ShopWatch::new(self.shared.clone(), key).run(stop.clone()),
        )
        .await;
        info!("dead-letter watch stopped");
    }
}

/// One OrderShop's watch, alive while the OrderShop is.
struct ShopWatch {
    shared: Arc<Shared>,
    key: ObjectRef<OrderShop>,
    link: Option<(RedisTarget, ConnectionManager, Instant)>,
    counts: Option<(Counts, Instant)>,
    /// The condition last applied (without its time) and for which generation.
    written: Option<(String, String, String, Option<i64>)>,
}

impl ShopWatch {
    fn new(shared: Arc<Shared>, key: ObjectRef<OrderShop>) -> Self {
        Self {
            shared,
            key,
            link: None,
            counts: None,
            written: None,
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        while let Some(shop) = self.shared.shops.get(&self.key) {
            if shop.metadata.deletion_timestamp.is_some() {
                break;
            }
            if self
                .counts
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() >= POLL)
            {
                let counts = self.count(&shop).await;
                self.export(&counts);
                self.counts = Some((counts, Instant::now()));
            }
            // Out and back: `report` needs `self` mutably, not a copy.
            if let Some((counts, at)) = self.counts.take() {
                self.report(&shop, &counts).await;
                self.counts = Some((counts, at));
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(TICK) => {}
            }
        }
        for place in places() {
            self.shared
                .metrics
                .forget_dead_letters(&self.labels(&place));
        }
    }

    fn labels(&self, place: &Place) -> DeadLetterLabels {
        DeadLetterLabels {
            namespace: self.key.namespace.clone().unwrap_or_default(),
            ordershop: self.key.name.clone(),
            kind: place.kind.into(),
            name: place.name.clone(),
        }
    }

    /// The gauges follow the count; an unreadable Redis removes them (no
    /// figure rather than a stale one).
    fn export(&self, counts: &Counts) {
        match counts {
            Ok(counts) => {
                for (place, count) in counts {
                    self.shared
                        .metrics
                        .record_dead_letters(&self.labels(place), *count);
                }
            }
            Err(_) => {
                for place in places() {
                    self.shared
                        .metrics
                        .forget_dead_letters(&self.labels(&place));
                }
            }
        }
    }

    async fn count(&mut self, shop: &OrderShop) -> Counts {
        let address = RedisAddress::of(shop);
        if address.managed && !self.shared.in_cluster {
            return Err(format!(
                "the managed Redis {} is reachable only from inside the cluster",
                address.url
            ));
        }
        let stale = self.link.as_ref().is_none_or(|(target, _, resolved)| {
            target.address != address || resolved.elapsed() >= CREDENTIALS_REFRESH
        });
        if stale {
            let namespace = shop.namespace().unwrap_or_default();
            let target = RedisTarget::resolve(&self.shared.client, &namespace, &address)
                .await
                .map_err(|e| e.to_string())?;
            let conn = target.connect().map_err(|e| e.to_string())?;
            self.link = Some((target, conn, Instant::now()));
        }
        let Some((_, conn, _)) = self.link.as_mut() else {
            return Err("no connection".into());
        };
        let places = places();
        let mut pipe = redis::pipe();
        for place in &places {
            pipe.cmd(place.command).arg(&place.key);
        }
        let answer = tokio::time::timeout(POLL_BUDGET, pipe.query_async::<Vec<i64>>(conn)).await;
        match answer {
            Ok(Ok(counts)) => Ok(places.into_iter().zip(counts).collect()),
            Ok(Err(err)) => {
                // A fresh connection (and password) next time.
                self.link = None;
                Err(format!("reading {}: {err}", address.url))
            }
            Err(_) => {
                self.link = None;
                Err(format!(
                    "{} did not answer within {POLL_BUDGET:?}",
                    address.url
                ))
            }
        }
    }

    /// Applies the condition when it or the generation changed.
    async fn report(&mut self, shop: &OrderShop, counts: &Counts) {
        let previous = shop
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let condition =
            dead_letter_condition(previous, counts, shop.metadata.generation, Timestamp::now());
        let fingerprint = (
            condition.status.clone(),
            condition.reason.clone(),
            condition.message.clone(),
            condition.observed_generation,
        );
        if self.written.as_ref() == Some(&fingerprint) {
            return;
        }
        let body = json!({
            "apiVersion": format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION),
            "kind": "OrderShop",
            "status": { "conditions": [condition] },
        });
        let api: Api<OrderShop> = Api::namespaced(
            self.shared.client.clone(),
            &shop.namespace().unwrap_or_default(),
        );
        match api
            .patch_status(
                &shop.name_any(),
                &PatchParams::apply(DEAD_LETTERS_FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => {
                debug!(ordershop = %self.key, status = %fingerprint.0, reason = %fingerprint.1, "DeadLetters condition written");
                self.written = Some(fingerprint);
            }
            // Tried again next tick.
            Err(error) => {
                warn!(ordershop = %self.key, %error, "cannot write the DeadLetters condition")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::condition::{FALSE, TRUE};

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    #[test]
    fn every_topic_and_channel_of_the_topology_is_counted() {
        let places = places();
        assert_eq!(
            places.iter().filter(|p| p.kind == "topic").count(),
            TOPICS.len()
        );
        let billing = places.iter().find(|p| p.name == "billing").unwrap();
        assert_eq!(
            (billing.key.as_str(), billing.command),
            ("{events:billing}:dead", "XLEN")
        );
        let mail = places
            .iter()
            .find(|p| p.name == "mail-service.send")
            .expect("the mail channel");
        assert_eq!(
            (mail.key.as_str(), mail.command),
            ("queue:{mail-service.send}:dead", "LLEN")
        );
    }

    #[test]
    fn the_condition_names_what_holds_dead_letters() {
        let places = places();
        let counts: Vec<(Place, i64)> = places
            .iter()
            .map(|p| {
                let n = match p.name.as_str() {
                    "billing" => 2,
                    "mail-service.send" => 1,
                    _ => 0,
                };
                (p.clone(), n)
            })
            .collect();
        let kept = dead_letter_condition(&[], &Ok(counts), Some(3), now());
        assert_eq!(
            (kept.status.as_str(), kept.reason.as_str()),
            (TRUE, "DeadLettersKept")
        );
        assert!(
            kept.message
                .starts_with("3 dead letter(s): topic billing 2, channel mail-service.send 1"),
            "{}",
            kept.message
        );
        assert_eq!(kept.observed_generation, Some(3));

        let none: Vec<(Place, i64)> = places.iter().map(|p| (p.clone(), 0)).collect();
        let clear = dead_letter_condition(&[kept], &Ok(none), Some(3), now());
        assert_eq!(
            (clear.status.as_str(), clear.reason.as_str()),
            (FALSE, "NoDeadLetters")
        );

        let unknown = dead_letter_condition(&[clear], &Err("redis down".into()), Some(4), now());
        assert_eq!(
            (
                unknown.status.as_str(),
                unknown.reason.as_str(),
                unknown.message.as_str()
            ),
            (UNKNOWN, "RedisUnreadable", "redis down")
        );
    }
}
