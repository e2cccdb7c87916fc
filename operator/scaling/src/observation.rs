//! What the decision sees of one consumer's backlog: plain numbers, with no
//! trace of Redis, so recorded series can drive the decision in tests.

use serde::{Deserialize, Serialize};

/// One consumer's backlog at one poll, summed over its streams and channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// Stream entries not yet delivered to the consumer's groups.
    pub lag: u64,
    /// Stream entries delivered but not acknowledged (work in progress, or
    /// owned by a consumer that died and awaits reclaiming).
    pub pending: u64,
    /// Queue messages waiting to be received.
    pub waiting: u64,
    /// Queue messages parked for a later retry: waiting work too.
    pub delayed: u64,
    /// Queue messages received and not yet acknowledged.
    pub in_flight: u64,
    /// False when a part is only a lower bound: a lag counted up to its cap,
    /// a consumer group that does not exist yet, a key that could not be read.
    /// The decision may scale up on a lower bound, never in.
    pub exact: bool,
    /// Age of the oldest stream entry no consumer has received yet, when it
    /// was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_undelivered_age_ms: Option<u64>,
    /// What is special about this measurement (nil lag counted, a missing
    /// stream or group, ...), for status and Events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Observation {
    /// An exact observation with every count zero.
    pub fn idle() -> Self {
        Self {
            exact: true,
            ..Self::default()
        }
    }

    /// Everything the consumer still has to do or is doing.
    pub fn backlog(&self) -> u64 {
        self.lag
            .saturating_add(self.pending)
            .saturating_add(self.waiting)
            .saturating_add(self.delayed)
            .saturating_add(self.in_flight)
    }

    /// Work a replica holds right now: pending entries and in-flight messages.
    /// Removing a replica while this is non-zero could cut work short.
    pub fn held_work(&self) -> u64 {
        self.pending.saturating_add(self.in_flight)
    }

    /// `backlog 730 (lag 700 + pending 30)`, `backlog at least 1000 (lag at
    /// least 1000)`, or `backlog 0`.
    pub fn describe(&self) -> String {
        let bound = if self.exact { "" } else { "at least " };
        let parts: Vec<String> = [
            ("lag", self.lag),
            ("pending", self.pending),
            ("waiting", self.waiting),
            ("delayed", self.delayed),
            ("in flight", self.in_flight),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
        let total = self.backlog();
        if parts.len() > 1 || (parts.len() == 1 && !self.exact) {
            format!("backlog {bound}{total} ({})", parts.join(" + "))
        } else if let Some(only) = parts.first() {
            format!("backlog {total} ({only})")
        } else {
            format!("backlog {bound}{total}")
        }
    }
}

/// The outcome of one poll for one consumer, as the decision takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Sample {
    /// The backlog was read.
    Measured(Observation),
    /// The backlog could not be read (Redis unreachable, ...): the decision
    /// holds its last value.
    Unavailable { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_every_non_zero_part() {
        let obs = Observation {
            lag: 700,
            pending: 30,
            exact: true,
            ..Observation::default()
        };
        assert_eq!(obs.describe(), "backlog 730 (lag 700 + pending 30)");
        assert_eq!(Observation::idle().describe(), "backlog 0");
    }

    #[test]
    fn describe_says_when_the_backlog_is_a_lower_bound() {
        let obs = Observation {
            lag: 1000,
            exact: false,
            ..Observation::default()
        };
        assert_eq!(obs.describe(), "backlog at least 1000 (lag 1000)");
        let unknown = Observation {
            exact: false,
            ..Observation::default()
        };
        assert_eq!(unknown.describe(), "backlog at least 0");
    }

    #[test]
    fn held_work_is_pending_plus_in_flight() {
        let obs = Observation {
            lag: 5,
            pending: 2,
            waiting: 7,
            delayed: 1,
            in_flight: 3,
            exact: true,
            ..Observation::default()
        };
        assert_eq!(obs.backlog(), 18);
        assert_eq!(obs.held_work(), 5);
    }
}
