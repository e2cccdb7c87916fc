//! What a load run found, ready for Markdown or JSON: throughput, flow and
//! per-stage latency, per-route latency and errors, and the checks.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    flow::{Outcome, Stage, StageSamples},
    machine::{LoadAverage, Machine},
    run::RunResult,
    stats::{Samples, Summary},
    stock_check::StockReport,
};

/// Name of the stock check (the library API picks it out).
pub(crate) const STOCK_CHECK: &str = "stock consistent";

/// Failure messages listed per run; the rest are only counted.
const FAILURES_SHOWN: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) machine: Machine,
    pub(crate) settings: Settings,
    pub(crate) runs: Vec<RunReport>,
}

impl Report {
    pub(crate) fn passed(&self) -> bool {
        self.runs.iter().all(RunReport::passed)
    }
}

/// The knobs a reader needs to reproduce the numbers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub(crate) limit: String,
    pub(crate) poll_interval_ms: f64,
    pub(crate) wait_timeout_ms: f64,
    pub(crate) products: usize,
    pub(crate) customers: usize,
    pub(crate) stock: i64,
    pub(crate) max_cart_items: usize,
    pub(crate) allow_out_of_stock: bool,
    pub(crate) rng_seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunReport {
    pub(crate) clients: usize,
    pub(crate) elapsed_s: f64,
    pub(crate) flows_shipped: u64,
    pub(crate) flows_out_of_stock: u64,
    pub(crate) flows_failed: u64,
    /// Flows that ended as they may (shipped, or out of stock when allowed)
    /// per second of the run.
    pub(crate) flows_per_s: f64,
    /// Latency of the flows that ended as they may.
    pub(crate) flow_latency: Summary,
    pub(crate) stages: Vec<StageReport>,
    pub(crate) polls_per_flow: f64,
    pub(crate) routes: Vec<RouteReport>,
    pub(crate) request_errors: u64,
    pub(crate) server_errors: u64,
    pub(crate) unseen_reads: u64,
    pub(crate) failures: Vec<FailureGroup>,
    pub(crate) stock: StockReport,
    pub(crate) load_before: Option<LoadAverage>,
    pub(crate) load_after: Option<LoadAverage>,
    pub(crate) checks: Vec<Check>,
}

impl RunReport {
    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StageReport {
    pub(crate) stage: &'static str,
    pub(crate) latency: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RouteReport {
    pub(crate) route: String,
    pub(crate) requests_per_s: f64,
    pub(crate) latency: Summary,
    pub(crate) errors: BTreeMap<String, u64>,
}

/// Failed flows with the same stage and message (ids masked).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FailureGroup {
    pub(crate) stage: &'static str,
    pub(crate) message: String,
    pub(crate) count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) passed: bool,
    pub(crate) detail: String,
}

pub(crate) fn summarize(result: &RunResult) -> RunReport {
    let seconds = result.elapsed.as_secs_f64().max(f64::EPSILON);
    let mut flow_latency = Samples::default();
    let mut stages = StageSamples::default();
    let (mut shipped, mut out_of_stock, mut polls, mut unseen_reads) = (0u64, 0u64, 0u64, 0u64);
    let mut failures: BTreeMap<(Stage, String), u64> = BTreeMap::new();
    for flow in &result.flows {
        polls += flow.polls;
        unseen_reads += flow.unseen_reads;
        for &(stage, latency) in &flow.stages {
            stages.record(stage, latency);
        }
        match &flow.outcome {
            Ok(outcome) => {
                flow_latency.record(flow.latency);
                match outcome {
                    Outcome::Shipped => shipped += 1,
                    Outcome::OutOfStock => out_of_stock += 1,
                }
            }
            Err(failure) => {
                *failures
                    .entry((failure.stage, mask_ids(&failure.message)))
                    .or_default() += 1;
            }
        }
    }
    let failed: u64 = failures.values().sum();
    let mut failures: Vec<FailureGroup> = failures
        .into_iter()
        .map(|((stage, message), count)| FailureGroup {
            stage: stage.label(),
            message,
            count,
        })
        .collect();
    failures.sort_by_key(|group| std::cmp::Reverse(group.count));
    failures.truncate(FAILURES_SHOWN);

    let routes = result
        .recorder
        .routes()
        .map(|(route, stats)| RouteReport {
            route: route.to_owned(),
            requests_per_s: stats.latencies.len() as f64 / seconds,
            latency: stats.latencies.summary(),
            errors: stats.errors.clone(),
        })
        .collect();
    let request_errors = result.recorder.total_errors();
    let server_errors = result.recorder.server_errors();
    let completed = shipped + out_of_stock;
    let checks = checks(
        completed,
        failed,
        server_errors,
        unseen_reads,
        &result.stock,
    );
    RunReport {
        clients: result.clients,
        elapsed_s: seconds,
        flows_shipped: shipped,
        flows_out_of_stock: out_of_stock,
        flows_failed: failed,
        flows_per_s: completed as f64 / seconds,
        flow_latency: flow_latency.summary(),
        stages: Stage::ALL
            .into_iter()
            .map(|stage| StageReport {
                stage: stage.label(),
                latency: stages.get(stage).summary(),
            })
            .collect(),
        polls_per_flow: polls as f64 / (result.flows.len().max(1)) as f64,
        routes,
        request_errors,
        server_errors,
        unseen_reads,
        failures,
        stock: result.stock.clone(),
        load_before: result.load_before,
        load_after: result.load_after,
        checks,
    }
}

fn checks(
    completed: u64,
    failed: u64,
    server_errors: u64,
    unseen_reads: u64,
    stock: &StockReport,
) -> Vec<Check> {
    vec![
        Check {
            name: "flows ran",
            passed: completed > 0,
            detail: format!("{completed} flows completed"),
        },
        Check {
            name: "no flow failed",
            passed: failed == 0,
            detail: format!("{failed} failed"),
        },
        Check {
            name: "no 5xx",
            passed: server_errors == 0,
            detail: format!("{server_errors} answers with a 5xx status"),
        },
        Check {
            name: "read your writes",
            passed: unseen_reads == 0,
            detail: format!("{unseen_reads} reads of a just-created order answered null"),
        },
        Check {
            name: STOCK_CHECK,
            passed: stock.passed(),
            detail: format!(
                "{} inventories, {} orders holding stock, {} wrong amounts, {} orders with unknown verdict",
                stock.inventories,
                stock.reserving_orders,
                stock.mismatches.len(),
                stock.undetermined_orders.len()
            ),
        },
    ]
}

/// Replaces uuid-like words so that failures differing only in the entity
/// they hit are counted together.
fn mask_ids(message: &str) -> String {
    message
        .split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            let is_id = core.len() >= 32 && core.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            if is_id {
                word.replace(core, "<id>")
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_masked_in_failure_messages() {
        assert_eq!(
            mask_ids(
                "order 0b7e4c1e-4a43-4f0e-9a57-0d3c1f0e9b21 not IN_STOCK (\"1f0e9b21-4a43-4f0e-9a57-0d3c0b7e4c1e\")"
            ),
            "order <id> not IN_STOCK (\"<id>\")"
        );
        assert_eq!(mask_ids("HTTP 503: busy"), "HTTP 503: busy");
    }
}
