//! The deciders of the queue commands `create_<plural>`,
//! `update_<singular>` and `delete_<singular>`.
//!
//! A decider reads the caller's [`View`] (caught up to the head of every
//! topic in [`command_topics`]) and the command's JSON, and returns either
//! the events to append — with expected versions, so a concurrent change
//! makes the append fail and the caller decides again — or a
//! [`DomainError`]. It never writes anything itself.
//!
//! Idempotency: ids and event ids derive from the queue message id, so
//! handling a redelivered message gives the same answer and appends
//! nothing new:
//! - a create whose entities already exist (even if since deleted) answers
//!   the same ids with no events;
//! - an update or delete whose event is the entity's last one answers `true`
//!   with no events;
//! - an update that changes nothing answers `true` with no events (so no
//!   mail or saga fires for a no-op PUT).
//!
//! Per-kind reference rules live in one module per kind; each says what a
//! delete refuses and why.

mod billing;
mod cart;
mod customer;
mod inventory;
mod order;
mod product;
mod shipping;

use serde_json::{Map, Value, json};

use crate::entity::Entity;
use crate::error::DomainError;
use crate::event::{EventAction, NewEvent};
use crate::ids;
use crate::input;
use crate::kind::{EntityKind, Topic};
use crate::view::View;

/// The three command functions of every domain service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandOp {
    Create,
    Update,
    Delete,
}

impl CommandOp {
    /// The queue function name: `create_customers`, `update_customer`, ...
    pub fn function_name(self, kind: EntityKind) -> String {
        match self {
            CommandOp::Create => format!("create_{}", kind.plural()),
            CommandOp::Update => format!("update_{}", kind.singular()),
            CommandOp::Delete => format!("delete_{}", kind.singular()),
        }
    }

    /// Reads a queue function name back (`update_cart` → (Cart, Update)).
    pub fn parse_function(name: &str) -> Option<(EntityKind, CommandOp)> {
        if let Some(plural) = name.strip_prefix("create_") {
            return Some((EntityKind::from_plural(plural)?, CommandOp::Create));
        }
        if let Some(singular) = name.strip_prefix("update_") {
            return Some((EntityKind::from_singular(singular)?, CommandOp::Update));
        }
        let singular = name.strip_prefix("delete_")?;
        Some((EntityKind::from_singular(singular)?, CommandOp::Delete))
    }
}

/// What a decider returns: events to append, then the reply to send once
/// they are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<R> {
    pub events: Vec<NewEvent>,
    pub reply: R,
}

/// The topics the view of `kind`'s domain service must fold for its
/// command deciders.
pub const fn command_topics(kind: EntityKind) -> &'static [Topic] {
    use Topic as T;
    match kind {
        EntityKind::Customer => &[T::Customer, T::Cart, T::Order],
        EntityKind::Product => &[T::Product, T::Cart, T::Inventory],
        EntityKind::Inventory => &[T::Inventory, T::Product],
        EntityKind::Cart => &[T::Cart, T::Customer, T::Product, T::Inventory, T::Order],
        EntityKind::Order => &[T::Order, T::Cart, T::Customer, T::Billing, T::Shipping],
        EntityKind::Billing => &[T::Billing, T::Order, T::Cart, T::Product],
        EntityKind::Shipping => &[T::Shipping, T::Order, T::Billing],
    }
}

/// Any command, with the reply as the JSON `result` (`[ids]` or `true`).
pub fn decide_command(
    kind: EntityKind,
    op: CommandOp,
    view: &View,
    message_id: &str,
    input: &Value,
) -> Result<Decision<Value>, DomainError> {
    Ok(match op {
        CommandOp::Create => {
            let d = decide_create(kind, view, message_id, input)?;
            Decision {
                events: d.events,
                reply: json!(d.reply),
            }
        }
        CommandOp::Update => {
            let d = decide_update(kind, view, message_id, input)?;
            Decision {
                events: d.events,
                reply: json!(d.reply),
            }
        }
        CommandOp::Delete => {
            let d = decide_delete(kind, view, message_id, input)?;
            Decision {
                events: d.events,
                reply: json!(d.reply),
            }
        }
    })
}

/// The rules of a command's input that need no state, which the deciders
/// apply before they look at the state, so a command that passes may still be refused by the
/// state (404, 409) but never as malformed (400). The gateway runs this
/// before it enqueues a command.
pub fn check_input(kind: EntityKind, op: CommandOp, input: &Value) -> Result<(), DomainError> {
    match op {
        CommandOp::Create => {
            let is_list = input.is_array();
            for (index, fields) in input::batch(input)?.into_iter().enumerate() {
                input::new_entity(kind, fields)
                    .map_err(|e| if is_list { e.in_item(index) } else { e })?;
            }
        }
        CommandOp::Update => {
            let fields = input::object(input)?;
            let id = input::entity_id(fields)?;
            input::entity(kind, id, fields)?;
        }
        CommandOp::Delete => {
            input::entity_id(input::object(input)?)?;
        }
    }
    Ok(())
}

/// `create_<plural>`: one object or a list; all items are valid or nothing
/// is written (the events form one atomic batch). Replies the new ids in
/// input order.
///
/// Ids: customers, products and carts get [`ids::new_entity_id`]
/// `(message_id, index)`; kinds with a uniqueness rule (see
/// [`Entity::unique_key`]) get [`ids::keyed_entity_id`], so two messages
/// creating, say, a billing for the same order at the same time compete for
/// one id and only one append succeeds. Item `i`'s event id is
/// [`ids::create_event_id`]`(message_id, topic, i)` in both cases.
pub fn decide_create(
    kind: EntityKind,
    view: &View,
    message_id: &str,
    input: &Value,
) -> Result<Decision<Vec<String>>, DomainError> {
    view.require(command_topics(kind))?;
    let items = input::batch(input)?;
    let topic = kind.topic();
    let event_ids: Vec<String> = (0..items.len())
        .map(|index| ids::create_event_id(message_id, topic.name(), index))
        .collect();
    // Batches are appended atomically: one item on record means this very
    // message was handled before.
    if event_ids
        .iter()
        .any(|e| view.created_by(topic, e).is_some())
    {
        let created = event_ids
            .iter()
            .filter_map(|e| view.created_by(topic, e))
            .map(str::to_string)
            .collect();
        return Ok(Decision {
            events: Vec::new(),
            reply: created,
        });
    }
    let in_item = |index: usize| {
        let is_list = input.is_array();
        move |e: DomainError| if is_list { e.in_item(index) } else { e }
    };
    let mut pending: Vec<Entity> = Vec::with_capacity(items.len());
    for (index, fields) in items.iter().enumerate() {
        let mut entity = input::new_entity(kind, fields)
            .and_then(|e| check_create(view, e, &pending))
            .map_err(in_item(index))?;
        let id = match entity.unique_key() {
            Some(key) => next_keyed_id(view, kind, key),
            None => ids::new_entity_id(message_id, index),
        };
        entity.set_entity_id(id);
        pending.push(entity);
    }
    let events = pending
        .iter()
        .zip(event_ids)
        .map(|(e, event_id)| NewEvent::entity(EventAction::EntityCreated, e, event_id, 0, None))
        .collect();
    Ok(Decision {
        events,
        reply: pending.iter().map(|e| e.entity_id().to_string()).collect(),
    })
}

/// The id of the next entity of `kind` whose unique key is `key`: one more
/// than every such entity ever recorded (deleted ones count), skipping ids
/// already on record.
pub(crate) fn next_keyed_id(view: &View, kind: EntityKind, key: &str) -> String {
    let mut generation = view
        .history_referring(kind, key)
        .filter(|e| e.unique_key() == Some(key))
        .count();
    loop {
        let id = ids::keyed_entity_id(kind.singular(), key, generation);
        if view.record(kind.topic(), &id).is_none() {
            return id;
        }
        generation += 1;
    }
}

/// `update_<singular>`: the whole entity with its `entity_id`. Fields the
/// input may omit (an order's `status`, a shipping's `delivered`) keep
/// their current value. Replies `true`.
pub fn decide_update(
    kind: EntityKind,
    view: &View,
    message_id: &str,
    input: &Value,
) -> Result<Decision<bool>, DomainError> {
    view.require(command_topics(kind))?;
    let fields = input::object(input)?;
    let id = input::entity_id(fields)?;
    // Malformed input is refused as such whether or not the entity exists.
    let given = input::entity(kind, id.clone(), fields)?;
    let topic = kind.topic();
    let event_id = ids::command_event_id(message_id, topic.name(), &id);
    let record = view.record(topic, &id);
    if record.is_some_and(|r| r.last_event_id == event_id) {
        return Ok(done());
    }
    let (old, version) = record
        .and_then(|r| Some((r.live()?, r.version)))
        .ok_or(DomainError::NotFound(kind))?;
    let new = keep_omitted(old, given, fields);
    let new = check_update(view, old, new)?;
    if new == *old {
        return Ok(done());
    }
    Ok(Decision {
        events: vec![NewEvent::entity(
            EventAction::EntityUpdated,
            &new,
            event_id,
            version,
            None,
        )],
        reply: true,
    })
}

/// `delete_<singular>`: the input needs only `entity_id`. Replies `true`.
pub fn decide_delete(
    kind: EntityKind,
    view: &View,
    message_id: &str,
    input: &Value,
) -> Result<Decision<bool>, DomainError> {
    view.require(command_topics(kind))?;
    let id = input::entity_id(input::object(input)?)?;
    let topic = kind.topic();
    let event_id = ids::command_event_id(message_id, topic.name(), &id);
    let record = view.record(topic, &id);
    if record.is_some_and(|r| r.last_event_id == event_id) {
        return Ok(done());
    }
    let (old, version) = record
        .and_then(|r| Some((r.live()?, r.version)))
        .ok_or(DomainError::NotFound(kind))?;
    check_delete(view, old)?;
    Ok(Decision {
        events: vec![NewEvent::entity(
            EventAction::EntityDeleted,
            old,
            event_id,
            version,
            None,
        )],
        reply: true,
    })
}

fn done() -> Decision<bool> {
    Decision {
        events: Vec::new(),
        reply: true,
    }
}

/// Optional fields absent from an update keep their current value.
fn keep_omitted(old: &Entity, mut new: Entity, fields: &Map<String, Value>) -> Entity {
    match (old, &mut new) {
        (Entity::Order(old), Entity::Order(new)) if !input::has_field(fields, "status") => {
            new.status = old.status;
        }
        (Entity::Shipping(old), Entity::Shipping(new))
            if !input::has_field(fields, "delivered") =>
        {
            new.delivered = old.delivered;
        }
        _ => {}
    }
    new
}

/// `pending` holds the batch's earlier items (same kind), which count as
/// existing for uniqueness rules (one inventory per product, ...).
fn check_create(view: &View, new: Entity, pending: &[Entity]) -> Result<Entity, DomainError> {
    fn same<T: crate::entity::EntityData>(pending: &[Entity]) -> Vec<&T> {
        pending.iter().filter_map(T::from_entity).collect()
    }
    match &new {
        Entity::Customer(e) => customer::create(view, e)?,
        Entity::Product(e) => product::create(view, e)?,
        Entity::Inventory(e) => inventory::create(view, e, &same(pending))?,
        Entity::Cart(e) => cart::create(view, e)?,
        Entity::Order(e) => order::create(view, e, &same(pending))?,
        Entity::Billing(e) => billing::create(view, e, &same(pending))?,
        Entity::Shipping(e) => shipping::create(view, e, &same(pending))?,
    }
    Ok(new)
}

fn check_update(view: &View, old: &Entity, new: Entity) -> Result<Entity, DomainError> {
    match (old, &new) {
        (Entity::Customer(old), Entity::Customer(new)) => customer::update(view, old, new)?,
        (Entity::Product(old), Entity::Product(new)) => product::update(view, old, new)?,
        (Entity::Inventory(old), Entity::Inventory(new)) => inventory::update(view, old, new)?,
        (Entity::Cart(old), Entity::Cart(new)) => cart::update(view, old, new)?,
        (Entity::Order(old), Entity::Order(new)) => order::update(view, old, new)?,
        (Entity::Billing(old), Entity::Billing(new)) => billing::update(view, old, new)?,
        (Entity::Shipping(old), Entity::Shipping(new)) => shipping::update(view, old, new)?,
        // Both come from the same kind's topic and input reader.
        _ => return Err(DomainError::Immutable { field: "kind" }),
    }
    Ok(new)
}

fn check_delete(view: &View, old: &Entity) -> Result<(), DomainError> {
    match old {
        Entity::Customer(e) => customer::delete(view, e),
        Entity::Product(e) => product::delete(view, e),
        Entity::Inventory(e) => inventory::delete(view, e),
        Entity::Cart(e) => cart::delete(view, e),
        Entity::Order(e) => order::delete(view, e),
        Entity::Billing(e) => billing::delete(view, e),
        Entity::Shipping(e) => shipping::delete(view, e),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entity::Customer;
    use crate::testing::Shop;

    fn update_customer(
        shop: &Shop,
        message: &str,
        input: Value,
    ) -> Result<Decision<bool>, DomainError> {
        decide_update(EntityKind::Customer, &shop.view, message, &input)
    }

    fn delete_customer(
        shop: &Shop,
        message: &str,
        id: &str,
    ) -> Result<Decision<bool>, DomainError> {
        decide_delete(
            EntityKind::Customer,
            &shop.view,
            message,
            &json!({ "entity_id": id }),
        )
    }

    #[test]
    fn function_names_round_trip() {
        for kind in EntityKind::ALL {
            for op in [CommandOp::Create, CommandOp::Update, CommandOp::Delete] {
                let name = op.function_name(kind);
                assert_eq!(CommandOp::parse_function(&name), Some((kind, op)), "{name}");
            }
        }
        assert_eq!(
            CommandOp::function_name(CommandOp::Create, EntityKind::Inventory),
            "create_inventories"
        );
        assert_eq!(CommandOp::parse_function("create_inventory"), None);
        assert_eq!(CommandOp::parse_function("set_status"), None);
    }

    #[test]
    fn create_one_or_many_with_ids_from_the_message() {
        let mut shop = Shop::new();
        let one = decide_create(
            EntityKind::Customer,
            &shop.view,
            "m1",
            &json!({"name": "Ann", "email": "ann@example.org"}),
        )
        .unwrap();
        assert_eq!(one.reply, vec![ids::new_entity_id("m1", 0)]);
        assert_eq!(one.events.len(), 1);
        let event = &one.events[0];
        assert_eq!(event.action, EventAction::EntityCreated);
        assert_eq!(event.topic, Topic::Customer);
        assert_eq!(event.expected_version, Some(0));
        assert_eq!(event.entity_id, one.reply[0]);
        assert_eq!(event.data["entity_id"], json!(one.reply[0]));
        assert_eq!(event.data["name"], json!("Ann"));
        shop.append(&one.events).unwrap();

        let many = decide_create(
            EntityKind::Customer,
            &shop.view,
            "m2",
            &json!([{"name": "Bob", "email": "bob@example.org"}, {"name": "Cy", "email": "cy@example.org"}]),
        )
        .unwrap();
        assert_eq!(many.reply.len(), 2);
        assert_ne!(many.reply[0], many.reply[1]);
        assert_eq!(many.events.len(), 2);
    }

    #[test]
    fn one_invalid_item_refuses_the_whole_batch() {
        let shop = Shop::new();
        let err = decide_create(
            EntityKind::Customer,
            &shop.view,
            "m1",
            &json!([{"name": "Ann", "email": "ann@example.org"}, {"name": "Bob"}]),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "item 1: email is required");
        // A single object's error has no item prefix.
        let err = decide_create(
            EntityKind::Customer,
            &shop.view,
            "m1",
            &json!({"name": "Bob"}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "email is required");
    }

    #[test]
    fn an_empty_list_is_refused() {
        let shop = Shop::new();
        let err = decide_create(EntityKind::Product, &shop.view, "m1", &json!([])).unwrap_err();
        assert_eq!(err, DomainError::EmptyBatch);
    }

    #[test]
    fn input_checks_need_no_state_and_match_the_deciders() {
        let shop = Shop::new();
        let cases = [
            (
                EntityKind::Customer,
                CommandOp::Create,
                json!({"name": "Ann"}),
            ),
            (EntityKind::Customer, CommandOp::Create, json!([])),
            (
                EntityKind::Order,
                CommandOp::Create,
                json!({"cart_id": "c", "status": "SHIPPED"}),
            ),
            (
                EntityKind::Product,
                CommandOp::Update,
                json!({"entity_id": "p", "name": "Tea"}),
            ),
            (
                EntityKind::Product,
                CommandOp::Update,
                json!({"name": "Tea", "price": 1}),
            ),
            (
                EntityKind::Cart,
                CommandOp::Delete,
                json!({"entity_id": " "}),
            ),
            (EntityKind::Cart, CommandOp::Delete, json!([])),
        ];
        for (kind, op, input) in cases {
            let checked = check_input(kind, op, &input).unwrap_err();
            let decided = decide_command(kind, op, &shop.view, "m1", &input).unwrap_err();
            assert_eq!(checked, decided, "{kind:?} {op:?} {input}");
            assert_eq!(checked.kind(), crate::ErrorKind::Invalid, "{checked}");
        }
        // Input that only the state refuses passes the check.
        for (kind, op, input) in [
            (
                EntityKind::Cart,
                CommandOp::Create,
                json!({"customer_id": "nobody", "product_ids": ["p"]}),
            ),
            (
                EntityKind::Customer,
                CommandOp::Update,
                json!({"entity_id": "c9", "name": "A", "email": "a@b"}),
            ),
            (
                EntityKind::Customer,
                CommandOp::Delete,
                json!({"entity_id": "c9", "name": 1}),
            ),
        ] {
            check_input(kind, op, &input).unwrap();
            let refused = decide_command(kind, op, &shop.view, "m1", &input).unwrap_err();
            assert_ne!(refused.kind(), crate::ErrorKind::Invalid, "{refused}");
        }
    }

    #[test]
    fn a_redelivered_create_answers_the_same_ids_and_appends_nothing() {
        let mut shop = Shop::new();
        let input = json!([{"name": "Tea", "price": 2}, {"name": "Cup", "price": 4}]);
        let first = decide_create(EntityKind::Product, &shop.view, "m1", &input).unwrap();
        shop.append(&first.events).unwrap();
        let again = decide_create(EntityKind::Product, &shop.view, "m1", &input).unwrap();
        assert_eq!(again.reply, first.reply);
        assert!(again.events.is_empty());
        // Even once one of them is deleted, the message is not replayed.
        shop.delete(
            shop.view
                .entity(EntityKind::Product, &first.reply[0])
                .unwrap()
                .clone(),
        );
        let later = decide_create(EntityKind::Product, &shop.view, "m1", &input).unwrap();
        assert!(later.events.is_empty());
        // And appending the first decision twice stores it once.
        assert_eq!(shop.append(&first.events), Ok(0));
    }

    #[test]
    fn kinds_with_a_uniqueness_rule_get_ids_from_their_key() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", crate::OrderStatus::InStock);
        let input = json!({"order_id": "o1", "amount": 9});
        let first = decide_create(EntityKind::Billing, &shop.view, "m1", &input).unwrap();
        assert_eq!(first.reply, vec![ids::keyed_entity_id("billing", "o1", 0)]);
        // A second client billing the same order at the same moment decides
        // on the same view, gets the same id, and loses the append.
        let second = decide_create(EntityKind::Billing, &shop.view, "m2", &input).unwrap();
        assert_eq!(second.reply, first.reply);
        shop.append(&first.events).unwrap();
        assert!(shop.append(&second.events).is_err());
        let err = decide_create(EntityKind::Billing, &shop.view, "m2", &input).unwrap_err();
        assert!(
            err.to_string().starts_with("order o1 is already billed"),
            "{err}"
        );
        // The winner's redelivery answers its id.
        let again = decide_create(EntityKind::Billing, &shop.view, "m1", &input).unwrap();
        assert_eq!(again.reply, first.reply);
        assert!(again.events.is_empty());
        // After a deletion the next billing of o1 is the next generation.
        let billing = shop
            .view
            .entity(EntityKind::Billing, &first.reply[0])
            .unwrap()
            .clone();
        shop.delete(billing);
        let third = decide_create(EntityKind::Billing, &shop.view, "m3", &input).unwrap();
        assert_eq!(third.reply, vec![ids::keyed_entity_id("billing", "o1", 1)]);
    }

    #[test]
    fn update_replaces_the_whole_entity_with_the_expected_version() {
        let mut shop = Shop::new();
        shop.customer("c1", "Ann");
        let d = update_customer(
            &shop,
            "m1",
            json!({"entity_id": "c1", "name": "Anna", "email": "anna@example.org"}),
        )
        .unwrap();
        assert!(d.reply);
        assert_eq!(d.events[0].action, EventAction::EntityUpdated);
        assert_eq!(d.events[0].expected_version, Some(1));
        shop.append(&d.events).unwrap();
        assert_eq!(shop.view.get::<Customer>("c1").unwrap().name, "Anna");
        // Redelivered: nothing new.
        let again = update_customer(
            &shop,
            "m1",
            json!({"entity_id": "c1", "name": "Anna", "email": "anna@example.org"}),
        )
        .unwrap();
        assert!(again.events.is_empty());
    }

    #[test]
    fn an_update_that_changes_nothing_appends_nothing() {
        let mut shop = Shop::new();
        shop.customer("c1", "Ann");
        let d = update_customer(
            &shop,
            "m1",
            json!({"entity_id": "c1", "name": "Ann", "email": "ann@example.org", "extra": 1}),
        )
        .unwrap();
        assert!(d.reply);
        assert!(d.events.is_empty());
    }

    #[test]
    fn update_and_delete_of_unknown_entities_use_the_contract_text() {
        let mut shop = Shop::new();
        for kind in EntityKind::ALL {
            let err =
                decide_delete(kind, &shop.view, "m1", &json!({"entity_id": "nope"})).unwrap_err();
            assert_eq!(err.to_string(), format!("could not find {kind}"));
            assert_eq!(err.kind(), crate::ErrorKind::NotFound);
            let mut valid = match kind {
                EntityKind::Customer => json!({"name": "A", "email": "a@b"}),
                EntityKind::Product => json!({"name": "Tea", "price": 1}),
                EntityKind::Inventory => json!({"product_id": "p", "amount": 1}),
                EntityKind::Cart => json!({"customer_id": "c", "product_ids": ["p"]}),
                EntityKind::Order => json!({"cart_id": "c"}),
                EntityKind::Billing => json!({"order_id": "o", "amount": 1}),
                EntityKind::Shipping => json!({"order_id": "o"}),
            };
            valid["entity_id"] = json!("nope");
            let err = decide_update(kind, &shop.view, "m1", &valid).unwrap_err();
            assert_eq!(err.to_string(), format!("could not find {kind}"));
            // Malformed input is refused as such, known entity or not.
            let err =
                decide_update(kind, &shop.view, "m1", &json!({"entity_id": "nope"})).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Invalid, "{err}");
        }
        // A deleted entity is unknown too.
        shop.customer("c1", "Ann");
        let d = delete_customer(&shop, "m1", "c1").unwrap();
        shop.append(&d.events).unwrap();
        let err = delete_customer(&shop, "m2", "c1").unwrap_err();
        assert_eq!(err, DomainError::NotFound(EntityKind::Customer));
    }

    #[test]
    fn delete_carries_the_last_state_and_a_redelivery_is_a_success() {
        let mut shop = Shop::new();
        shop.customer("c1", "Ann");
        let d = delete_customer(&shop, "m1", "c1").unwrap();
        assert_eq!(d.events[0].action, EventAction::EntityDeleted);
        assert_eq!(d.events[0].data["name"], json!("Ann"));
        assert_eq!(d.events[0].expected_version, Some(1));
        shop.append(&d.events).unwrap();
        let again = delete_customer(&shop, "m1", "c1").unwrap();
        assert!(again.reply);
        assert!(again.events.is_empty());
    }

    #[test]
    fn a_stale_decision_loses_the_race_and_the_retry_sees_the_winner() {
        let mut shop = Shop::new();
        shop.customer("c1", "Ann");
        let a = update_customer(
            &shop,
            "ma",
            json!({"entity_id": "c1", "name": "A", "email": "a@example.org"}),
        )
        .unwrap();
        let b = update_customer(
            &shop,
            "mb",
            json!({"entity_id": "c1", "name": "B", "email": "b@example.org"}),
        )
        .unwrap();
        shop.append(&a.events).unwrap();
        assert!(shop.append(&b.events).is_err());
        let b = update_customer(
            &shop,
            "mb",
            json!({"entity_id": "c1", "name": "B", "email": "b@example.org"}),
        )
        .unwrap();
        assert_eq!(b.events[0].expected_version, Some(2));
        shop.append(&b.events).unwrap();
        assert_eq!(shop.view.get::<Customer>("c1").unwrap().name, "B");
    }

    #[test]
    fn commands_need_their_topics_in_the_view() {
        let view = View::new(&[Topic::Customer]);
        let err = decide_create(
            EntityKind::Customer,
            &view,
            "m",
            &json!({"name": "A", "email": "a@b.c"}),
        )
        .unwrap_err();
        assert_eq!(err, DomainError::ViewIncomplete(Topic::Cart));
        assert_eq!(err.kind(), crate::ErrorKind::Internal);
    }

    #[test]
    fn decide_command_replies_in_the_envelope_shape() {
        let mut shop = Shop::new();
        let d = decide_command(
            EntityKind::Customer,
            CommandOp::Create,
            &shop.view,
            "m1",
            &json!({"name": "Ann", "email": "ann@example.org"}),
        )
        .unwrap();
        assert_eq!(d.reply, json!([ids::new_entity_id("m1", 0)]));
        shop.append(&d.events).unwrap();
        let d = decide_command(
            EntityKind::Customer,
            CommandOp::Delete,
            &shop.view,
            "m2",
            &json!({"entity_id": ids::new_entity_id("m1", 0)}),
        )
        .unwrap();
        assert_eq!(d.reply, json!(true));
    }

    #[test]
    fn ids_given_on_create_are_ignored() {
        let shop = Shop::new();
        let d = decide_create(
            EntityKind::Customer,
            &shop.view,
            "m1",
            &json!({"entity_id": "mine", "name": "Ann", "email": "ann@example.org"}),
        )
        .unwrap();
        assert_ne!(d.reply[0], "mine");
    }
}
