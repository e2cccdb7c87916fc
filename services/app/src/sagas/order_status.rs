//! The order service's workflow: the only writer of an order's status.
//!
//! Triggers: the inventory's verdict on the `set_status` channel, and
//! billing / shipping events on the service's subscription. Each becomes
//! at most one order update (`decide_order_status`); what it cannot apply:
//!
//! - `NotYet` (shipping before billing, a billing before the verdict): the
//!   trigger is refused and comes back after a pause
//!   ([`crate::sagas::not_yet_pause`]), so it applies once the order has
//!   caught up.
//! - `Refused` (a contradiction, e.g. a billing of an OUT_OF_STOCK order):
//!   logged at warn and acknowledged. It can never succeed, so retrying it
//!   would only fill the dead-letter stream with noise; the log line names
//!   the order and the trigger for whoever investigates.

use std::{collections::HashMap, time::Duration};

use ordershop_client::{Delivery, HandlerError, Message};
use ordershop_core::sagas::order_status::{StatusChange, StatusOutcome, decide_order_status};
use ordershop_core::{Decision, ErrorKind};
use serde_json::{Value, json};

use ordershop_core::Topic;
use tokio::time::Instant;

use crate::decide::{DecideError, Outcome, Writer};
use crate::envelope;
use crate::live_view::Freshness;
use crate::sagas::{not_yet_pause, readable, retry};

/// How long a trigger that came too early waits in-process for the order
/// to move before its delivery is refused (and retried after a pause).
const NOT_YET_PATIENCE: Duration = Duration::from_millis(300);

#[derive(Debug)]
pub(crate) struct OrderWorkflow {
    writer: Writer,
}

impl OrderWorkflow {
    pub(crate) fn new(writer: Writer) -> Self {
        Self { writer }
    }

    async fn apply(
        &self,
        change: &StatusChange,
        freshness: Freshness<'_>,
    ) -> Result<Outcome<StatusOutcome>, DecideError> {
        self.writer
            .decide(freshness, |view| {
                Ok(match decide_order_status(view, change)? {
                    StatusOutcome::Append(event) => Decision {
                        events: vec![event.clone()],
                        reply: StatusOutcome::Append(event),
                    },
                    other => Decision {
                        events: Vec::new(),
                        reply: other,
                    },
                })
            })
            .await
    }

    /// Applies a trigger; one that comes too early gets a short in-process
    /// wait for the order to move before it is refused. The usual case is a
    /// race between this service's own consumers: the shipping created by
    /// the shipping saga arrives while the billing that CLEARs the order is
    /// still being applied next door, a few milliseconds away. Waiting here
    /// for the next change of the order topic settles that without the
    /// redelivery pause.
    async fn apply_patiently(
        &self,
        change: &StatusChange,
        freshness: Freshness<'_>,
    ) -> Result<Outcome<StatusOutcome>, HandlerError> {
        let deadline = Instant::now() + NOT_YET_PATIENCE;
        loop {
            // Subscribed before deciding, so no change slips in between.
            let mut order_moved = self.writer.view().watch(Topic::Order);
            let outcome = self
                .apply(change, freshness)
                .await
                .map_err(|err| retry("order status", err))?;
            let (StatusOutcome::NotYet(_), Some(moved)) = (&outcome.reply, order_moved.as_mut())
            else {
                return Ok(outcome);
            };
            if Instant::now() >= deadline
                || tokio::time::timeout_at(deadline, moved.changed())
                    .await
                    .is_err()
            {
                return Ok(outcome);
            }
        }
    }

    /// `order-service.set_status`: `{entity_id, status: IN_STOCK | OUT_OF_STOCK}`.
    pub(crate) async fn set_status(
        &self,
        message: &Message,
    ) -> Result<Option<String>, HandlerError> {
        let request = serde_json::from_str::<Value>(&message.payload)
            .map_err(|e| format!("the request is not JSON: {e}"))
            .and_then(|payload| {
                let change = StatusChange::from_set_status(&payload).map_err(|e| e.to_string())?;
                Ok((change, verdict_heads(&payload)?))
            });
        let (change, after) = match request {
            Ok(request) => request,
            Err(why) => return Ok(Some(envelope::error(ErrorKind::Invalid, why))),
        };
        let freshness = after.as_ref().map_or(Freshness::Now, Freshness::Heads);
        let outcome = self
            .apply(&change, freshness)
            .await
            .map_err(|err| retry("set_status", err))?;
        match outcome.reply {
            StatusOutcome::Append(_) | StatusOutcome::Done(_) => {
                tracing::debug!(order = %change.order_id, trigger = %change.trigger, "status set");
                Ok(Some(envelope::result(json!(true), &outcome.positions)))
            }
            StatusOutcome::NotYet(why) => Err(HandlerError::retry_after(
                why,
                not_yet_pause(message.attempt),
            )),
            StatusOutcome::Refused(why) => {
                tracing::warn!(order = %change.order_id, %why, "status change refused");
                Ok(Some(envelope::error(ErrorKind::Conflict, why)))
            }
        }
    }

    /// A billing or shipping event.
    pub(crate) async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
        let event = readable(&delivery.event)?;
        let Some(change) = StatusChange::from_event(&event) else {
            return Ok(());
        };
        let outcome = self
            .apply_patiently(&change, Freshness::Heads(&delivery.heads))
            .await?;
        match outcome.reply {
            StatusOutcome::Append(_) => {
                tracing::debug!(order = %change.order_id, trigger = %change.trigger, "status moved");
                Ok(())
            }
            StatusOutcome::Done(why) => {
                tracing::debug!(order = %change.order_id, %why, "nothing to change");
                Ok(())
            }
            StatusOutcome::NotYet(why) => {
                tracing::debug!(order = %change.order_id, %why, delivery = delivery.count, "trigger came early");
                Err(HandlerError::retry_after(
                    why,
                    not_yet_pause(delivery.count),
                ))
            }
            StatusOutcome::Refused(why) => {
                tracing::warn!(order = %change.order_id, %why, "trigger refused; acknowledged");
                Ok(())
            }
        }
    }
}

/// The `after` heads a stock verdict may carry (read after the order's event
/// by the stock saga's delivery); `None` when absent: then the handler asks
/// the store, as for any other sender.
fn verdict_heads(payload: &Value) -> Result<Option<HashMap<String, String>>, String> {
    match payload.get("after") {
        None | Some(Value::Null) => Ok(None),
        Some(after) => serde_json::from_value(after.clone())
            .map(Some)
            .map_err(|_| "after must map topics to entry ids".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_may_bring_heads() {
        let heads = verdict_heads(&json!({"after": {"order": "5-0"}})).unwrap();
        assert_eq!(heads.unwrap()["order"], "5-0");
        assert_eq!(verdict_heads(&json!({"entity_id": "o1"})).unwrap(), None);
        assert_eq!(verdict_heads(&json!({"after": null})).unwrap(), None);
        assert!(verdict_heads(&json!({"after": ["5-0"]})).is_err());
    }
}
