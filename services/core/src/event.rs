//! Events as the domain sees them: what a decider asks to append
//! ([`NewEvent`]) and what the event store hands back ([`RecordedEvent`]).
//! The adapters translate these to and from the wire (gRPC, Redis).

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::entity::{Entity, EntityData};
use crate::kind::Topic;

/// What happened. The wire names are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventAction {
    EntityCreated,
    EntityUpdated,
    EntityDeleted,
    MailSent,
}

impl EventAction {
    pub const ALL: [EventAction; 4] = [
        EventAction::EntityCreated,
        EventAction::EntityUpdated,
        EventAction::EntityDeleted,
        EventAction::MailSent,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventAction::EntityCreated => "entity_created",
            EventAction::EntityUpdated => "entity_updated",
            EventAction::EntityDeleted => "entity_deleted",
            EventAction::MailSent => "mail_sent",
        }
    }

    /// The live-push name: `entity` replaced by the topic (`order_updated`);
    /// `mail_sent` stays as is.
    pub fn push_name(self, topic: Topic) -> String {
        self.as_str().replace("entity", topic.name())
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the four action names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event action {0:?}")]
pub struct UnknownAction(pub String);

impl FromStr for EventAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

/// An event a decider wants appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub topic: Topic,
    /// Deterministic (see [`crate::ids`]): appending the same decision twice
    /// stores it once.
    pub event_id: String,
    pub action: EventAction,
    /// Empty for events that are not about an entity (mails).
    pub entity_id: String,
    /// The whole entity after the change (for a delete: the entity as it
    /// was), or `{recipient, message}` for a mail.
    pub data: Value,
    /// What caused this event, e.g. `reserve:<order id>`; see
    /// [`crate::causation`].
    pub causation_id: Option<String>,
    /// The entity's version the decision was based on (0 = must not exist
    /// yet); `None` = no check (mails).
    pub expected_version: Option<u64>,
}

impl NewEvent {
    /// An entity event (created / updated / deleted) carrying the whole entity.
    pub fn entity(
        action: EventAction,
        entity: &Entity,
        event_id: String,
        expected_version: u64,
        causation_id: Option<String>,
    ) -> NewEvent {
        NewEvent {
            topic: entity.kind().topic(),
            event_id,
            action,
            entity_id: entity.entity_id().to_string(),
            data: entity.to_json(),
            causation_id,
            expected_version: Some(expected_version),
        }
    }
}

/// An event as stored, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub topic: Topic,
    /// The stream entry id (`<ms>-<seq>`), which orders the topic.
    pub entry_id: String,
    pub event_id: String,
    pub action: EventAction,
    pub entity_id: String,
    pub data: Value,
    pub causation_id: Option<String>,
    /// The entity's version after this event (1, 2, ...); 0 when the event
    /// has no entity.
    pub version: u64,
}

impl RecordedEvent {
    /// An event as the store would record the `version`-th change of an
    /// entity, with entry id `<version>-0`: for tests and examples that fold
    /// events without a store.
    pub fn synthetic(
        topic: Topic,
        action: EventAction,
        entity_id: &str,
        version: u64,
        data: Value,
    ) -> RecordedEvent {
        RecordedEvent {
            topic,
            entry_id: format!("{version}-0"),
            event_id: format!("ev-{entity_id}-{version}"),
            action,
            entity_id: entity_id.into(),
            data,
            causation_id: None,
            version,
        }
    }

    /// The entity this event carries, typed; `None` when the event belongs
    /// to another topic or its data is not such an entity.
    pub fn entity<T: EntityData>(&self) -> Option<T> {
        if self.topic != T::KIND.topic() {
            return None;
        }
        let entity = Entity::from_json(T::KIND, &self.data).ok()?;
        T::from_entity(&entity).cloned()
    }

    /// The shape `GET /mails/sent` and the report list mails in:
    /// `[entry_id, {event_id, event_action, event_data}]` with `event_data`
    /// a JSON *string*, as the reference returned it.
    pub fn to_mail_entry(&self) -> Value {
        json!([
            self.entry_id,
            {
                "event_id": self.event_id,
                "event_action": self.action.as_str(),
                "event_data": self.data.to_string(),
            }
        ])
    }

    /// The live-push message for browsers: `{action, data, ts}` where `ts`
    /// is the entry id's millisecond part (when the store recorded it).
    pub fn to_push_message(&self) -> Value {
        let ts = self
            .entry_id
            .split('-')
            .next()
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(0);
        json!({
            "action": self.action.push_name(self.topic),
            "data": self.data,
            "ts": ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for action in EventAction::ALL {
            assert_eq!(action.as_str().parse::<EventAction>().unwrap(), action);
        }
        assert!("entity_changed".parse::<EventAction>().is_err());
    }

    #[test]
    fn push_names_replace_entity_with_the_topic() {
        assert_eq!(
            EventAction::EntityUpdated.push_name(Topic::Order),
            "order_updated"
        );
        assert_eq!(EventAction::MailSent.push_name(Topic::Mail), "mail_sent");
    }

    fn mail() -> RecordedEvent {
        RecordedEvent {
            topic: Topic::Mail,
            entry_id: "1700000000123-0".into(),
            event_id: "e1".into(),
            action: EventAction::MailSent,
            entity_id: String::new(),
            data: json!({"recipient": "a@b.c", "message": "hi"}),
            causation_id: None,
            version: 0,
        }
    }

    #[test]
    fn mail_entries_have_the_reference_shape() {
        let entry = mail().to_mail_entry();
        assert_eq!(entry[0], json!("1700000000123-0"));
        assert_eq!(entry[1]["event_action"], json!("mail_sent"));
        let data: Value = serde_json::from_str(entry[1]["event_data"].as_str().unwrap()).unwrap();
        assert_eq!(data["recipient"], json!("a@b.c"));
    }

    #[test]
    fn typed_entities_come_only_from_their_topic() {
        use crate::entity::{Customer, Order};
        let event = RecordedEvent {
            topic: Topic::Customer,
            entry_id: "1-0".into(),
            event_id: "e".into(),
            action: EventAction::EntityCreated,
            entity_id: "c1".into(),
            data: json!({"entity_id": "c1", "name": "Ann", "email": "ann@example.org"}),
            causation_id: None,
            version: 1,
        };
        assert_eq!(event.entity::<Customer>().unwrap().name, "Ann");
        assert!(event.entity::<Order>().is_none());
        assert!(mail().entity::<Customer>().is_none());
    }

    #[test]
    fn push_messages_carry_action_data_and_time() {
        let push = mail().to_push_message();
        assert_eq!(push["action"], json!("mail_sent"));
        assert_eq!(push["ts"], json!(1_700_000_000_123_u64));
        assert_eq!(push["data"]["message"], json!("hi"));
    }
}
