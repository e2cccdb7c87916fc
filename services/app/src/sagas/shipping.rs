//! The shipping service's saga on `billing` events: a created billing gets
//! its shipping (`delivered: 0`), once.

use ordershop_client::{Delivery, HandlerError};
use ordershop_core::sagas::shipping::decide_shipping_for_event;
use ordershop_core::{Decision, EventAction};

use crate::decide::Writer;
use crate::live_view::Freshness;
use crate::sagas::{readable, retry};

#[derive(Debug)]
pub(crate) struct ShippingSaga {
    writer: Writer,
}

impl ShippingSaga {
    pub(crate) fn new(writer: Writer) -> Self {
        Self { writer }
    }

    pub(crate) async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
        let event = readable(&delivery.event)?;
        // Only a created billing ships; skip the rest before catching up.
        if event.action != EventAction::EntityCreated {
            return Ok(());
        }
        let outcome = self
            .writer
            .decide(Freshness::Heads(&delivery.heads), |view| {
                let shipping = decide_shipping_for_event(view, &event)?;
                Ok(Decision {
                    reply: shipping.as_ref().map(|s| s.entity_id.clone()),
                    events: shipping.into_iter().collect(),
                })
            })
            .await
            .map_err(|err| retry("shipping", err))?;
        if let Some(shipping) = outcome.reply {
            tracing::debug!(billing = %event.entity_id, %shipping, "shipping created");
        }
        Ok(())
    }
}
