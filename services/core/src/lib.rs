//! OrderShop's domain: entities, validation, the order state machine, event
//! folding and every business decision. Pure: no I/O, no clock, no
//! randomness; the services around it do the talking.
//!
//! # How a service uses it
//!
//! 1. Keep a [`View`] of the topics the decisions need (each decider names
//!    them: [`commands::command_topics`], [`sagas::stock::STOCK_TOPICS`], ...)
//!    and fold every recorded event into it with [`View::apply`].
//! 2. On a command or an event, catch the view up to the head of those
//!    topics, then call a decider. It returns the [`NewEvent`]s to append,
//!    with expected versions and deterministic event ids, or a
//!    [`DomainError`] for the client.
//! 3. Append the events (one atomic batch per topic). On a version conflict
//!    catch up and decide again; an event id already stored is stored once,
//!    so redelivered messages change nothing twice.
//!
//! | who | decider | answers |
//! |---|---|---|
//! | customer … shipping services | [`commands::decide_command`] (create / update / delete) | events + `[ids]` or `true` |
//! | inventory, on `order` events | [`sagas::stock::decide_stock`] | inventory events + IN_STOCK / OUT_OF_STOCK verdict |
//! | order, on `set_status` and billing / shipping events | [`sagas::order_status::decide_order_status`] | an order update, or done / not yet / refused |
//! | shipping, on `billing` events | [`sagas::shipping::decide_shipping_for_event`] | a shipping to create |
//! | crm, on customer / order / billing / shipping events | [`crm::decide_mail`] | a mail with an idempotency key |
//! | mail, on `send` | [`mail::decide_mail_sent`] | a `mail_sent` event |
//! | read model, gateway | [`query`] | entities, unbilled / unshipped / delivered orders, reports |
//!
//! # Where the rules are
//!
//! - Field rules (required fields, numbers as numbers, unknown fields
//!   dropped): [`input`].
//! - Reference rules (what must exist, what a delete refuses): one module
//!   per kind under `commands/`, each with its rules in its doc comment.
//! - Status moves: the table in [`state_machine`].
//! - Idempotency: deterministic ids in [`ids`], saga marks in [`causation`].

pub mod causation;
pub mod commands;
pub mod crm;
mod entity;
mod error;
mod event;
pub mod ids;
pub mod input;
mod kind;
mod lookup;
pub mod mail;
pub mod query;
pub mod sagas;
pub mod state_machine;
mod status;
mod view;

#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod testing;

pub use commands::{CommandOp, Decision};
pub use entity::{
    Billing, Cart, Customer, Entity, EntityData, Inventory, Order, Product, Shipping,
};
pub use error::{DomainError, ErrorKind};
pub use event::{EventAction, NewEvent, RecordedEvent, UnknownAction};
pub use kind::{EntityKind, Topic};
pub use status::{OrderStatus, UnknownStatus};
pub use view::{CausedChange, FoldError, FoldStep, Folded, Record, View, fold_step};
