//! Which decisions become Kubernetes Events.
//!
//! A poll decides for every consumer every second or so; an Event per poll
//! would bury everything else. So: an Event for every decision that changes
//! a replica count (in dry run: the count a live autoscaler would run), and
//! one when a consumer starts being held back from scaling in (why it is
//! not scaling in is the question users ask). Redis becoming unreadable or
//! readable again is one Event per OrderShop, not one per consumer.

use kube::runtime::events::EventType;
use ordershop_scaling::{Cause, Change, Decision};

/// An Event to publish: type, reason, note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}

/// Holds that explain why a lower recommendation is not acted on yet.
const EXPLAINED_HOLDS: [Cause; 5] = [
    Cause::Stabilizing,
    Cause::WorkInFlight,
    Cause::LowerBound,
    Cause::RateLimited,
    Cause::Paused,
];

/// The Event for one consumer's decision, if it deserves one. The reason is
/// the decision's cause, the note its reason with the numbers, prefixed by
/// the consumer (the Event is about the OrderShop).
pub fn for_decision(consumer: &str, decision: &Decision, previous: Option<Cause>) -> Option<Note> {
    let changes = decision.change != Change::Hold;
    let newly_held = EXPLAINED_HOLDS.contains(&decision.cause) && previous != Some(decision.cause);
    // Redis outages are reported once per OrderShop (see `for_redis`).
    if decision.cause == Cause::MeasurementFailed && !changes {
        return None;
    }
    (changes || newly_held).then(|| Note {
        type_: EventType::Normal,
        reason: decision.cause.as_str(),
        note: format!("{consumer}: {}", decision.reason),
    })
}

/// The Event for a change of the OrderShop's Redis readability: `was` and
/// `now` are whether the backlog could be read at the previous and this
/// poll (`None` before the first).
pub fn for_redis(was: Option<bool>, now: bool, message: &str) -> Option<Note> {
    match (was, now) {
        (Some(false), true) => Some(Note {
            type_: EventType::Normal,
            reason: "BacklogReadable",
            note: message.to_string(),
        }),
        (Some(true) | None, false) => Some(Note {
            type_: EventType::Warning,
            reason: "BacklogUnavailable",
            note: message.to_string(),
        }),
        _ => None,
    }
}

/// The Event for a scale that the API server refused.
pub fn scale_failed(consumer: &str, deployment: &str, replicas: u32, error: &str) -> Note {
    Note {
        type_: EventType::Warning,
        reason: "ScaleFailed",
        note: format!("{consumer}: scaling Deployment {deployment} to {replicas} failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(change: Change, cause: Cause) -> Decision {
        Decision {
            from: 1,
            desired: 1,
            recommended: Some(1),
            backlog: Some(0),
            change,
            cause,
            dry_run: false,
            reason: "backlog 0 / target 10 → 1".into(),
        }
    }

    #[test]
    fn every_change_of_replicas_is_an_event_with_its_numbers() {
        for cause in [Cause::ScaledUp, Cause::ScaledDown, Cause::PolicyBounds] {
            let note = for_decision("inventory", &decision(Change::Up, cause), Some(cause))
                .expect("a scale is always an Event");
            assert_eq!(note.reason, cause.as_str());
            assert_eq!(note.note, "inventory: backlog 0 / target 10 → 1");
            assert_eq!(note.type_, EventType::Normal);
        }
    }

    #[test]
    fn steady_decisions_are_silent() {
        assert_eq!(
            for_decision("order", &decision(Change::Hold, Cause::Steady), None),
            None
        );
    }

    #[test]
    fn a_hold_is_reported_when_it_starts_not_on_every_poll() {
        let held = decision(Change::Hold, Cause::WorkInFlight);
        assert!(for_decision("order", &held, Some(Cause::ScaledUp)).is_some());
        assert!(for_decision("order", &held, Some(Cause::WorkInFlight)).is_none());
        let stabilizing = decision(Change::Hold, Cause::Stabilizing);
        assert!(for_decision("order", &stabilizing, Some(Cause::WorkInFlight)).is_some());
    }

    #[test]
    fn measurement_failures_are_reported_per_ordershop() {
        let failed = decision(Change::Hold, Cause::MeasurementFailed);
        assert_eq!(for_decision("order", &failed, Some(Cause::Steady)), None);
        let warning = for_redis(Some(true), false, "Redis down").unwrap();
        assert_eq!(
            (warning.type_, warning.reason),
            (EventType::Warning, "BacklogUnavailable")
        );
        assert_eq!(for_redis(Some(false), false, "still down"), None);
        assert_eq!(
            for_redis(Some(false), true, "back").unwrap().reason,
            "BacklogReadable"
        );
        assert_eq!(for_redis(None, true, "fine"), None);
        assert!(for_redis(None, false, "down from the start").is_some());
    }
}
