//! The CRM: turns customer, order, billing and shipping events into mails,
//! sent through `mail-service.send` with the mail's key as the queue's
//! idempotency key (and the mail service stores one event per key), so a
//! redelivered event never mails twice.

use std::sync::Arc;

use ordershop_client::{Delivery, HandlerError, Queue};
use ordershop_core::crm::{MailDecision, decide_mail};
use ordershop_core::{EventAction, OrderStatus, RecordedEvent, Topic};
use ordershop_topology::{Role, channel_name};

use crate::live_view::{Freshness, LiveView};
use crate::sagas::{readable, send_once};

#[derive(Debug)]
pub(crate) struct Crm {
    view: Arc<LiveView>,
    queue: Queue,
    send: String,
}

impl Crm {
    pub(crate) fn new(view: Arc<LiveView>, queue: Queue) -> Self {
        Self {
            view,
            queue,
            send: channel_name(Role::Mail.service_name(), "send"),
        }
    }

    pub(crate) async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
        let event = readable(&delivery.event)?;
        if !may_mail(&event) {
            return Ok(());
        }
        // Mails name customers and price carts: the view must include
        // everything that happened before the event.
        self.view
            .refresh(Freshness::Heads(&delivery.heads))
            .await
            .map_err(|err| HandlerError::retry(format!("catching up: {err}")))?;
        let decision = self.view.read(|view| decide_mail(view, &event));
        let mail = match decision {
            Ok(MailDecision::Send(mail)) => mail,
            Ok(MailDecision::Skip(why)) => {
                tracing::debug!(topic = %event.topic, entry = %event.entry_id, %why, "no mail");
                return Ok(());
            }
            Err(err) => {
                tracing::error!(error = %err, "mail decision failed on our side");
                return Err(HandlerError::retry(err.to_string()));
            }
        };
        // Requested before (the text may differ since: an email address
        // changed): one mail per key, the first stands.
        if !send_once(
            &self.queue,
            &self.send,
            &mail.send_request().to_string(),
            &mail.key,
        )
        .await?
        {
            return Ok(());
        }
        tracing::debug!(key = %mail.key, to = %mail.to, "mail requested");
        Ok(())
    }
}

/// Whether `event` is one of the rows of the core's CRM table (see
/// `ordershop_core::crm`). Most events are not (order status moves other
/// than IN_STOCK, shipping updates, ...); they are acknowledged without
/// catching up, which would cost a round trip per event for nothing. The
/// test below holds this filter to the core's decisions.
fn may_mail(event: &RecordedEvent) -> bool {
    match (event.topic, event.action) {
        (Topic::Customer, EventAction::EntityCreated | EventAction::EntityDeleted) => true,
        (Topic::Order, EventAction::EntityUpdated) => {
            event.data.get("status").and_then(|s| s.as_str()) == Some(OrderStatus::InStock.as_str())
        }
        (Topic::Billing | Topic::Shipping, EventAction::EntityCreated) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use ordershop_core::View;
    use ordershop_core::crm::CRM_TOPICS;
    use serde_json::json;

    use super::*;

    /// A shop where every mail can be addressed and priced.
    fn shop() -> View {
        let mut view = View::new(CRM_TOPICS);
        let created = EventAction::EntityCreated;
        for e in [
            RecordedEvent::synthetic(
                Topic::Customer,
                created,
                "c1",
                1,
                json!({"entity_id": "c1", "name": "Ann", "email": "a@b.c"}),
            ),
            RecordedEvent::synthetic(
                Topic::Product,
                created,
                "p1",
                1,
                json!({"entity_id": "p1", "name": "Pen", "price": 2}),
            ),
            RecordedEvent::synthetic(
                Topic::Cart,
                created,
                "k1",
                1,
                json!({"entity_id": "k1", "customer_id": "c1", "product_ids": ["p1"]}),
            ),
            RecordedEvent::synthetic(
                Topic::Order,
                created,
                "o1",
                1,
                json!({"entity_id": "o1", "cart_id": "k1", "status": "CREATED"}),
            ),
        ] {
            view.apply(&e).unwrap();
        }
        view
    }

    #[test]
    fn the_filter_passes_exactly_the_events_that_mail() {
        let view = shop();
        let mut candidates = Vec::new();
        for action in EventAction::ALL {
            candidates.push(RecordedEvent::synthetic(
                Topic::Customer,
                action,
                "c1",
                2,
                json!({"entity_id": "c1", "name": "Ann", "email": "a@b.c"}),
            ));
            for status in OrderStatus::ALL {
                candidates.push(RecordedEvent::synthetic(
                    Topic::Order,
                    action,
                    "o1",
                    2,
                    json!({"entity_id": "o1", "cart_id": "k1", "status": status}),
                ));
            }
            candidates.push(RecordedEvent::synthetic(
                Topic::Billing,
                action,
                "b1",
                1,
                json!({"entity_id": "b1", "order_id": "o1", "amount": 2}),
            ));
            candidates.push(RecordedEvent::synthetic(
                Topic::Shipping,
                action,
                "s1",
                1,
                json!({"entity_id": "s1", "order_id": "o1", "delivered": 0}),
            ));
        }
        let mut mailing = 0;
        for e in &candidates {
            let decision = decide_mail(&view, e).unwrap();
            let sends = matches!(decision, MailDecision::Send(_));
            assert_eq!(
                may_mail(e),
                sends,
                "{} {} {}: {decision:?}",
                e.topic,
                e.action,
                e.data
            );
            mailing += usize::from(sends);
        }
        assert_eq!(mailing, 5, "welcome, good-bye, please pay, paid, shipped");
    }
}
