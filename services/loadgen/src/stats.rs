//! Latency samples and their percentiles, and per-route request counts.
//!
//! A run records at most a few hundred thousand requests, so every sample is
//! kept (microseconds in a `Vec`) and percentiles are exact nearest-rank
//! values over the sorted samples: no bucketing error to explain.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

/// Latencies of one kind of measurement (a route, a flow, a flow stage).
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples {
    micros: Vec<u64>,
}

impl Samples {
    pub(crate) fn record(&mut self, latency: Duration) {
        self.micros
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub(crate) fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    pub(crate) fn len(&self) -> usize {
        self.micros.len()
    }

    pub(crate) fn summary(&self) -> Summary {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let ms = |q: f64| percentile(&sorted, q).map_or(0.0, micros_to_ms);
        let sum: u128 = sorted.iter().map(|&m| u128::from(m)).sum();
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sum as f64 / sorted.len() as f64 / 1000.0
        };
        Summary {
            count: sorted.len() as u64,
            mean_ms: mean,
            p50_ms: ms(50.0),
            p95_ms: ms(95.0),
            p99_ms: ms(99.0),
            max_ms: sorted.last().copied().map_or(0.0, micros_to_ms),
        }
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The nearest-rank percentile `q` (0 < q ≤ 100) of ascending `sorted`: the
/// smallest sample with at least q% of the samples at or below it.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index])
}

/// Count, mean and percentiles of some samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) mean_ms: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// One route's requests: every latency (failed requests included, since a
/// slow error costs the client as much as a slow answer) and the failures
/// by class (`HTTP 503`, `timeout`, ...).
#[derive(Debug, Default, Clone)]
pub(crate) struct RouteStats {
    pub(crate) latencies: Samples,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl RouteStats {
    fn merge(&mut self, other: RouteStats) {
        self.latencies.merge(other.latencies);
        for (class, count) in other.errors {
            *self.errors.entry(class).or_default() += count;
        }
    }
}

/// Requests by route (`METHOD /path/{template}`). Each client owns one, so
/// recording takes no lock; the run merges them at the end.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorder {
    routes: BTreeMap<String, RouteStats>,
    /// Tries that failed transiently and were tried again, by class: what
    /// a restarting shop cost its clients on the way (`--retry-for`).
    retries: BTreeMap<String, u64>,
}

impl Recorder {
    pub(crate) fn record(&mut self, route: &str, latency: Duration, error: Option<String>) {
        let stats = match self.routes.get_mut(route) {
            Some(stats) => stats,
            None => self.routes.entry(route.to_owned()).or_default(),
        };
        stats.latencies.record(latency);
        if let Some(class) = error {
            *stats.errors.entry(class).or_default() += 1;
        }
    }

    pub(crate) fn record_retry(&mut self, class: String) {
        *self.retries.entry(class).or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: Recorder) {
        for (route, stats) in other.routes {
            self.routes.entry(route).or_default().merge(stats);
        }
        for (class, count) in other.retries {
            *self.retries.entry(class).or_default() += count;
        }
    }

    pub(crate) fn retries(&self) -> &BTreeMap<String, u64> {
        &self.retries
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = (&str, &RouteStats)> {
        self.routes
            .iter()
            .map(|(route, stats)| (route.as_str(), stats))
    }

    /// Requests answered with a 5xx status.
    pub(crate) fn server_errors(&self) -> u64 {
        self.routes
            .values()
            .flat_map(|stats| stats.errors.iter())
            .filter(|(class, _)| is_server_error_class(class))
            .map(|(_, count)| count)
            .sum()
    }

    pub(crate) fn total_errors(&self) -> u64 {
        self.routes
            .values()
            .flat_map(|stats| stats.errors.values())
            .sum()
    }
}

/// The error class of a response status, as [`Recorder`] keys it.
pub(crate) fn status_class(status: u16) -> String {
    format!("HTTP {status}")
}

fn is_server_error_class(class: &str) -> bool {
    class
        .strip_prefix("HTTP ")
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| code >= 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50));
        assert_eq!(percentile(&sorted, 95.0), Some(95));
        assert_eq!(percentile(&sorted, 99.0), Some(99));
        assert_eq!(percentile(&sorted, 100.0), Some(100));
        // Tiny sets: p99 of two samples is the larger one, p50 the smaller.
        assert_eq!(percentile(&[10, 20], 50.0), Some(10));
        assert_eq!(percentile(&[10, 20], 99.0), Some(20));
        assert_eq!(percentile(&[7], 1.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_sorts_and_converts_to_milliseconds() {
        let mut samples = Samples::default();
        for ms in [30, 10, 20, 40] {
            samples.record(Duration::from_millis(ms));
        }
        let mut more = Samples::default();
        more.record(Duration::from_micros(500));
        samples.merge(more);
        let summary = samples.summary();
        assert_eq!(summary.count, 5);
        assert_eq!(summary.p50_ms, 20.0);
        assert_eq!(summary.p99_ms, 40.0);
        assert_eq!(summary.max_ms, 40.0);
        assert!((summary.mean_ms - 20.1).abs() < 1e-9, "{summary:?}");
        assert_eq!(Samples::default().summary().p99_ms, 0.0);
    }

    #[test]
    fn recorders_merge_and_count_server_errors() {
        let mut a = Recorder::default();
        a.record("GET /order/{id}", Duration::from_millis(1), None);
        a.record(
            "POST /cart",
            Duration::from_millis(2),
            Some(status_class(409)),
        );
        let mut b = Recorder::default();
        b.record(
            "POST /cart",
            Duration::from_millis(3),
            Some(status_class(503)),
        );
        b.record(
            "POST /cart",
            Duration::from_millis(3),
            Some("timeout".into()),
        );
        a.merge(b);
        let cart = a.routes().find(|(r, _)| *r == "POST /cart").unwrap().1;
        assert_eq!(cart.latencies.len(), 3);
        assert_eq!(a.server_errors(), 1);
        assert_eq!(a.total_errors(), 3);
    }
}
