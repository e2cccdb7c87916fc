//! The autoscaler's share of `OrderShop.status`: the `Scaling` condition,
//! the body of its server-side apply, and when to send it.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::crd::ServiceStatus;
use crate::crd::condition::{self, SCALING};

/// Where the autoscaler stands for one OrderShop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The backlog was read at the last poll.
    Measuring {
        /// `redis://host:port/db`.
        redis: String,
        consumers: Vec<String>,
        interval_ms: u64,
        dry_run: Vec<String>,
        paused: Vec<String>,
    },
    /// The backlog could not be read; the last decisions hold.
    Unavailable { message: String },
    /// `spec.suspend`: the autoscaler neither measures nor scales.
    Suspended,
    /// `spec.stopped`: everything runs at zero; the autoscaler stands aside.
    Stopped,
}

impl Health {
    pub fn readable(&self) -> bool {
        matches!(self, Health::Measuring { .. })
    }

    fn parts(&self) -> (bool, &'static str, String) {
        match self {
            Health::Measuring {
                redis,
                consumers,
                interval_ms,
                dry_run,
                paused,
            } => {
                let mut message = format!(
                    "measuring the backlog of {} every {interval_ms} ms on {redis}",
                    consumers.join(", ")
                );
                if !dry_run.is_empty() {
                    message.push_str(&format!(
                        "; dry run (decisions published, not applied): {}",
                        dry_run.join(", ")
                    ));
                }
                if !paused.is_empty() {
                    message.push_str(&format!("; paused: {}", paused.join(", ")));
                }
                (true, "BacklogMeasured", message)
            }
            Health::Unavailable { message } => (false, "BacklogUnavailable", message.clone()),
            Health::Suspended => (
                false,
                "Suspended",
                "spec.suspend is true: the autoscaler neither measures nor scales".into(),
            ),
            Health::Stopped => (
                false,
                "Stopped",
                "spec.stopped is true: every service runs at zero; the autoscaler neither measures nor scales".into(),
            ),
        }
    }
}

/// The `Scaling` condition for `health`, keeping the previous transition
/// time while its status holds.
pub fn scaling_condition(
    previous: &[Condition],
    health: &Health,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let (ok, reason, message) = health.parts();
    condition::transition(previous, SCALING, ok, reason, message, generation, now)
}

/// The body of the autoscaler's server-side apply to the OrderShop's status
/// subresource: only the fields it owns (see the module docs of
/// [`crate::autoscale`]). Apply it with
/// `PatchParams::apply(AUTOSCALER_FIELD_MANAGER)` to `ordershops/<name>/status`.
/// An apply without some field it sent before removes that field.
pub fn status_patch(
    consumers: &[ServiceStatus],
    total_backlog: Option<i64>,
    scaling: Option<&Condition>,
) -> serde_json::Value {
    let services: Vec<serde_json::Value> = consumers
        .iter()
        .map(|c| {
            // The reconcile's fields never leave here, whatever the caller set.
            let own = ServiceStatus {
                current_replicas: None,
                ready_replicas: None,
                autoscaled: None,
                ..c.clone()
            };
            serde_json::to_value(own).expect("status entries serialize")
        })
        .collect();
    let mut status = serde_json::Map::new();
    if let Some(total) = total_backlog {
        status.insert("backlog".into(), json!(total));
    }
    if !services.is_empty() {
        status.insert("services".into(), json!(services));
    }
    if let Some(condition) = scaling {
        status.insert("conditions".into(), json!([condition]));
    }
    json!({
        "apiVersion": format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION),
        "kind": "OrderShop",
        "status": status,
    })
}

/// While only numbers move (the backlog under steady load), the status is
/// rewritten at most this often: the API server and etcd need not follow
/// every poll. The Prometheus gauges do.
pub const STATUS_REFRESH: Duration = Duration::from_secs(5);

/// When to write the status: at once when a decision, a scale or the
/// condition changed (`urgent`), else when anything changed and the last
/// write is [`STATUS_REFRESH`] old.
#[derive(Debug, Default)]
pub struct StatusWriter<K> {
    last: Option<(K, serde_json::Value, Instant)>,
}

impl<K: PartialEq> StatusWriter<K> {
    pub fn due(&self, urgent: &K, body: &serde_json::Value, now: Instant) -> bool {
        match &self.last {
            None => true,
            Some((last_urgent, last_body, at)) => {
                last_urgent != urgent
                    || (last_body != body && now.duration_since(*at) >= STATUS_REFRESH)
            }
        }
    }

    pub fn written(&mut self, urgent: K, body: serde_json::Value, now: Instant) {
        self.last = Some((urgent, body, now));
    }

    /// Forget the last write (it must be repeated, e.g. after a conflict).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::condition::{FALSE, TRUE};
    use crate::crd::{ConsumerScalingStatus, ScalerMemory};

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn the_status_patch_names_only_autoscaler_fields() {
        let patch = status_patch(
            &[ServiceStatus {
                name: "inventory".into(),
                backlog: Some(42),
                desired_replicas: Some(3),
                current_replicas: Some(99),
                autoscaled: Some(true),
                autoscaling: Some(ConsumerScalingStatus {
                    memory: ScalerMemory {
                        last_desired: Some(3),
                        ..ScalerMemory::default()
                    },
                    ..ConsumerScalingStatus::default()
                }),
                ..ServiceStatus::default()
            }],
            Some(42),
            None,
        );
        let entry = &patch["status"]["services"][0];
        assert_eq!(entry["name"], "inventory");
        assert_eq!(entry["backlog"], 42);
        assert_eq!(entry["desiredReplicas"], 3);
        assert_eq!(entry["autoscaling"]["memory"]["lastDesired"], 3);
        for reconcile_field in ["currentReplicas", "readyReplicas", "autoscaled"] {
            assert!(entry.get(reconcile_field).is_none(), "{reconcile_field}");
        }
        assert_eq!(patch["status"]["backlog"], 42);
        assert!(patch["status"].get("conditions").is_none());
        assert_eq!(patch["apiVersion"], "ordershop.io/v1alpha1");
    }

    #[test]
    fn an_empty_patch_releases_every_field() {
        let patch = status_patch(&[], None, None);
        assert_eq!(patch["status"], json!({}));
    }

    #[test]
    fn the_condition_says_why_the_backlog_is_unknown() {
        let down = Health::Unavailable {
            message: "Redis at redis://r:6379/0 could not be read: refused; holding the last decisions: order 3".into(),
        };
        let c = scaling_condition(&[], &down, Some(2), now());
        assert_eq!((c.type_.as_str(), c.status.as_str()), ("Scaling", FALSE));
        assert_eq!(c.reason, "BacklogUnavailable");
        assert!(c.message.contains("holding the last decisions: order 3"));
        assert_eq!(c.observed_generation, Some(2));

        let up = Health::Measuring {
            redis: "redis://r:6379/0".into(),
            consumers: vec!["inventory".into(), "order".into()],
            interval_ms: 1000,
            dry_run: vec!["order".into()],
            paused: vec![],
        };
        let c = scaling_condition(&[c], &up, Some(2), now());
        assert_eq!(c.status, TRUE);
        assert_eq!(
            c.message,
            "measuring the backlog of inventory, order every 1000 ms on redis://r:6379/0; dry run (decisions published, not applied): order"
        );
    }

    #[test]
    fn urgent_changes_are_written_at_once_numbers_at_most_every_refresh() {
        let t0 = Instant::now();
        let mut writer = StatusWriter::default();
        let body = |n: i64| json!({ "status": { "backlog": n } });
        assert!(writer.due(&1, &body(5), t0), "first write");
        writer.written(1, body(5), t0);
        assert!(
            !writer.due(&1, &body(5), t0 + STATUS_REFRESH * 2),
            "nothing new"
        );
        assert!(
            !writer.due(&1, &body(6), t0 + Duration::from_secs(1)),
            "numbers only, too soon"
        );
        assert!(writer.due(&1, &body(6), t0 + STATUS_REFRESH));
        assert!(
            writer.due(&2, &body(5), t0 + Duration::from_millis(1)),
            "urgent"
        );
        writer.reset();
        assert!(writer.due(&1, &body(5), t0));
    }
}
