//! The queue functions `create_<plural>`, `update_<singular>` and
//! `delete_<singular>` of a domain service.
//!
//! Replies: the decider's result with the positions of the appended events,
//! or the decider's refusal with its class. An unreachable event store is
//! not a reply: the message is refused and redelivered, and since ids and
//! event ids derive from the message id, the retry cannot write twice.

use ordershop_client::{HandlerError, Message};
use ordershop_core::commands::decide_command;
use ordershop_core::{CommandOp, EntityKind, ErrorKind};
use serde_json::Value;

use crate::decide::{DecideError, Outcome, Writer};
use crate::envelope;
use crate::live_view::Freshness;

/// The command handlers of one entity kind.
#[derive(Debug)]
pub(crate) struct Commands {
    kind: EntityKind,
    writer: Writer,
}

impl Commands {
    pub(crate) fn new(kind: EntityKind, writer: Writer) -> Commands {
        Commands { kind, writer }
    }

    pub(crate) async fn handle(
        &self,
        op: CommandOp,
        message: &Message,
    ) -> Result<Option<String>, HandlerError> {
        let input: Value = match serde_json::from_str(&message.payload) {
            Ok(input) => input,
            Err(err) => {
                return Ok(Some(envelope::error(
                    ErrorKind::Invalid,
                    format!("the request is not JSON: {err}"),
                )));
            }
        };
        let outcome = self
            .writer
            .decide(Freshness::Now, |view| {
                decide_command(self.kind, op, view, &message.id, &input)
            })
            .await;
        reply(&message.channel, outcome)
    }
}

/// The envelope for a command's outcome, or a refusal to redeliver it.
pub(crate) fn reply(
    channel: &str,
    outcome: Result<Outcome<Value>, DecideError>,
) -> Result<Option<String>, HandlerError> {
    match outcome {
        Ok(done) => Ok(Some(envelope::result(done.reply, &done.positions))),
        Err(DecideError::Domain(err)) => {
            if err.kind() == ErrorKind::Internal {
                tracing::error!(%channel, error = %err, "command failed on our side");
            }
            Ok(Some(envelope::domain_error(&err)))
        }
        Err(err @ DecideError::Conflict(_)) => {
            tracing::warn!(%channel, error = %err, "command gave up on contention");
            Ok(Some(envelope::error(ErrorKind::Conflict, err)))
        }
        Err(DecideError::Store(err)) => Err(HandlerError::retry(format!("event store: {err}"))),
    }
}
