//! One run: seed a catalog, let N clients run flows until the duration or
//! the flow count is reached, then check the stock.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rand::{SeedableRng, rngs::StdRng};

use crate::{
    flow::{FlowRecord, FlowSettings, run_flow},
    machine::{self, LoadAverage},
    seed::{self, Catalog, SeedPlan},
    shop::{CallError, Shop},
    stats::Recorder,
    stock_check::{StockReport, check_stock},
};

/// When the clients stop starting new flows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    Duration(Duration),
    /// Flows in total over all clients.
    Flows(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct RunPlan {
    pub(crate) clients: usize,
    pub(crate) limit: Limit,
    pub(crate) flow: FlowSettings,
    pub(crate) rng_seed: u64,
    pub(crate) products: usize,
    pub(crate) customers: usize,
    pub(crate) stock: i64,
    /// Unique per run, in seeded names.
    pub(crate) tag: String,
    /// How long the stock check waits for the read model to settle.
    pub(crate) settle: Duration,
    /// How often to log progress.
    pub(crate) progress_every: Duration,
}

#[derive(Debug)]
pub(crate) struct RunResult {
    pub(crate) clients: usize,
    /// From the first flow's start to the last flow's end.
    pub(crate) elapsed: Duration,
    pub(crate) flows: Vec<FlowRecord>,
    pub(crate) recorder: Recorder,
    pub(crate) stock: StockReport,
    pub(crate) load_before: Option<LoadAverage>,
    pub(crate) load_after: Option<LoadAverage>,
}

pub(crate) async fn run(shop: &Shop, plan: &RunPlan) -> Result<RunResult, CallError> {
    let seeding = Instant::now();
    let catalog = Arc::new(
        seed::seed(
            shop,
            &mut Recorder::default(),
            SeedPlan {
                tag: &plan.tag,
                products: plan.products,
                customers: plan.customers,
                stock: plan.stock,
            },
        )
        .await?,
    );
    tracing::info!(
        clients = plan.clients,
        products = catalog.products.len(),
        customers = catalog.customers.len(),
        stock = plan.stock,
        took = ?seeding.elapsed(),
        "seeded"
    );

    let load_before = machine::load_average();
    let started = Instant::now();
    let (recorder, flows) = drive_clients(shop, &catalog, plan).await;
    let elapsed = started.elapsed();
    let load_after = machine::load_average();
    tracing::info!(
        clients = plan.clients,
        flows = flows.len(),
        ?elapsed,
        "flows done; checking stock"
    );

    let stock = check_stock(shop, &catalog, &flows, plan.settle, plan.flow.poll_interval).await?;
    Ok(RunResult {
        clients: plan.clients,
        elapsed,
        flows,
        recorder,
        stock,
        load_before,
        load_after,
    })
}

/// Spawns the clients and collects what they recorded.
async fn drive_clients(
    shop: &Shop,
    catalog: &Arc<Catalog>,
    plan: &RunPlan,
) -> (Recorder, Vec<FlowRecord>) {
    let gate = Arc::new(Gate::new(plan.limit));
    let done = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(log_progress(done.clone(), plan.progress_every));
    let clients: Vec<_> = (0..plan.clients)
        .map(|client| {
            let shop = shop.clone();
            let catalog = catalog.clone();
            let gate = gate.clone();
            let done = done.clone();
            let settings = plan.flow;
            let mut rng = StdRng::seed_from_u64(plan.rng_seed.wrapping_add(client as u64));
            tokio::spawn(async move {
                let mut recorder = Recorder::default();
                let mut flows = Vec::new();
                while gate.admit() {
                    flows.push(run_flow(&shop, &mut recorder, &catalog, settings, &mut rng).await);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (recorder, flows)
            })
        })
        .collect();

    let mut recorder = Recorder::default();
    let mut flows = Vec::new();
    for client in clients {
        match client.await {
            Ok((client_recorder, client_flows)) => {
                recorder.merge(client_recorder);
                flows.extend(client_flows);
            }
            // A client task only ends this way by panicking: a bug here,
            // not a property of the shop.
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    progress.abort();
    (recorder, flows)
}

/// Logs the flows done so far until aborted.
async fn log_progress(done: Arc<AtomicU64>, every: Duration) {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let flows = done.load(Ordering::Relaxed);
        let rate = flows as f64 / started.elapsed().as_secs_f64();
        tracing::info!(flows, rate = format!("{rate:.0}/s"), "progress");
    }
}

/// Lets a client start one more flow while the limit allows it.
#[derive(Debug)]
struct Gate {
    limit: Limit,
    started_at: Instant,
    admitted: AtomicU64,
}

impl Gate {
    fn new(limit: Limit) -> Gate {
        Gate {
            limit,
            started_at: Instant::now(),
            admitted: AtomicU64::new(0),
        }
    }

    fn admit(&self) -> bool {
        match self.limit {
            Limit::Duration(duration) => self.started_at.elapsed() < duration,
            Limit::Flows(total) => self.admitted.fetch_add(1, Ordering::Relaxed) < total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_limit_admits_exactly_that_many() {
        let gate = Gate::new(Limit::Flows(3));
        let admitted = (0..10).filter(|_| gate.admit()).count();
        assert_eq!(admitted, 3);
        assert!(!Gate::new(Limit::Duration(Duration::ZERO)).admit());
    }
}
