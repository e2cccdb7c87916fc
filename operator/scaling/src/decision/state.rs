//! What the decision remembers between polls. It is plain serde data so the
//! operator can keep it in the custom resource's status: an operator that
//! restarts (or loses its lease) mid-window resumes the same window.

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

/// One recommendation kept in the stabilization window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub at: UnixMillis,
    pub replicas: u32,
}

/// The memory of one consumer's scaler.
///
/// The window keeps only the recommendations that can still be the maximum
/// of the window: each later than, and lower than, the one before it. A
/// recommendation followed by a higher one can never be the maximum again
/// (the higher one stays in the window longer), so it is dropped. The max is
/// then the first entry, and the list never grows past the number of
/// distinct replica counts (at most `maxReplicas`), where the HPA keeps every
/// recommendation of the window: at a 500 ms poll and a 300 s window that is
/// 600 entries to persist, here a handful.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScalerState {
    /// Candidates for the window's maximum, oldest (and highest) first.
    pub window: Vec<Recommendation>,
    /// Replicas of the last decision that had a measurement (the value held
    /// while Redis cannot be read; the dry-run shadow count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_desired: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scale_up: Option<UnixMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scale_down: Option<UnixMillis>,
}

impl ScalerState {
    /// Adds a recommendation and forgets those older than `window_ms`.
    pub(crate) fn record(&mut self, now: UnixMillis, replicas: u32, window_ms: u64) {
        // A clock that stepped back must not reorder the window: such a
        // recommendation counts as made at the latest time seen, which only
        // keeps it (conservatively) a little longer.
        let at = self.window.last().map_or(now, |last| last.at.max(now));
        while self
            .window
            .last()
            .is_some_and(|last| last.replicas <= replicas)
        {
            self.window.pop();
        }
        self.window.push(Recommendation { at, replicas });
        self.expire(now, window_ms);
    }

    fn expire(&mut self, now: UnixMillis, window_ms: u64) {
        let cutoff = now.minus(window_ms);
        // The newest entry always stays: it is the current recommendation.
        let keep_from = self.window[..self.window.len().saturating_sub(1)]
            .iter()
            .take_while(|r| r.at < cutoff)
            .count();
        self.window.drain(..keep_from);
    }

    /// The highest recommendation within the window.
    pub(crate) fn window_max(&self) -> Option<u32> {
        self.window.first().map(|r| r.replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_after(series: &[(u64, u32)], window_ms: u64) -> ScalerState {
        let mut state = ScalerState::default();
        for &(t, r) in series {
            state.record(UnixMillis(t), r, window_ms);
        }
        state
    }

    /// The plain definition: max over every recommendation in the window.
    fn brute_max(series: &[(u64, u32)], window_ms: u64) -> u32 {
        let now = series.last().unwrap().0;
        series
            .iter()
            .filter(|(t, _)| *t >= now.saturating_sub(window_ms))
            .map(|(_, r)| *r)
            .max()
            .unwrap()
    }

    #[test]
    fn window_max_equals_the_max_over_every_recommendation() {
        // A deterministic zig-zag of recommendations, checked at every prefix.
        let series: Vec<(u64, u32)> = (0..400u64)
            .map(|i| (i * 500, ((i * 7919) % 13) as u32 + (i / 100) as u32))
            .collect();
        for window_ms in [0, 1_000, 10_000, 60_000] {
            for end in 1..=series.len() {
                let prefix = &series[..end];
                assert_eq!(
                    state_after(prefix, window_ms).window_max(),
                    Some(brute_max(prefix, window_ms)),
                    "window {window_ms} ms after {end} recommendations"
                );
            }
        }
    }

    #[test]
    fn the_window_stays_small() {
        let series: Vec<(u64, u32)> = (0..10_000u64).map(|i| (i * 500, (i % 10) as u32)).collect();
        let state = state_after(&series, 300_000);
        assert!(state.window.len() <= 10, "{:?}", state.window);
    }

    #[test]
    fn a_clock_stepping_back_keeps_the_window_ordered() {
        let state = state_after(&[(10_000, 5), (9_000, 3)], 60_000);
        assert_eq!(
            state.window,
            vec![
                Recommendation {
                    at: UnixMillis(10_000),
                    replicas: 5
                },
                Recommendation {
                    at: UnixMillis(10_000),
                    replicas: 3
                },
            ]
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let state = ScalerState {
            window: vec![Recommendation {
                at: UnixMillis(1_000),
                replicas: 4,
            }],
            last_desired: Some(4),
            last_scale_up: Some(UnixMillis(900)),
            last_scale_down: None,
        };
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(
            json,
            r#"{"window":[{"at":1000,"replicas":4}],"lastDesired":4,"lastScaleUp":900}"#
        );
        assert_eq!(serde_json::from_str::<ScalerState>(&json).unwrap(), state);
        assert_eq!(
            serde_json::from_str::<ScalerState>("{}").unwrap(),
            ScalerState::default()
        );
    }
}
