//! Input checks: a bad request is refused with `InvalidArgument` before
//! anything reaches Redis.

use ordershop_topology::EntryId;

use crate::{NewEvent, StoreError};

/// Largest `event_data` accepted. Entities are small documents; a megabyte
/// keeps a runaway client from bloating a stream that is never trimmed.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Largest batch appended atomically in one script call.
pub const MAX_BATCH: usize = ordershop_topology::MAX_APPEND_BATCH;
/// Largest replay page.
pub const MAX_PAGE: usize = 1000;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidArgument(msg.into())
}

/// Topics are lowercase names: `customer`, `order`, ...
pub fn topic(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid topic {name:?}: 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter"
        )))
    }
}

/// Group and consumer names: printable, no spaces, bounded.
pub fn name(kind: &str, value: &str) -> Result<(), StoreError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {kind} {value:?}: 1-128 characters of letters, digits and -_.:@"
        )))
    }
}

/// A stream entry ID: `<ms>-<seq>` or `<ms>`. The empty cursor ("from the
/// start") is the callers' business: an ack or nack needs a real entry.
/// Snapshot names are service names (`order-service`): the topics' rule.
pub fn snapshot_name(name: &str) -> Result<(), StoreError> {
    topic(name).map_err(|_| {
        invalid(format!(
            "invalid snapshot name {name:?}: 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter"
        ))
    })
}

pub fn entry_id(value: &str) -> Result<(), StoreError> {
    match EntryId::parse(value) {
        Some(_) if !value.is_empty() => Ok(()),
        _ => Err(invalid(format!(
            "invalid entry id {value:?}: expected <ms>-<seq>"
        ))),
    }
}

/// Checks one event and fills in a server-made event id when it is empty.
pub fn event(event: &mut NewEvent) -> Result<(), StoreError> {
    if event.event_id.is_empty() {
        event.event_id = uuid::Uuid::new_v4().to_string();
    } else if uuid::Uuid::parse_str(&event.event_id).is_err() {
        return Err(invalid(format!(
            "event_id {:?} is not a UUID",
            event.event_id
        )));
    }
    let action_ok = !event.event_action.is_empty()
        && event.event_action.len() <= 64
        && event
            .event_action
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_');
    if !action_ok {
        return Err(invalid(format!(
            "invalid event_action {:?}: 1-64 characters of a-z and '_'",
            event.event_action
        )));
    }
    if event.event_data.len() > MAX_EVENT_BYTES {
        return Err(invalid(format!(
            "event_data is {} bytes, more than the limit of {MAX_EVENT_BYTES}",
            event.event_data.len()
        )));
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&event.event_data) {
        return Err(invalid(format!("event_data is not valid JSON: {e}")));
    }
    if event.entity_id.len() > 128 || event.causation_id.len() > 256 {
        return Err(invalid("entity_id (128) or causation_id (256) too long"));
    }
    if event.expected_version.is_some() && event.entity_id.is_empty() {
        return Err(invalid("expected_version needs an entity_id"));
    }
    Ok(())
}

/// Checks a batch: size, each event, no event id twice.
pub fn batch(events: &mut [NewEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(invalid("no events to publish"));
    }
    if events.len() > MAX_BATCH {
        return Err(invalid(format!(
            "{} events in one batch, more than the limit of {MAX_BATCH}",
            events.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for event in events.iter_mut() {
        self::event(event)?;
        if !seen.insert(event.event_id.clone()) {
            return Err(invalid(format!(
                "event_id {} appears twice in the batch",
                event.event_id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert!(topic("order").is_ok());
        assert!(topic("").is_err());
        assert!(topic("Order").is_err());
        assert!(topic("a b").is_err());
        assert!(topic("events:x").is_err());
    }

    #[test]
    fn entry_ids() {
        assert!(entry_id("1700000000000-0").is_ok());
        assert!(entry_id("17").is_ok());
        assert!(entry_id("x-1").is_err());
        assert!(entry_id("1-").is_err());
        assert!(entry_id("").is_err());
        assert!(entry_id("99999999999999999999999-0").is_err());
    }

    #[test]
    fn events_need_json_and_a_uuid() {
        let mut ok = NewEvent {
            event_action: "entity_created".into(),
            event_data: "{\"a\":1}".into(),
            ..Default::default()
        };
        assert!(event(&mut ok).is_ok());
        assert!(!ok.event_id.is_empty(), "server fills the id");

        let mut bad_json = NewEvent {
            event_data: "{".into(),
            ..ok.clone()
        };
        assert!(event(&mut bad_json).is_err());

        let mut bad_id = NewEvent {
            event_id: "nope".into(),
            ..ok.clone()
        };
        assert!(event(&mut bad_id).is_err());

        let mut too_big = NewEvent {
            event_data: format!("\"{}\"", "x".repeat(MAX_EVENT_BYTES)),
            ..ok.clone()
        };
        assert!(event(&mut too_big).is_err());
    }

    #[test]
    fn batches_refuse_repeated_ids() {
        let e = NewEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_action: "entity_created".into(),
            event_data: "{}".into(),
            ..Default::default()
        };
        assert!(batch(&mut [e.clone(), e]).is_err());
        assert!(batch(&mut []).is_err());
    }
}
