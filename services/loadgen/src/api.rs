//! The load run as a library call, for a program that drives load while it
//! does something else to the shop (`ordershop chaos` injects faults).
//! Same flows, retries and stock check as the command line's run.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

pub use crate::render::Format;
use crate::{
    flow::FlowSettings,
    report,
    run::{Limit, RunPlan, run},
    shop::{CallError, Shop},
};

/// One run of full order flows against the shop at `url`.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub url: String,
    pub clients: usize,
    /// How long clients start new flows.
    pub duration: Duration,
    /// How long a failed call is retried (one idempotency key per write).
    pub retry_for: Duration,
    /// How long a flow waits for IN_STOCK or SHIPPED.
    pub wait_timeout: Duration,
    pub request_timeout: Duration,
    /// How long the stock check waits for the read model to settle.
    pub settle: Duration,
    pub rng_seed: u64,
    pub products: usize,
    pub customers: usize,
    /// Seeded stock per product; large enough that no flow runs out.
    pub stock: i64,
}

/// One flow's place in time.
#[derive(Debug, Clone, Copy)]
pub struct FlowTiming {
    pub started: Instant,
    pub ended: Instant,
    /// Ended as it may (shipped); false for a failed flow.
    pub completed: bool,
}

/// Failed flows that failed the same way (ids masked).
#[derive(Debug, Clone)]
pub struct FailedFlows {
    pub stage: &'static str,
    pub message: String,
    pub count: u64,
}

/// What the run did and what its checks found.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    pub attempted: u64,
    pub shipped: u64,
    pub failed: u64,
    /// The most frequent ways flows failed.
    pub failures: Vec<FailedFlows>,
    /// Calls that failed for good (after retrying for `retry_for`).
    pub calls_failed: u64,
    /// Tries that failed transiently and were tried again, by class
    /// (`transport`, `timeout`, `HTTP 503`, ...).
    pub retried: BTreeMap<String, u64>,
    /// Reads of a just-created order that answered null.
    pub unseen_reads: u64,
    pub flows_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Every inventory holds its seeded stock less what reserving orders took.
    pub stock_exact: bool,
    pub stock_detail: String,
    pub flows: Vec<FlowTiming>,
}

/// Why a run could not go on (seeding or the stock check's reads failed
/// for longer than `retry_for`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The call's route and what went wrong (the call error type is the
    /// crate's own).
    #[error("{0}")]
    Call(String),
}

impl From<CallError> for LoadError {
    fn from(err: CallError) -> Self {
        LoadError::Call(err.to_string())
    }
}

/// Seeds, runs the flows, checks the stock.
pub async fn run_load(options: &LoadOptions) -> Result<LoadSummary, LoadError> {
    let shop = Shop::new(&options.url, options.request_timeout, options.retry_for)?;
    let plan = RunPlan {
        clients: options.clients,
        limit: Limit::Duration(options.duration),
        flow: FlowSettings {
            poll_interval: Duration::from_millis(5),
            wait_timeout: options.wait_timeout,
            max_cart_items: 3,
            allow_out_of_stock: false,
        },
        rng_seed: options.rng_seed,
        products: options.products,
        customers: options.customers,
        stock: options.stock,
        tag: format!("{:x}", options.rng_seed),
        settle: options.settle,
        progress_every: Duration::from_secs(10),
    };
    let result = run(&shop, &plan).await?;
    let summary = report::summarize(&result);
    let flows = result
        .flows
        .iter()
        .map(|flow| FlowTiming {
            started: flow.started,
            ended: flow.started + flow.latency,
            completed: flow.outcome.is_ok(),
        })
        .collect();
    let stock = summary
        .checks
        .iter()
        .find(|check| check.name == report::STOCK_CHECK);
    Ok(LoadSummary {
        attempted: result.flows.len() as u64,
        shipped: summary.flows_shipped,
        failed: summary.flows_failed,
        failures: summary
            .failures
            .iter()
            .map(|group| FailedFlows {
                stage: group.stage,
                message: group.message.clone(),
                count: group.count,
            })
            .collect(),
        calls_failed: summary.request_errors,
        retried: result.recorder.retries().clone(),
        unseen_reads: summary.unseen_reads,
        flows_per_s: summary.flows_per_s,
        p50_ms: summary.flow_latency.p50_ms,
        p99_ms: summary.flow_latency.p99_ms,
        stock_exact: result.stock.passed(),
        stock_detail: stock.map(|check| check.detail.clone()).unwrap_or_default(),
        flows,
    })
}
