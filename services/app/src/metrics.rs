//! What the services report to Prometheus ([`ordershop_metrics::families`]):
//! each event a saga handles, with how it ended and how long after its
//! append; each page the read model applies, with the lag of its newest event.

use std::time::{SystemTime, UNIX_EPOCH};

use ordershop_client::HandlerError;
use ordershop_metrics::families::{EVENTS_HANDLED, HANDLING_LAG, handled, handler};
use ordershop_topology::{EntryId, Role};

/// A saga handled an event of `topic` at `entry`: done, to be retried, or
/// refused for good (dead-lettered).
pub(crate) fn event_handled(
    role: &str,
    topic: &str,
    entry: &str,
    outcome: &Result<(), HandlerError>,
) {
    let label = match outcome {
        Ok(()) => "done",
        Err(err) if err.permanent => "refused",
        Err(_) => "retry",
    };
    EVENTS_HANDLED
        .get_or_create(&handled(role, topic, label))
        .inc();
    if outcome.is_ok() {
        observe_lag(role, topic, entry);
    }
}

/// The read model applied `count` events of `topic`, the newest at `entry`.
pub(crate) fn events_applied(topic: &str, entry: &str, count: usize) {
    let role = Role::ReadModel.slug();
    EVENTS_HANDLED
        .get_or_create(&handled(role, topic, "done"))
        .inc_by(count as u64);
    observe_lag(role, topic, entry);
}

/// Seconds from the append (the stream entry id's milliseconds, on the
/// Redis clock) to now; a clock behind Redis's counts as no lag.
fn observe_lag(role: &str, topic: &str, entry: &str) {
    let Ok(appended) = entry.parse::<EntryId>() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let lag_ms = now.saturating_sub(appended.ms);
    HANDLING_LAG
        .get_or_create(&handler(role, topic))
        .observe(lag_ms as f64 / 1000.0);
}
