//! Prometheus metrics of the operator (text exposition on `/metrics`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of an error counter: the error's kind, never its message (bounded cardinality).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

/// Labels of one consumer of one OrderShop.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub namespace: String,
    pub ordershop: String,
    /// The role slug (`inventory`, `read-model`, ...).
    pub service: String,
}

/// Labels of one topic's or channel's dead letters in one OrderShop.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    pub namespace: String,
    pub ordershop: String,
    /// `topic` (an event stream) or `channel` (a queue channel).
    pub kind: String,
    /// The topic (`billing`) or channel (`mail-service.send`).
    pub name: String,
}

/// The parts of one consumer's backlog, as the autoscaler measured them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BacklogPartsValues {
    pub lag: i64,
    pub pending: i64,
    pub waiting: i64,
    pub delayed: i64,
    pub in_flight: i64,
}

/// Label of the autoscaler's poll counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    /// `measured`, or `unavailable` when Redis could not be read.
    pub result: String,
}

/// Every metric the operator exports, registered once.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    backlog: Family<ConsumerLabels, Gauge>,
    decided_replicas: Family<ConsumerLabels, Gauge>,
    leader: Gauge,
    // --- autoscaler (operator/src/autoscale) ---
    lag: Family<ConsumerLabels, Gauge>,
    pending: Family<ConsumerLabels, Gauge>,
    waiting: Family<ConsumerLabels, Gauge>,
    delayed: Family<ConsumerLabels, Gauge>,
    in_flight: Family<ConsumerLabels, Gauge>,
    polls: Family<PollLabels, Counter>,
    redis_commands: Counter,
    poll_duration: Histogram,
    // --- dead letters (operator/src/dead_letters.rs) ---
    dead_letters: Family<DeadLetterLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ordershop_operator");
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconciliations started", reconciles.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by error kind",
            errors.clone(),
        );
        // 5 ms .. ~20 s: an apply of ~35 children takes tens of milliseconds
        // on a quiet API server and seconds on a loaded one.
        let duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
        ]);
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconciliation",
            duration.clone(),
        );
        let backlog = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "consumer_backlog",
            "Waiting plus in-flight work of one consumer, as last measured",
            backlog.clone(),
        );
        let decided_replicas = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "consumer_decided_replicas",
            "Replica count the autoscaler last decided for one consumer",
            decided_replicas.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        // --- autoscaler (operator/src/autoscale) ---
        let part = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<ConsumerLabels, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let lag = part(
            &mut registry,
            "consumer_lag",
            "Stream entries not yet delivered to one consumer's groups",
        );
        let pending = part(
            &mut registry,
            "consumer_pending",
            "Stream entries delivered to one consumer and not acknowledged",
        );
        let waiting = part(
            &mut registry,
            "consumer_waiting",
            "Queue messages waiting for one consumer",
        );
        let delayed = part(
            &mut registry,
            "consumer_delayed",
            "Queue messages of one consumer parked for a retry",
        );
        let in_flight = part(
            &mut registry,
            "consumer_in_flight",
            "Queue messages received by one consumer and not acknowledged",
        );
        let polls = Family::<PollLabels, Counter>::default();
        registry.register(
            "autoscaler_polls",
            "Backlog measurements of one OrderShop, by result",
            polls.clone(),
        );
        let redis_commands = Counter::default();
        registry.register(
            "autoscaler_redis_commands",
            "Redis commands sent by the autoscaler's measurements",
            redis_commands.clone(),
        );
        // 1 ms .. 5 s: a pipelined measurement takes about a millisecond on
        // a near Redis; the top buckets catch a Redis that stalls.
        let poll_duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        registry.register(
            "autoscaler_poll_duration_seconds",
            "Duration of one autoscaler poll of one OrderShop (measure, decide, act)",
            poll_duration.clone(),
        );
        let dead_letters = Family::<DeadLetterLabels, Gauge>::default();
        registry.register(
            "dead_letters",
            "Dead letters kept for one topic or queue channel of one OrderShop (ordershop dead-letters list)",
            dead_letters.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            errors,
            duration,
            backlog,
            decided_replicas,
            leader,
            lag,
            pending,
            waiting,
            delayed,
            in_flight,
            polls,
            redis_commands,
            poll_duration,
            dead_letters,
        }
    }

    pub fn reconcile_started(&self) {
        self.reconciles.inc();
    }

    pub fn reconcile_finished(&self, took: Duration) {
        self.duration.observe(took.as_secs_f64());
    }

    pub fn reconcile_failed(&self, error_kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                error: error_kind.into(),
            })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The autoscaler's latest measurement and decision for one consumer.
    /// `backlog` is `None` until the consumer's backlog was first measured:
    /// the gauge then stays absent rather than reading as idle.
    pub fn record_consumer(
        &self,
        consumer: &ConsumerLabels,
        backlog: Option<i64>,
        decided_replicas: i64,
    ) {
        if let Some(backlog) = backlog {
            self.backlog.get_or_create(consumer).set(backlog);
        }
        self.decided_replicas
            .get_or_create(consumer)
            .set(decided_replicas);
    }

    /// Drops a consumer's series (its OrderShop was deleted or autoscaling disabled).
    pub fn forget_consumer(&self, consumer: &ConsumerLabels) {
        self.backlog.remove(consumer);
        self.decided_replicas.remove(consumer);
        for part in [
            &self.lag,
            &self.pending,
            &self.waiting,
            &self.delayed,
            &self.in_flight,
        ] {
            part.remove(consumer);
        }
    }

    /// The parts of a consumer's backlog at the autoscaler's last measurement.
    pub fn record_backlog_parts(&self, consumer: &ConsumerLabels, parts: BacklogPartsValues) {
        self.lag.get_or_create(consumer).set(parts.lag);
        self.pending.get_or_create(consumer).set(parts.pending);
        self.waiting.get_or_create(consumer).set(parts.waiting);
        self.delayed.get_or_create(consumer).set(parts.delayed);
        self.in_flight.get_or_create(consumer).set(parts.in_flight);
    }

    /// One autoscaler poll of one OrderShop.
    pub fn autoscaler_polled(&self, measured: bool, redis_commands: u64, took: Duration) {
        let result = if measured { "measured" } else { "unavailable" };
        self.polls
            .get_or_create(&PollLabels {
                result: result.into(),
            })
            .inc();
        self.redis_commands.inc_by(redis_commands);
        self.poll_duration.observe(took.as_secs_f64());
    }

    /// Dead letters of one topic or channel at the last count.
    pub fn record_dead_letters(&self, labels: &DeadLetterLabels, count: i64) {
        self.dead_letters.get_or_create(labels).set(count);
    }

    /// Drops a series of [`Self::record_dead_letters`] (its OrderShop is gone,
    /// or its Redis cannot be read: no figure rather than a stale one).
    pub fn forget_dead_letters(&self, labels: &DeadLetterLabels) {
        self.dead_letters.remove(labels);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let m = Metrics::new();
        m.reconcile_started();
        m.reconcile_finished(Duration::from_millis(30));
        m.reconcile_failed("kube");
        m.set_leader(true);
        let consumer = ConsumerLabels {
            namespace: "ns".into(),
            ordershop: "shop".into(),
            service: "inventory".into(),
        };
        m.record_consumer(&consumer, Some(250), 3);
        m.record_backlog_parts(
            &consumer,
            BacklogPartsValues {
                lag: 200,
                in_flight: 50,
                ..BacklogPartsValues::default()
            },
        );
        m.autoscaler_polled(true, 95, Duration::from_millis(2));
        let dead = DeadLetterLabels {
            namespace: "ns".into(),
            ordershop: "shop".into(),
            kind: "channel".into(),
            name: "mail-service.send".into(),
        };
        m.record_dead_letters(&dead, 2);
        let text = m.encode();
        for needle in [
            "ordershop_operator_reconciles_total 1",
            "ordershop_operator_reconcile_errors_total{error=\"kube\"} 1",
            "ordershop_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 1",
            "ordershop_operator_leader 1",
            "ordershop_operator_consumer_backlog{namespace=\"ns\",ordershop=\"shop\",service=\"inventory\"} 250",
            "ordershop_operator_consumer_decided_replicas{namespace=\"ns\",ordershop=\"shop\",service=\"inventory\"} 3",
            "ordershop_operator_consumer_lag{namespace=\"ns\",ordershop=\"shop\",service=\"inventory\"} 200",
            "ordershop_operator_consumer_in_flight{namespace=\"ns\",ordershop=\"shop\",service=\"inventory\"} 50",
            "ordershop_operator_autoscaler_polls_total{result=\"measured\"} 1",
            "ordershop_operator_autoscaler_redis_commands_total 95",
            "ordershop_operator_dead_letters{namespace=\"ns\",ordershop=\"shop\",kind=\"channel\",name=\"mail-service.send\"} 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        m.forget_consumer(&consumer);
        assert!(!m.encode().contains("service=\"inventory\""));
        m.forget_dead_letters(&dead);
        assert!(!m.encode().contains("mail-service.send"));
    }
}
