use serde::{Deserialize, Serialize};

/// A request as delivered to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub payload: String,
    pub attempt: u32,
    pub idempotency_key: String,
    pub enqueued_at_ms: i64,
    /// W3C trace context of the call that sent it; empty when untraced.
    pub traceparent: String,
}

/// Result of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub message_id: String,
    /// The idempotency key was seen before: nothing was enqueued.
    pub duplicate: bool,
}

/// What the messages hash stores per message id.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// Its response goes onto the signal list itself (see
    /// `scripts::RESPOND`); earlier releases' senders do not set it, and
    /// their waiters read the response from the reply key. First on
    /// purpose, like the next field.
    #[serde(default)]
    pub(crate) signal_reply: bool,
    /// Until when (Unix ms) the reply must be kept: as long as the
    /// idempotency key, so a retry within the key's window finds the reply
    /// the first attempt produced. First on purpose: the respond script
    /// reads it with an anchored pattern instead of decoding the envelope.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) keep_reply_until_ms: u64,
    pub(crate) payload: String,
    #[serde(default)]
    pub(crate) idempotency_key: String,
    pub(crate) enqueued_at_ms: i64,
    /// The sending call's span, for the consumer's span to continue.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) traceparent: String,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::Envelope;

    /// The respond script reads these two fields by their place at the head
    /// of the JSON, not by decoding it.
    #[test]
    fn an_envelope_starts_with_what_the_respond_script_reads() {
        let envelope = Envelope {
            signal_reply: true,
            keep_reply_until_ms: 42,
            payload: "{\"keep_reply_until_ms\":7}".into(),
            idempotency_key: "k".into(),
            enqueued_at_ms: 1,
            traceparent: String::new(),
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(
            json.starts_with(r#"{"signal_reply":true,"keep_reply_until_ms":42,"#),
            "{json}"
        );
    }
}
