//! A service's in-memory picture of the topics it reads, folded from
//! recorded events in stream order.
//!
//! Per topic the view keeps every entity with its version (deleted entities
//! stay as tombstones, so a redelivered create of a since-deleted entity is
//! recognised), the last stream position, and every causation id seen
//! together with the changes it caused. Deciders read a view; they never
//! change it. The service appends what the decider returned, then catches
//! the view up from the store, so the view only ever holds recorded facts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entity::{Entity, EntityData};
use crate::error::DomainError;
use crate::event::{EventAction, RecordedEvent};
use crate::kind::{EntityKind, Topic};

/// What one entity looks like after the events folded so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Version of the last event applied (1, 2, ...).
    pub version: u64,
    /// The entity as of the last event; for a deleted one, as it was when
    /// deleted (uniqueness rules count deleted entities too). `None` only
    /// when no event of it was readable.
    pub state: Option<Entity>,
    /// A tombstone: the last event deleted the entity.
    pub deleted: bool,
    /// The event id of the last event applied.
    pub last_event_id: String,
}

impl Record {
    /// The entity, unless deleted.
    pub fn live(&self) -> Option<&Entity> {
        if self.deleted {
            None
        } else {
            self.state.as_ref()
        }
    }
}

/// One change made by an event that carried a causation id: the entity
/// before and after. Sagas read these to undo exactly what they did (the
/// stock restore adds back each inventory's own decrement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausedChange {
    pub entity_id: String,
    pub before: Option<Entity>,
    pub after: Option<Entity>,
}

/// What to do with a recorded event, given the version already held for its
/// entity. Shared by [`View`] and the read model's cache so both fold alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldStep {
    /// Store `event.data` as the entity, at `event.version`.
    Put,
    /// Remove the entity (keep the version as a tombstone).
    Remove,
    /// Already applied (version not newer), or not an entity event.
    Skip,
}

/// Decides how `event` changes an entity currently at `current_version`
/// (0 = never seen). Older or equal versions are skipped, so replaying,
/// redelivering or reading an event twice never resurrects a deleted entity.
pub fn fold_step(current_version: u64, event: &RecordedEvent) -> FoldStep {
    if event.version == 0 || event.topic.entity_kind().is_none() {
        return FoldStep::Skip;
    }
    if event.version <= current_version {
        return FoldStep::Skip;
    }
    match event.action {
        EventAction::EntityCreated | EventAction::EntityUpdated => FoldStep::Put,
        EventAction::EntityDeleted => FoldStep::Remove,
        EventAction::MailSent => FoldStep::Skip,
    }
}

/// Result of [`View::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    /// The event changed the view.
    Applied,
    /// The event was older than what the view holds (a replay): ignored.
    Stale,
}

/// Why a recorded event could not be folded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FoldError {
    #[error("the view does not fold the {0} topic")]
    UntrackedTopic(Topic),
    /// The event's data is not a valid entity. The view still advanced the
    /// entity's version (so later decisions expect the right version) and
    /// kept its previous state; the caller should log this.
    #[error("{topic} event {event_id} for entity {entity_id:?} has unreadable data: {reason}")]
    BadData {
        topic: Topic,
        event_id: String,
        entity_id: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TopicView {
    records: BTreeMap<String, Record>,
    causations: HashMap<String, Vec<CausedChange>>,
    /// Event id of every `entity_created` → the entity it created, so a
    /// redelivered create command finds what it created.
    created: HashMap<String, String>,
    position: Option<String>,
    /// Referenced id ([`Entity::references`]) → the entities of this topic
    /// whose state (live or tombstone) refers to it. Derived from
    /// `records`, so not serialized: rebuilt when a view is read back.
    #[serde(skip)]
    referrers: HashMap<String, BTreeSet<String>>,
}

impl TopicView {
    /// Moves `entity_id` in the reference index from what `before` refers
    /// to to what `after` does.
    fn reindex(&mut self, entity_id: &str, before: &[String], after: Option<&Entity>) {
        let after = after.map(Entity::references).unwrap_or_default();
        if after.iter().eq(before.iter()) {
            return;
        }
        for id in before {
            if let Some(referrers) = self.referrers.get_mut(id) {
                referrers.remove(entity_id);
                if referrers.is_empty() {
                    self.referrers.remove(id);
                }
            }
        }
        for id in after {
            self.referrers
                .entry(id.to_owned())
                .or_default()
                .insert(entity_id.to_owned());
        }
    }

    /// The records whose state refers to `id`, in entity id order.
    fn referring<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Record> + use<'a> {
        self.referrers
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|entity_id| self.records.get(entity_id))
    }
}

/// [`View`] as serialized: everything but the derived indexes.
#[derive(Deserialize)]
struct StoredView {
    topics: BTreeMap<Topic, TopicView>,
}

impl From<StoredView> for View {
    fn from(stored: StoredView) -> View {
        let mut topics = stored.topics;
        for topic_view in topics.values_mut() {
            let states: Vec<(String, Entity)> = topic_view
                .records
                .iter()
                .filter_map(|(id, r)| Some((id.clone(), r.state.clone()?)))
                .collect();
            for (id, state) in &states {
                topic_view.reindex(id, &[], Some(state));
            }
        }
        View { topics }
    }
}

/// The folded state of a chosen set of topics. It serializes whole (with
/// any serde format), so a service can snapshot it and resume after the
/// positions it holds instead of replaying every topic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "StoredView")]
pub struct View {
    topics: BTreeMap<Topic, TopicView>,
}

impl View {
    /// A view folding `topics`, empty until events are applied.
    pub fn new(topics: &[Topic]) -> View {
        View {
            topics: topics.iter().map(|t| (*t, TopicView::default())).collect(),
        }
    }

    pub fn tracks(&self, topic: Topic) -> bool {
        self.topics.contains_key(&topic)
    }

    pub fn topics(&self) -> impl Iterator<Item = Topic> + '_ {
        self.topics.keys().copied()
    }

    /// How much the view holds: records (tombstones included), causations
    /// and creations over all topics. What serializing it costs grows with
    /// this, not with the number of events folded.
    pub fn entries(&self) -> usize {
        self.topics
            .values()
            .map(|t| t.records.len() + t.causations.len() + t.created.len())
            .sum()
    }

    /// Fails with [`DomainError::ViewIncomplete`] unless every topic is folded.
    pub fn require(&self, topics: &[Topic]) -> Result<(), DomainError> {
        match topics.iter().find(|t| !self.tracks(**t)) {
            Some(missing) => Err(DomainError::ViewIncomplete(*missing)),
            None => Ok(()),
        }
    }

    /// The entry id of the last event folded for `topic` (where to resume
    /// reading), `None` before the first.
    pub fn position(&self, topic: Topic) -> Option<&str> {
        self.topics.get(&topic)?.position.as_deref()
    }

    /// Folds one recorded event. Events of a topic must come in stream order.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<Folded, FoldError> {
        let topic_view = self
            .topics
            .get_mut(&event.topic)
            .ok_or(FoldError::UntrackedTopic(event.topic))?;
        topic_view.position = Some(event.entry_id.clone());

        let Some(kind) = event.topic.entity_kind() else {
            // Mails have no entity; only their causation id matters.
            record_causation(topic_view, event, None);
            return Ok(Folded::Applied);
        };
        let record = topic_view.records.get(&event.entity_id);
        let current = record.map_or(0, |r| r.version);
        let step = fold_step(current, event);
        if step == FoldStep::Skip {
            // Before any copy of the record: replays skip many.
            return Ok(Folded::Stale);
        }
        let last_state = record.and_then(|r| r.state.clone());
        let last_refs: Vec<String> = last_state
            .as_ref()
            .map(|e| e.references().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let before = record.and_then(|r| r.live().cloned());
        let (state, bad) = if step == FoldStep::Put {
            match read_entity(kind, event) {
                Ok(entity) => (Some(entity), None),
                Err(reason) => (last_state, Some(reason)),
            }
        } else {
            // Remove: the deleted event carries the entity as it was.
            (read_entity(kind, event).ok().or(last_state), None)
        };
        let deleted = step == FoldStep::Remove;
        let after = if deleted { None } else { state.clone() };
        topic_view.reindex(&event.entity_id, &last_refs, state.as_ref());
        topic_view.records.insert(
            event.entity_id.clone(),
            Record {
                version: event.version,
                state,
                deleted,
                last_event_id: event.event_id.clone(),
            },
        );
        if event.action == EventAction::EntityCreated {
            topic_view
                .created
                .insert(event.event_id.clone(), event.entity_id.clone());
        }
        record_causation(
            topic_view,
            event,
            Some(CausedChange {
                entity_id: event.entity_id.clone(),
                before,
                after,
            }),
        );
        match bad {
            None => Ok(Folded::Applied),
            Some(reason) => Err(FoldError::BadData {
                topic: event.topic,
                event_id: event.event_id.clone(),
                entity_id: event.entity_id.clone(),
                reason,
            }),
        }
    }

    /// The record (live or tombstone) of an entity, if any event named it.
    pub fn record(&self, topic: Topic, entity_id: &str) -> Option<&Record> {
        self.topics.get(&topic)?.records.get(entity_id)
    }

    /// The entity's current version; 0 when no event named it yet.
    pub fn version(&self, topic: Topic, entity_id: &str) -> u64 {
        self.record(topic, entity_id).map_or(0, |r| r.version)
    }

    /// A live entity of any kind.
    pub fn entity(&self, kind: EntityKind, entity_id: &str) -> Option<&Entity> {
        self.record(kind.topic(), entity_id)?.live()
    }

    /// The entity created by the `entity_created` event with this id.
    pub fn created_by(&self, topic: Topic, event_id: &str) -> Option<&str> {
        self.topics
            .get(&topic)?
            .created
            .get(event_id)
            .map(String::as_str)
    }

    /// A live entity, typed: `view.get::<Cart>(id)`.
    pub fn get<T: EntityData>(&self, entity_id: &str) -> Option<&T> {
        T::from_entity(self.entity(T::KIND, entity_id)?)
    }

    /// Every live entity of a kind, in id order.
    pub fn all<T: EntityData>(&self) -> impl Iterator<Item = &T> + '_ {
        self.topics
            .get(&T::KIND.topic())
            .into_iter()
            .flat_map(|t| t.records.values())
            .filter_map(Record::live)
            .filter_map(T::from_entity)
    }

    /// The live entities of `T`'s kind that refer to `id` ([`Entity::references`]),
    /// in id order: found through an index, whatever the number of entities.
    pub fn referring<'a, T: EntityData>(
        &'a self,
        id: &str,
    ) -> impl Iterator<Item = &'a T> + use<'a, T> {
        self.topics
            .get(&T::KIND.topic())
            .map(|t| t.referring(id))
            .into_iter()
            .flatten()
            .filter_map(Record::live)
            .filter_map(T::from_entity)
    }

    /// Every entity of a kind that refers to `id`, deleted ones included
    /// (in their last state), in id order.
    pub fn history_referring<'a>(
        &'a self,
        kind: EntityKind,
        id: &str,
    ) -> impl Iterator<Item = &'a Entity> + use<'a> {
        self.topics
            .get(&kind.topic())
            .map(|t| t.referring(id))
            .into_iter()
            .flatten()
            .filter_map(|r| r.state.as_ref())
    }

    /// Every entity of a kind ever recorded, deleted ones included (in their
    /// last state), in id order.
    pub fn history(&self, kind: EntityKind) -> impl Iterator<Item = &Entity> + '_ {
        self.topics
            .get(&kind.topic())
            .into_iter()
            .flat_map(|t| t.records.values())
            .filter_map(|r| r.state.as_ref())
    }

    /// Whether an event with this causation id was folded for `topic`.
    pub fn has_seen(&self, topic: Topic, causation_id: &str) -> bool {
        self.topics
            .get(&topic)
            .is_some_and(|t| t.causations.contains_key(causation_id))
    }

    /// The entity changes made by events with this causation id, in order.
    pub fn caused_by(&self, topic: Topic, causation_id: &str) -> &[CausedChange] {
        self.topics
            .get(&topic)
            .and_then(|t| t.causations.get(causation_id))
            .map_or(&[], Vec::as_slice)
    }

    /// The live entities of a kind as JSON documents by id (the shape the
    /// read-model queries in [`crate::query`] take).
    pub fn entity_map(&self, kind: EntityKind) -> BTreeMap<String, Value> {
        self.topics
            .get(&kind.topic())
            .into_iter()
            .flat_map(|t| t.records.iter())
            .filter_map(|(id, r)| Some((id.clone(), r.live()?.to_json())))
            .collect()
    }
}

fn read_entity(kind: EntityKind, event: &RecordedEvent) -> Result<Entity, String> {
    let entity = Entity::from_json(kind, &event.data).map_err(|e| e.to_string())?;
    if entity.entity_id() != event.entity_id {
        return Err(format!(
            "data names entity {:?}, the event names {:?}",
            entity.entity_id(),
            event.entity_id
        ));
    }
    Ok(entity)
}

fn record_causation(
    topic_view: &mut TopicView,
    event: &RecordedEvent,
    change: Option<CausedChange>,
) {
    let Some(causation) = &event.causation_id else {
        return;
    };
    let changes = topic_view.causations.entry(causation.clone()).or_default();
    changes.extend(change);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entity::{Customer, Inventory};

    fn customer(id: &str, name: &str) -> Value {
        json!({"entity_id": id, "name": name, "email": format!("{name}@example.org")})
    }

    #[test]
    fn folds_creates_updates_and_deletes_with_versions() {
        let mut view = View::new(&[Topic::Customer]);
        let events = [
            RecordedEvent::synthetic(
                Topic::Customer,
                EventAction::EntityCreated,
                "c1",
                1,
                customer("c1", "ann"),
            ),
            RecordedEvent::synthetic(
                Topic::Customer,
                EventAction::EntityCreated,
                "c2",
                1,
                customer("c2", "bob"),
            ),
            RecordedEvent::synthetic(
                Topic::Customer,
                EventAction::EntityUpdated,
                "c1",
                2,
                customer("c1", "anna"),
            ),
            RecordedEvent::synthetic(
                Topic::Customer,
                EventAction::EntityDeleted,
                "c2",
                2,
                customer("c2", "bob"),
            ),
        ];
        for e in &events {
            assert_eq!(view.apply(e).unwrap(), Folded::Applied);
        }
        assert_eq!(view.get::<Customer>("c1").unwrap().name, "anna");
        assert_eq!(view.version(Topic::Customer, "c1"), 2);
        assert!(view.get::<Customer>("c2").is_none());
        // The tombstone keeps the version, so a re-create is detectable.
        assert_eq!(view.version(Topic::Customer, "c2"), 2);
        assert_eq!(view.version(Topic::Customer, "c3"), 0);
        assert_eq!(view.all::<Customer>().count(), 1);
        // History keeps the deleted one in its last state.
        assert_eq!(view.history(EntityKind::Customer).count(), 2);
        let tombstone = view.record(Topic::Customer, "c2").unwrap();
        assert!(tombstone.deleted);
        assert_eq!(tombstone.live(), None);
        assert_eq!(tombstone.state.as_ref().unwrap().entity_id(), "c2");
        assert_eq!(view.created_by(Topic::Customer, "ev-c2-1"), Some("c2"));
        assert_eq!(view.created_by(Topic::Customer, "ev-c1-2"), None);
        assert_eq!(view.position(Topic::Customer), Some("2-0"));
        assert_eq!(
            view.record(Topic::Customer, "c1").unwrap().last_event_id,
            "ev-c1-2"
        );
    }

    #[test]
    fn the_reference_index_follows_updates_and_deletes() {
        use crate::entity::Cart;
        let cart = |products: &[&str]| json!({"entity_id": "k1", "customer_id": "c1", "product_ids": products});
        let mut view = View::new(&[Topic::Cart]);
        let events = [
            (EventAction::EntityCreated, 1, cart(&["p1", "p1"])),
            (EventAction::EntityUpdated, 2, cart(&["p2"])),
        ];
        for (action, version, data) in events {
            view.apply(&RecordedEvent::synthetic(
                Topic::Cart,
                action,
                "k1",
                version,
                data,
            ))
            .unwrap();
        }
        let ids = |view: &View, id: &str| -> Vec<String> {
            view.referring::<Cart>(id)
                .map(|c| c.entity_id.clone())
                .collect()
        };
        assert_eq!(ids(&view, "c1"), ["k1"]);
        assert_eq!(ids(&view, "p2"), ["k1"]);
        assert!(ids(&view, "p1").is_empty(), "the update dropped p1");
        view.apply(&RecordedEvent::synthetic(
            Topic::Cart,
            EventAction::EntityDeleted,
            "k1",
            3,
            cart(&["p2"]),
        ))
        .unwrap();
        // Deleted: no longer live, still in the history.
        assert!(ids(&view, "c1").is_empty());
        assert_eq!(view.history_referring(EntityKind::Cart, "c1").count(), 1);
    }

    #[test]
    fn replayed_events_never_resurrect_or_roll_back() {
        let mut view = View::new(&[Topic::Customer]);
        let created = RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityCreated,
            "c1",
            1,
            customer("c1", "ann"),
        );
        let deleted = RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityDeleted,
            "c1",
            2,
            customer("c1", "ann"),
        );
        view.apply(&created).unwrap();
        view.apply(&deleted).unwrap();
        assert_eq!(view.apply(&created).unwrap(), Folded::Stale);
        assert!(view.get::<Customer>("c1").is_none());
        assert_eq!(view.apply(&deleted).unwrap(), Folded::Stale);
    }

    #[test]
    fn untracked_topics_are_refused() {
        let mut view = View::new(&[Topic::Customer]);
        let e =
            RecordedEvent::synthetic(Topic::Order, EventAction::EntityCreated, "o1", 1, json!({}));
        assert_eq!(view.apply(&e), Err(FoldError::UntrackedTopic(Topic::Order)));
        assert!(view.require(&[Topic::Customer]).is_ok());
        assert_eq!(
            view.require(&[Topic::Customer, Topic::Cart]),
            Err(DomainError::ViewIncomplete(Topic::Cart))
        );
    }

    #[test]
    fn unreadable_data_advances_the_version_and_keeps_the_entity() {
        let mut view = View::new(&[Topic::Customer]);
        view.apply(&RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityCreated,
            "c1",
            1,
            customer("c1", "ann"),
        ))
        .unwrap();
        let bad = RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityUpdated,
            "c1",
            2,
            json!({"name": 5}),
        );
        assert!(matches!(view.apply(&bad), Err(FoldError::BadData { .. })));
        assert_eq!(view.version(Topic::Customer, "c1"), 2);
        assert_eq!(view.get::<Customer>("c1").unwrap().name, "ann");
        // Data naming another entity is unreadable too.
        let wrong = RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityUpdated,
            "c1",
            3,
            customer("c9", "x"),
        );
        assert!(matches!(view.apply(&wrong), Err(FoldError::BadData { .. })));
        assert_eq!(view.get::<Customer>("c1").unwrap().entity_id, "c1");
    }

    #[test]
    fn remembers_causations_with_before_and_after() {
        let mut view = View::new(&[Topic::Inventory, Topic::Mail]);
        let inv = |amount: i64| json!({"entity_id": "i1", "product_id": "p1", "amount": amount});
        view.apply(&RecordedEvent::synthetic(
            Topic::Inventory,
            EventAction::EntityCreated,
            "i1",
            1,
            inv(5),
        ))
        .unwrap();
        let mut reserve = RecordedEvent::synthetic(
            Topic::Inventory,
            EventAction::EntityUpdated,
            "i1",
            2,
            inv(3),
        );
        reserve.causation_id = Some("reserve:o1".into());
        view.apply(&reserve).unwrap();
        assert!(view.has_seen(Topic::Inventory, "reserve:o1"));
        assert!(!view.has_seen(Topic::Inventory, "restore:o1"));
        let changes = view.caused_by(Topic::Inventory, "reserve:o1");
        assert_eq!(changes.len(), 1);
        let amount = |e: &Option<Entity>| match e {
            Some(Entity::Inventory(Inventory { amount, .. })) => *amount,
            _ => panic!("not an inventory"),
        };
        assert_eq!(amount(&changes[0].before), 5);
        assert_eq!(amount(&changes[0].after), 3);
        assert!(view.caused_by(Topic::Inventory, "nothing").is_empty());

        let mut mail =
            RecordedEvent::synthetic(Topic::Mail, EventAction::MailSent, "", 0, json!({}));
        mail.causation_id = Some("welcome:c1".into());
        assert_eq!(view.apply(&mail).unwrap(), Folded::Applied);
        assert!(view.has_seen(Topic::Mail, "welcome:c1"));
        assert_eq!(view.position(Topic::Mail), Some("0-0"));
    }

    #[test]
    fn fold_step_is_shared_logic_for_the_read_model() {
        let e = RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityUpdated,
            "c1",
            3,
            json!({}),
        );
        assert_eq!(fold_step(2, &e), FoldStep::Put);
        assert_eq!(fold_step(3, &e), FoldStep::Skip);
        assert_eq!(fold_step(4, &e), FoldStep::Skip);
        let d = RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityDeleted,
            "c1",
            4,
            json!({}),
        );
        assert_eq!(fold_step(3, &d), FoldStep::Remove);
        let m = RecordedEvent::synthetic(Topic::Mail, EventAction::MailSent, "", 0, json!({}));
        assert_eq!(fold_step(0, &m), FoldStep::Skip);
    }

    #[test]
    fn entity_maps_hold_only_live_entities_as_json() {
        let mut view = View::new(&[Topic::Customer]);
        view.apply(&RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityCreated,
            "c1",
            1,
            customer("c1", "ann"),
        ))
        .unwrap();
        view.apply(&RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityCreated,
            "c2",
            1,
            customer("c2", "bob"),
        ))
        .unwrap();
        view.apply(&RecordedEvent::synthetic(
            Topic::Customer,
            EventAction::EntityDeleted,
            "c2",
            2,
            customer("c2", "bob"),
        ))
        .unwrap();
        let map = view.entity_map(EntityKind::Customer);
        assert_eq!(map.len(), 1);
        assert_eq!(map["c1"], customer("c1", "ann"));
        assert!(view.entity_map(EntityKind::Order).is_empty());
    }
}
