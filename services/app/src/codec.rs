//! Translation between the event store client's wire records and the
//! domain's events.

use ordershop_client::{Append, Recorded};
use ordershop_core::{EventAction, NewEvent, RecordedEvent, Topic};

/// A recorded event the domain cannot read. Reading it again will not
/// change it: a saga dead-letters it (with this as the reason), a view
/// skips it and logs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown topic {0:?}")]
    Topic(String),
    #[error("entry {entry}: unknown action {action:?}")]
    Action { entry: String, action: String },
    #[error("entry {entry}: event_data is not JSON: {reason}")]
    Data { entry: String, reason: String },
}

/// The domain's view of a recorded event.
pub fn decode(record: &Recorded) -> Result<RecordedEvent, DecodeError> {
    let topic =
        Topic::from_name(&record.topic).ok_or_else(|| DecodeError::Topic(record.topic.clone()))?;
    let action = record
        .event_action
        .parse::<EventAction>()
        .map_err(|_| DecodeError::Action {
            entry: record.entry_id.clone(),
            action: record.event_action.clone(),
        })?;
    let data = serde_json::from_str(&record.event_data).map_err(|e| DecodeError::Data {
        entry: record.entry_id.clone(),
        reason: e.to_string(),
    })?;
    Ok(RecordedEvent {
        topic,
        entry_id: record.entry_id.clone(),
        event_id: record.event_id.clone(),
        action,
        entity_id: record.entity_id.clone(),
        data,
        causation_id: (!record.causation_id.is_empty()).then(|| record.causation_id.clone()),
        version: record.version,
    })
}

/// The wire form of an event a decider asked for.
pub(crate) fn encode(event: &NewEvent) -> Append {
    Append {
        event_id: event.event_id.clone(),
        event_action: event.action.as_str().to_string(),
        event_data: event.data.to_string(),
        entity_id: event.entity_id.clone(),
        causation_id: event.causation_id.clone().unwrap_or_default(),
        expected_version: event.expected_version,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_through_the_wire_shape() {
        let new = NewEvent {
            topic: Topic::Order,
            event_id: "e1".into(),
            action: EventAction::EntityUpdated,
            entity_id: "o1".into(),
            data: json!({"entity_id": "o1", "cart_id": "c1", "status": "IN_STOCK"}),
            causation_id: Some("stock:o1".into()),
            expected_version: Some(1),
        };
        let append = encode(&new);
        assert_eq!(append.expected_version, Some(1));
        let recorded = Recorded {
            topic: "order".into(),
            entry_id: "5-0".into(),
            version: 2,
            event_id: append.event_id,
            event_action: append.event_action,
            event_data: append.event_data,
            entity_id: append.entity_id,
            causation_id: append.causation_id,
            traceparent: String::new(),
        };
        let event = decode(&recorded).unwrap();
        assert_eq!(event.data, new.data);
        assert_eq!(event.causation_id.as_deref(), Some("stock:o1"));
        assert_eq!(event.version, 2);
    }

    #[test]
    fn unreadable_records_are_errors() {
        let mut record = Recorded {
            topic: "order".into(),
            entry_id: "1-0".into(),
            event_action: "entity_created".into(),
            event_data: "{".into(),
            ..Recorded::default()
        };
        assert!(matches!(decode(&record), Err(DecodeError::Data { .. })));
        record.event_data = "{}".into();
        record.event_action = "entity_moved".into();
        assert!(matches!(decode(&record), Err(DecodeError::Action { .. })));
        record.topic = "nope".into();
        assert!(matches!(decode(&record), Err(DecodeError::Topic(_))));
        record.topic = "order".into();
        record.event_action = "entity_created".into();
        assert_eq!(decode(&record).unwrap().causation_id, None);
    }
}
