//! The mail service: `mail-service.send` `{to, msg, key}` becomes a
//! `mail_sent` event on the `mail` topic (no real SMTP). The event id
//! derives from the key, so the same mail is stored once.

use ordershop_client::{EventStore, HandlerError, Message};
use ordershop_core::ErrorKind;
use ordershop_core::mail::decide_mail_sent;
use serde_json::{Value, json};

use crate::decide::append;
use crate::envelope;

#[derive(Debug)]
pub(crate) struct MailService {
    store: EventStore,
}

impl MailService {
    pub(crate) fn new(store: EventStore) -> Self {
        Self { store }
    }

    pub(crate) async fn send(&self, message: &Message) -> Result<Option<String>, HandlerError> {
        let request: Value = match serde_json::from_str(&message.payload) {
            Ok(request) => request,
            Err(err) => {
                return Ok(Some(envelope::error(
                    ErrorKind::Invalid,
                    format!("the request is not JSON: {err}"),
                )));
            }
        };
        let event = match decide_mail_sent(&message.id, &request) {
            Ok(event) => event,
            Err(err) => return Ok(Some(envelope::domain_error(&err))),
        };
        let positions = append(&self.store, std::slice::from_ref(&event))
            .await
            .map_err(|err| HandlerError::retry(format!("event store: {err}")))?;
        tracing::debug!(id = %message.id, key = ?event.causation_id, "mail sent");
        Ok(Some(envelope::result(json!(true), &positions)))
    }
}
