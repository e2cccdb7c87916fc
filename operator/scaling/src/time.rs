//! Time as plain data: the decision never reads a clock, the caller passes
//! the time in, and the state stores it in a form that survives a round trip
//! through the custom resource's status.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
///
/// Stream entry IDs are Redis server milliseconds too, so ages computed from
/// them and this type share one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The given wall-clock time; times before the epoch become 0.
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        Self(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// Time from `earlier` to `self`, zero when `earlier` is later (a clock
    /// that stepped back must not make a window or a rate limit negative).
    pub fn since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    pub fn plus(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    pub fn minus(self, millis: u64) -> Self {
        Self(self.0.saturating_sub(millis))
    }
}

/// Renders milliseconds for humans: `750 ms`, `7.5 s`, `300 s`.
pub(crate) fn human_millis(millis: u64) -> String {
    if millis < 1_000 {
        format!("{millis} ms")
    } else if millis.is_multiple_of(1_000) {
        format!("{} s", millis / 1_000)
    } else {
        format!("{:.1} s", millis as f64 / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_saturates_when_the_clock_steps_back() {
        assert_eq!(UnixMillis(1_000).since(UnixMillis(400)), 600);
        assert_eq!(UnixMillis(400).since(UnixMillis(1_000)), 0);
    }

    #[test]
    fn human_millis_picks_a_readable_unit() {
        assert_eq!(human_millis(750), "750 ms");
        assert_eq!(human_millis(7_500), "7.5 s");
        assert_eq!(human_millis(300_000), "300 s");
    }

    #[test]
    fn system_time_converts_to_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            UnixMillis::from_system_time(t),
            UnixMillis(1_700_000_000_123)
        );
    }
}
