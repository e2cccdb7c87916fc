//! The sagas: event handlers on durable consumer-group subscriptions.
//!
//! Every handler first brings its view up to the heads its delivery came
//! with (everything published before its event; no call of its own), and
//! is idempotent: the core's
//! deciders recognise their own earlier work by causation id, so a
//! redelivered event changes nothing twice. A handler returns `Err` only
//! for what may pass (the event store is away, the order is not ready
//! yet); the subscription then redelivers the event later, with a capped
//! backoff, for as long as it takes. Only an event no retry can help (it
//! cannot be read) is dead-lettered.

pub(crate) mod order_status;
pub(crate) mod shipping;
pub(crate) mod stock;

use std::time::Duration;

use ordershop_client::{HandlerError, Queue, Recorded};
use ordershop_core::RecordedEvent;

use crate::codec::decode;
use crate::decide::DecideError;

/// The domain event of a delivery. One that cannot be read is refused for
/// good: no retry can make it readable, so it goes to the dead-letter
/// stream with the reason, where an operator can see it.
pub(crate) fn readable(record: &Recorded) -> Result<RecordedEvent, HandlerError> {
    decode(record).map_err(|err| {
        tracing::error!(topic = %record.topic, entry = %record.entry_id, error = %err, "unreadable event dead-lettered");
        HandlerError::permanent(format!("unreadable event: {err}"))
    })
}

/// How long an event that came too early waits before its next delivery:
/// doubling from half a second, so the usual wait (the inventory's verdict
/// is a few milliseconds behind) costs one short pause and a slow one is
/// retried every few seconds until it applies.
pub(crate) fn not_yet_pause(delivery_count: u32) -> Duration {
    let doublings = delivery_count.saturating_sub(1).min(4);
    Duration::from_millis(500) * 2u32.pow(doublings)
}

/// Sends a saga's request under a key derived from what it means ("the
/// verdict for order X", "the welcome mail of customer Y"). A key already
/// used for another payload (parts of it are read per delivery) means the
/// request went out before, and the first stands. Returns whether it was
/// sent now.
pub(crate) async fn send_once(
    queue: &Queue,
    channel: &str,
    payload: &str,
    key: &str,
) -> Result<bool, HandlerError> {
    match queue.send(channel, payload, key).await {
        Ok(_) => Ok(true),
        Err(err) if err.is_key_reused() => {
            tracing::debug!(%channel, %key, "already sent under this key");
            Ok(false)
        }
        Err(err) => Err(HandlerError::retry(format!(
            "sending {key} on {channel}: {err}"
        ))),
    }
}

/// A failed decision as a refusal of the delivery.
pub(crate) fn retry(step: &str, err: DecideError) -> HandlerError {
    if let DecideError::Domain(err) = &err {
        // The deciders refuse events only when the view lacks a topic: a
        // wiring bug, which a retry will not fix but a deploy will.
        tracing::error!(%step, error = %err, "saga decision failed on our side");
    }
    HandlerError::retry(format!("{step}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_and_stop_growing() {
        assert_eq!(not_yet_pause(1), Duration::from_millis(500));
        assert_eq!(not_yet_pause(2), Duration::from_secs(1));
        assert_eq!(not_yet_pause(5), Duration::from_secs(8));
        assert_eq!(not_yet_pause(50), Duration::from_secs(8));
        assert_eq!(not_yet_pause(0), Duration::from_millis(500));
    }
}
