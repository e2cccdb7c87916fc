//! The inventory's saga on `order` events: reserve the cart's items when an
//! order is created (IN_STOCK, or OUT_OF_STOCK with nothing reserved), give
//! them back when a reserving order is deleted. The verdict goes to the
//! order service's `set_status` channel once the reservation is stored.

use ordershop_client::{Delivery, HandlerError, Queue};
use ordershop_core::sagas::stock::decide_stock;
use ordershop_core::{Decision, EventAction, causation};
use ordershop_topology::{Role, channel_name};
use serde_json::json;

use crate::decide::Writer;
use crate::live_view::Freshness;
use crate::sagas::{readable, retry, send_once};

#[derive(Debug)]
pub(crate) struct StockSaga {
    writer: Writer,
    queue: Queue,
    set_status: String,
}

impl StockSaga {
    pub(crate) fn new(writer: Writer, queue: Queue) -> Self {
        Self {
            writer,
            queue,
            set_status: channel_name(Role::Order.service_name(), "set_status"),
        }
    }

    pub(crate) async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
        let event = readable(&delivery.event)?;
        // Order updates (most of the topic) never touch stock: skip them
        // before catching up, which would cost a round trip each.
        if !matches!(
            event.action,
            EventAction::EntityCreated | EventAction::EntityDeleted
        ) {
            return Ok(());
        }
        let outcome = self
            .writer
            .decide(Freshness::Heads(&delivery.heads), |view| {
                let decision = decide_stock(view, &event)?;
                Ok(Decision {
                    events: decision.events.clone(),
                    reply: decision,
                })
            })
            .await
            .map_err(|err| retry("stock", err))?;
        let decision = outcome.reply;
        let Some(mut request) = decision.set_status_request() else {
            tracing::debug!(order = %decision.order_id, action = %event.action, "no stock change");
            return Ok(());
        };
        // One key per order: a redelivered event re-sends the verdict, and
        // the queue hands back the first message instead of a second one.
        let key = causation::stock_verdict(&decision.order_id);
        // Read after the order's event, so they cover the order: the order
        // service catches up to them instead of asking for the heads.
        request["after"] = json!(delivery.heads);
        // Sent before with other `after` heads (read per delivery): the first
        // verdict stands.
        if !send_once(&self.queue, &self.set_status, &request.to_string(), &key).await? {
            return Ok(());
        }
        tracing::debug!(order = %decision.order_id, verdict = ?decision.verdict, reserved = decision.events.len(), "stock verdict sent");
        Ok(())
    }
}
