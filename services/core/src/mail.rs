//! The mail service: a `send` request `{to, msg, key?}` becomes a
//! `mail_sent` event `{recipient, message}` (no real SMTP).
//!
//! The event id derives from `key` (or, without one, from the queue
//! message id), and `key` is the event's causation id, so the same mail
//! handled twice is stored once.

use serde_json::{Value, json};

use crate::error::DomainError;
use crate::event::{EventAction, NewEvent};
use crate::ids;
use crate::input;
use crate::kind::Topic;

/// The `mail_sent` event for a `mail-service.send` request.
pub fn decide_mail_sent(message_id: &str, request: &Value) -> Result<NewEvent, DomainError> {
    let fields = input::object(request)?;
    let text = |field: &'static str| -> Result<String, DomainError> {
        match fields.get(field) {
            None | Some(Value::Null) => Err(DomainError::Missing { field }),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(DomainError::Missing { field }),
            Some(_) => Err(DomainError::Invalid {
                field,
                expected: "a string",
            }),
        }
    };
    let to = text("to")?;
    let msg = text("msg")?;
    let key = match fields.get("key") {
        None | Some(Value::Null) => format!("message:{message_id}"),
        Some(_) => text("key")?,
    };
    Ok(NewEvent {
        topic: Topic::Mail,
        event_id: ids::mail_event_id(&key),
        action: EventAction::MailSent,
        entity_id: String::new(),
        data: json!({"recipient": to, "message": msg}),
        causation_id: Some(key),
        expected_version: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_request_becomes_a_mail_sent_event() {
        let e = decide_mail_sent(
            "m1",
            &json!({"to": "a@b.c", "msg": "Dear A!", "key": "welcome:a"}),
        )
        .unwrap();
        assert_eq!(e.topic, Topic::Mail);
        assert_eq!(e.action, EventAction::MailSent);
        assert_eq!(e.data, json!({"recipient": "a@b.c", "message": "Dear A!"}));
        assert_eq!(e.causation_id.as_deref(), Some("welcome:a"));
        assert_eq!(e.expected_version, None);
        assert!(e.entity_id.is_empty());
    }

    #[test]
    fn the_same_mail_gets_the_same_event_id() {
        let a = decide_mail_sent("m1", &json!({"to": "a@b.c", "msg": "x", "key": "k"})).unwrap();
        let b = decide_mail_sent("m2", &json!({"to": "a@b.c", "msg": "x", "key": "k"})).unwrap();
        assert_eq!(a.event_id, b.event_id);
        let c = decide_mail_sent("m1", &json!({"to": "a@b.c", "msg": "x"})).unwrap();
        let d = decide_mail_sent("m1", &json!({"to": "a@b.c", "msg": "x"})).unwrap();
        assert_eq!(c.event_id, d.event_id);
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn recipient_and_message_are_required() {
        assert_eq!(
            decide_mail_sent("m", &json!({"msg": "x"}))
                .unwrap_err()
                .to_string(),
            "to is required"
        );
        assert_eq!(
            decide_mail_sent("m", &json!({"to": "a@b.c", "msg": 3}))
                .unwrap_err()
                .to_string(),
            "msg must be a string"
        );
    }
}
