//! The CRM: turns customer, order, billing and shipping events into mails,
//! sent through `mail-service.send` with the mail's key as the queue's
//! idempotency key (and the mail service stores one event per key), so a
//! redelivered event never mails twice.

use std::sync::Arc;

use ordershop_client::{HandlerError, Queue, Recorded};
use ordershop_core::crm::{MailDecision, decide_mail};
use ordershop_topology::{Role, channel_name};

use crate::live_view::LiveView;
use crate::sagas::readable;

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

    pub(crate) async fn handle(
        &self,
        record: Recorded,
        _delivery: u32,
    ) -> Result<(), HandlerError> {
        let Some(event) = readable(&record) else {
            return Ok(());
        };
        // Mails name customers and price carts: the view must include
        // everything that happened before the event.
        self.view
            .catch_up()
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
        self.queue
            .send(&self.send, &mail.send_request().to_string(), &mail.key)
            .await
            .map_err(|err| HandlerError::retry(format!("sending mail {}: {err}", mail.key)))?;
        tracing::debug!(key = %mail.key, to = %mail.to, "mail requested");
        Ok(())
    }
}
