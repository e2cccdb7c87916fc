//! Input checks: refused with `InvalidArgument` before anything is written.

use crate::QueueError;

/// Largest payload accepted: commands carry entities or small batches.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

fn invalid(msg: impl Into<String>) -> QueueError {
    QueueError::InvalidArgument(msg.into())
}

fn is_part(part: &str) -> bool {
    !part.is_empty()
        && part.starts_with(|c: char| c.is_ascii_lowercase())
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `<service>.<function>`, lowercase, at most 128 characters.
pub fn channel(name: &str) -> Result<(), QueueError> {
    let ok = name.len() <= 128
        && matches!(name.split_once('.'), Some((service, function)) if is_part(service) && is_part(function));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid channel {name:?}: expected <service>.<function>, lowercase letters, digits, '_' and '-'"
        )))
    }
}

/// A JSON document of bounded size.
pub fn payload(payload: &str) -> Result<(), QueueError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid(format!(
            "payload is {} bytes, more than the limit of {MAX_PAYLOAD_BYTES}",
            payload.len()
        )));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| invalid(format!("payload is not valid JSON: {e}")))
}

/// Message ids are UUIDs made by the queue.
pub fn message_id(id: &str) -> Result<(), QueueError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| invalid(format!("invalid message id {id:?}")))
}

pub fn idempotency_key(key: &str) -> Result<(), QueueError> {
    if key.len() > 256 || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "idempotency key: at most 256 characters, no spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels() {
        assert!(channel("order-service.create_orders").is_ok());
        assert!(channel("order-service").is_err());
        assert!(channel(".x").is_err());
        assert!(channel("Order.x").is_err());
        assert!(channel("a.b c").is_err());
        assert!(channel("").is_err());
    }

    #[test]
    fn payloads() {
        assert!(payload("{\"a\":[1,2]}").is_ok());
        assert!(payload("{").is_err());
        assert!(payload(&format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES))).is_err());
    }
}
