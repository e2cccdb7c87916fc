//! One order flow, as a shop client lives it: cart → order → wait until the
//! inventory reserved it (IN_STOCK) → billing → wait until SHIPPED. The
//! waits poll `GET /order/<id>` and count as part of the flow's latency.

use std::time::{Duration, Instant};

use ordershop_core::{EntityKind, OrderStatus};
use rand::{Rng, rngs::StdRng};
use serde_json::json;

use crate::{
    seed::Catalog,
    shop::{CallError, Shop},
    stats::{Recorder, Samples},
};

/// How flows behave, the same for every client of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowSettings {
    pub(crate) poll_interval: Duration,
    pub(crate) wait_timeout: Duration,
    /// Items per cart are 1..=max_cart_items, products drawn with repeats.
    pub(crate) max_cart_items: usize,
    /// With deliberately short stock an out-of-stock order is a normal end.
    pub(crate) allow_out_of_stock: bool,
}

/// The steps of a flow, in order; each has its own latency table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Cart,
    Order,
    AwaitStock,
    Billing,
    AwaitShipped,
}

impl Stage {
    pub(crate) const ALL: [Stage; 5] = [
        Stage::Cart,
        Stage::Order,
        Stage::AwaitStock,
        Stage::Billing,
        Stage::AwaitShipped,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Stage::Cart => "POST cart",
            Stage::Order => "POST order",
            Stage::AwaitStock => "wait IN_STOCK",
            Stage::Billing => "POST billing",
            Stage::AwaitShipped => "wait SHIPPED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Shipped,
    /// Refused at the cart or the order went OUT_OF_STOCK (only with
    /// `allow_out_of_stock`; otherwise that is a failure).
    OutOfStock,
}

#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) stage: Stage,
    pub(crate) message: String,
}

/// What one flow did; the stock check needs the order and its cart.
#[derive(Debug, Clone)]
pub(crate) struct FlowRecord {
    pub(crate) cart: Vec<usize>,
    pub(crate) order_id: Option<String>,
    /// The last status this flow saw its order in.
    pub(crate) last_status: Option<OrderStatus>,
    pub(crate) outcome: Result<Outcome, Failure>,
    /// When the flow began (a chaos run relates flows to its faults).
    pub(crate) started: Instant,
    pub(crate) latency: Duration,
    pub(crate) stages: Vec<(Stage, Duration)>,
    pub(crate) polls: u64,
    /// `GET /order/<id>` answered null after the order was created: a
    /// read-your-writes violation.
    pub(crate) unseen_reads: u64,
}

/// Per-stage latencies over many flows.
#[derive(Debug, Default, Clone)]
pub(crate) struct StageSamples(pub(crate) [Samples; Stage::ALL.len()]);

impl StageSamples {
    pub(crate) fn record(&mut self, stage: Stage, latency: Duration) {
        self.0[stage as usize].record(latency);
    }

    pub(crate) fn get(&self, stage: Stage) -> &Samples {
        &self.0[stage as usize]
    }
}

/// Picks a cart: 1..=max items, products drawn uniformly with repeats.
pub(crate) fn pick_cart(rng: &mut StdRng, products: usize, max_items: usize) -> Vec<usize> {
    let items = rng.random_range(1..=max_items.max(1));
    (0..items).map(|_| rng.random_range(0..products)).collect()
}

pub(crate) async fn run_flow(
    shop: &Shop,
    recorder: &mut Recorder,
    catalog: &Catalog,
    settings: FlowSettings,
    rng: &mut StdRng,
) -> FlowRecord {
    let started = Instant::now();
    let cart = pick_cart(rng, catalog.products.len(), settings.max_cart_items);
    let customer = &catalog.customers[rng.random_range(0..catalog.customers.len())];
    let mut flow = Flow {
        shop,
        recorder,
        settings,
        record: FlowRecord {
            cart,
            order_id: None,
            last_status: None,
            outcome: Ok(Outcome::Shipped),
            started,
            latency: Duration::ZERO,
            stages: Vec::with_capacity(Stage::ALL.len()),
            polls: 0,
            unseen_reads: 0,
        },
    };
    let outcome = flow.steps(catalog, customer).await;
    let mut record = flow.record;
    record.latency = started.elapsed();
    record.outcome = outcome;
    record
}

struct Flow<'a> {
    shop: &'a Shop,
    recorder: &'a mut Recorder,
    settings: FlowSettings,
    record: FlowRecord,
}

/// A wait ended in a status the flow did not wait for.
enum Waited {
    Reached(OrderStatus),
    Other(OrderStatus),
}

impl Flow<'_> {
    async fn steps(&mut self, catalog: &Catalog, customer: &str) -> Result<Outcome, Failure> {
        let product_ids: Vec<&str> = self
            .record
            .cart
            .iter()
            .map(|&i| catalog.products[i].id.as_str())
            .collect();
        let cart_body = json!({"customer_id": customer, "product_ids": product_ids});
        let stage_started = Instant::now();
        let created = self
            .shop
            .create(self.recorder, EntityKind::Cart, &cart_body)
            .await;
        self.finish_stage(Stage::Cart, stage_started);
        let cart_id = match created {
            Ok(ids) => single_id(ids).map_err(|m| failure(Stage::Cart, m))?,
            Err(err) if self.settings.allow_out_of_stock && is_out_of_stock(&err) => {
                return Ok(Outcome::OutOfStock);
            }
            Err(err) => return Err(failure(Stage::Cart, err.to_string())),
        };

        let stage_started = Instant::now();
        let created = self
            .shop
            .create(
                self.recorder,
                EntityKind::Order,
                &json!({"cart_id": cart_id}),
            )
            .await;
        self.finish_stage(Stage::Order, stage_started);
        let order_id = created
            .map_err(|e| e.to_string())
            .and_then(single_id)
            .map_err(|m| failure(Stage::Order, m))?;
        self.record.order_id = Some(order_id.clone());
        self.record.last_status = Some(OrderStatus::Created);

        let stage_started = Instant::now();
        let waited = self
            .await_status(&order_id, &[OrderStatus::InStock, OrderStatus::OutOfStock])
            .await;
        self.finish_stage(Stage::AwaitStock, stage_started);
        match waited.map_err(|m| failure(Stage::AwaitStock, m))? {
            Waited::Reached(OrderStatus::InStock) => {}
            Waited::Reached(_) if self.settings.allow_out_of_stock => {
                return Ok(Outcome::OutOfStock);
            }
            Waited::Reached(status) | Waited::Other(status) => {
                return Err(failure(
                    Stage::AwaitStock,
                    format!("order went {status}, expected IN_STOCK"),
                ));
            }
        }

        let amount = catalog.price_of(&self.record.cart);
        let stage_started = Instant::now();
        let created = self
            .shop
            .create(
                self.recorder,
                EntityKind::Billing,
                &json!({"order_id": order_id, "amount": amount}),
            )
            .await;
        self.finish_stage(Stage::Billing, stage_started);
        created
            .map_err(|e| e.to_string())
            .and_then(single_id)
            .map_err(|m| failure(Stage::Billing, m))?;

        let stage_started = Instant::now();
        // DELIVERED would also mean it shipped, though nothing here delivers.
        let waited = self
            .await_status(&order_id, &[OrderStatus::Shipped, OrderStatus::Delivered])
            .await;
        self.finish_stage(Stage::AwaitShipped, stage_started);
        match waited.map_err(|m| failure(Stage::AwaitShipped, m))? {
            Waited::Reached(_) => Ok(Outcome::Shipped),
            Waited::Other(status) => Err(failure(
                Stage::AwaitShipped,
                format!("order went {status}, expected SHIPPED"),
            )),
        }
    }

    fn finish_stage(&mut self, stage: Stage, started: Instant) {
        self.record.stages.push((stage, started.elapsed()));
    }

    /// Polls the order until its status is one of `targets`, or a status
    /// from which none of them can follow, or the deadline passes.
    async fn await_status(
        &mut self,
        order_id: &str,
        targets: &[OrderStatus],
    ) -> Result<Waited, String> {
        let deadline = Instant::now() + self.settings.wait_timeout;
        loop {
            self.record.polls += 1;
            let order = self
                .shop
                .get(self.recorder, EntityKind::Order, order_id)
                .await
                .map_err(|e| e.to_string())?;
            match order {
                None => self.record.unseen_reads += 1,
                Some(order) => {
                    let status = parse_status(&order)?;
                    self.record.last_status = Some(status);
                    if targets.contains(&status) {
                        return Ok(Waited::Reached(status));
                    }
                    if !is_on_the_way(status, targets) {
                        return Ok(Waited::Other(status));
                    }
                }
            }
            if Instant::now() >= deadline {
                let last = self
                    .record
                    .last_status
                    .map_or_else(|| "never seen".to_owned(), |s| s.to_string());
                return Err(format!(
                    "order {order_id} not {} after {:?} (last status {last})",
                    targets[0], self.settings.wait_timeout
                ));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }
}

/// Whether waiting longer in `status` can still reach one of `targets`
/// within a flow: CREATED leads to the stock verdict, CLEARED to SHIPPED.
fn is_on_the_way(status: OrderStatus, targets: &[OrderStatus]) -> bool {
    match status {
        OrderStatus::Created => targets.contains(&OrderStatus::InStock),
        OrderStatus::InStock | OrderStatus::Cleared => targets.contains(&OrderStatus::Shipped),
        _ => false,
    }
}

fn parse_status(order: &serde_json::Value) -> Result<OrderStatus, String> {
    let status = order
        .get("status")
        .and_then(|s| s.as_str())
        .ok_or_else(|| format!("order without a status: {order}"))?;
    status.parse().map_err(|e| format!("{e}"))
}

fn single_id(ids: Vec<String>) -> Result<String, String> {
    match <[String; 1]>::try_from(ids) {
        Ok([id]) => Ok(id),
        Err(ids) => Err(format!("expected one id, got {ids:?}")),
    }
}

fn failure(stage: Stage, message: String) -> Failure {
    Failure { stage, message }
}

/// The cart service's refusal for short stock (`product <id> is out of stock`).
fn is_out_of_stock(err: &CallError) -> bool {
    err.refusal()
        .is_some_and(|message| message.contains("out of stock"))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn carts_have_one_to_max_items_within_the_catalog() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let cart = pick_cart(&mut rng, 5, 3);
            assert!((1..=3).contains(&cart.len()), "{cart:?}");
            assert!(cart.iter().all(|&p| p < 5), "{cart:?}");
        }
    }

    #[test]
    fn waits_give_up_on_states_that_cannot_lead_to_the_target() {
        let stock = [OrderStatus::InStock, OrderStatus::OutOfStock];
        let shipped = [OrderStatus::Shipped, OrderStatus::Delivered];
        assert!(is_on_the_way(OrderStatus::Created, &stock));
        assert!(is_on_the_way(OrderStatus::Cleared, &shipped));
        assert!(is_on_the_way(OrderStatus::InStock, &shipped));
        assert!(!is_on_the_way(OrderStatus::Uncleared, &shipped));
        assert!(!is_on_the_way(OrderStatus::Cleared, &stock));
    }
}
