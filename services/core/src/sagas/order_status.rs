//! The order service's saga: move an order's status when the inventory
//! gives its verdict (`set_status`) or a billing or shipping event arrives,
//! through [`crate::state_machine::transition`].
//!
//! Each trigger is applied at most once: the status update carries a
//! causation id naming the trigger (`billing_created:<billing>`, ...), and a
//! trigger whose mark is in the view is done. A trigger about an entity
//! deleted before the trigger counted is dropped (a billing deleted before
//! the order got CLEARED never clears it; its deletion then has nothing to
//! undo).

use std::fmt;

use serde_json::Value;

use crate::causation;
use crate::entity::{Billing, Entity, Order, Shipping};
use crate::error::DomainError;
use crate::event::{EventAction, NewEvent, RecordedEvent};
use crate::ids;
use crate::input;
use crate::kind::{EntityKind, Topic};
use crate::state_machine::{Transition, Trigger, transition};
use crate::status::OrderStatus;
use crate::view::View;

/// The topics the order service's view must fold for this saga.
pub const ORDER_STATUS_TOPICS: &[Topic] = &[Topic::Order, Topic::Billing, Topic::Shipping];

/// Something that may move an order, with the ids that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusTrigger {
    /// The inventory's verdict: IN_STOCK (`true`) or OUT_OF_STOCK.
    Stock {
        in_stock: bool,
    },
    BillingCreated {
        billing_id: String,
    },
    BillingDeleted {
        billing_id: String,
    },
    ShippingCreated {
        shipping_id: String,
    },
    ShippingDelivered {
        shipping_id: String,
    },
}

impl StatusTrigger {
    pub fn trigger(&self) -> Trigger {
        match self {
            StatusTrigger::Stock { in_stock: true } => Trigger::InStock,
            StatusTrigger::Stock { in_stock: false } => Trigger::OutOfStock,
            StatusTrigger::BillingCreated { .. } => Trigger::BillingCreated,
            StatusTrigger::BillingDeleted { .. } => Trigger::BillingDeleted,
            StatusTrigger::ShippingCreated { .. } => Trigger::ShippingCreated,
            StatusTrigger::ShippingDelivered { .. } => Trigger::ShippingDelivered,
        }
    }

    /// The causation id of the status update this trigger makes.
    pub fn causation_id(&self, order_id: &str) -> String {
        match self {
            StatusTrigger::Stock { .. } => causation::stock_verdict(order_id),
            StatusTrigger::BillingCreated { billing_id } => causation::billing_created(billing_id),
            StatusTrigger::BillingDeleted { billing_id } => causation::billing_deleted(billing_id),
            StatusTrigger::ShippingCreated { shipping_id } => {
                causation::shipping_created(shipping_id)
            }
            StatusTrigger::ShippingDelivered { shipping_id } => {
                causation::shipping_delivered(shipping_id)
            }
        }
    }
}

impl fmt::Display for StatusTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusTrigger::Stock { in_stock: true } => f.write_str("verdict IN_STOCK"),
            StatusTrigger::Stock { in_stock: false } => f.write_str("verdict OUT_OF_STOCK"),
            StatusTrigger::BillingCreated { billing_id } => {
                write!(f, "billing {billing_id} created")
            }
            StatusTrigger::BillingDeleted { billing_id } => {
                write!(f, "billing {billing_id} deleted")
            }
            StatusTrigger::ShippingCreated { shipping_id } => {
                write!(f, "shipping {shipping_id} created")
            }
            StatusTrigger::ShippingDelivered { shipping_id } => {
                write!(f, "shipping {shipping_id} delivered")
            }
        }
    }
}

/// A trigger for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub order_id: String,
    pub trigger: StatusTrigger,
}

impl StatusChange {
    /// Reads the `order-service.set_status` payload `{entity_id, status}`;
    /// the status must be IN_STOCK or OUT_OF_STOCK.
    pub fn from_set_status(payload: &Value) -> Result<StatusChange, DomainError> {
        let fields = input::object(payload)?;
        let order_id = input::entity_id(fields)?;
        let in_stock = match fields.get("status").and_then(Value::as_str) {
            Some("IN_STOCK") => true,
            Some("OUT_OF_STOCK") => false,
            None if !input::has_field(fields, "status") => {
                return Err(DomainError::Missing { field: "status" });
            }
            _ => {
                return Err(DomainError::Invalid {
                    field: "status",
                    expected: "IN_STOCK or OUT_OF_STOCK",
                });
            }
        };
        Ok(StatusChange {
            order_id,
            trigger: StatusTrigger::Stock { in_stock },
        })
    }

    /// The trigger a `billing` or `shipping` event carries, if any: billing
    /// created or deleted, shipping created, shipping updated with
    /// `delivered` ≠ 0.
    pub fn from_event(event: &RecordedEvent) -> Option<StatusChange> {
        let (order_id, trigger) = match (event.topic, event.action) {
            (Topic::Billing, EventAction::EntityCreated) => {
                let b = event.entity::<Billing>()?;
                (
                    b.order_id,
                    StatusTrigger::BillingCreated {
                        billing_id: b.entity_id,
                    },
                )
            }
            (Topic::Billing, EventAction::EntityDeleted) => {
                let b = event.entity::<Billing>()?;
                (
                    b.order_id,
                    StatusTrigger::BillingDeleted {
                        billing_id: b.entity_id,
                    },
                )
            }
            (Topic::Shipping, EventAction::EntityCreated) => {
                let s = event.entity::<Shipping>()?;
                (
                    s.order_id,
                    StatusTrigger::ShippingCreated {
                        shipping_id: s.entity_id,
                    },
                )
            }
            (Topic::Shipping, EventAction::EntityUpdated) => {
                let s = event.entity::<Shipping>()?;
                if s.delivered == 0 {
                    return None;
                }
                (
                    s.order_id,
                    StatusTrigger::ShippingDelivered {
                        shipping_id: s.entity_id,
                    },
                )
            }
            _ => return None,
        };
        Some(StatusChange { order_id, trigger })
    }
}

/// What to do about a status trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusOutcome {
    /// Append this order update, then acknowledge.
    Append(NewEvent),
    /// Nothing to change (already applied, or moot); acknowledge.
    Done(String),
    /// An earlier step has not been processed yet; retry later.
    NotYet(String),
    /// The trigger contradicts the order's state; retrying will not help
    /// (log it, dead-letter it).
    Refused(String),
}

/// Decides what `change` does to its order.
pub fn decide_order_status(
    view: &View,
    change: &StatusChange,
) -> Result<StatusOutcome, DomainError> {
    view.require(ORDER_STATUS_TOPICS)?;
    let StatusChange { order_id, trigger } = change;
    let Some(order) = view.get::<Order>(order_id) else {
        return Ok(StatusOutcome::Done(format!(
            "order {order_id} no longer exists"
        )));
    };
    let cause = trigger.causation_id(order_id);
    if view.has_seen(Topic::Order, &cause) {
        return Ok(StatusOutcome::Done(format!(
            "{trigger} was already applied"
        )));
    }
    match trigger {
        StatusTrigger::BillingCreated { billing_id }
            if view.get::<Billing>(billing_id).is_none() =>
        {
            return Ok(StatusOutcome::Done(format!(
                "billing {billing_id} was deleted before it counted"
            )));
        }
        StatusTrigger::BillingDeleted { billing_id }
            if !view.has_seen(Topic::Order, &causation::billing_created(billing_id)) =>
        {
            return Ok(StatusOutcome::Done(format!(
                "billing {billing_id} never cleared the order"
            )));
        }
        StatusTrigger::ShippingCreated { shipping_id }
        | StatusTrigger::ShippingDelivered { shipping_id }
            if view.get::<Shipping>(shipping_id).is_none() =>
        {
            return Ok(StatusOutcome::Done(format!(
                "shipping {shipping_id} no longer exists"
            )));
        }
        _ => {}
    }
    let status = order.status;
    Ok(match transition(status, trigger.trigger()) {
        Transition::Apply(to) => StatusOutcome::Append(status_event(view, order, to, cause)),
        Transition::AlreadyThere => StatusOutcome::Done(format!(
            "order {order_id} is {status}, which reflects {trigger}"
        )),
        Transition::NotYet => {
            StatusOutcome::NotYet(format!("order {order_id} is {status}; {trigger} must wait"))
        }
        Transition::Refused(reason) => {
            StatusOutcome::Refused(format!("{trigger} for order {order_id}: {reason}"))
        }
    })
}

fn status_event(view: &View, order: &Order, to: OrderStatus, cause: String) -> NewEvent {
    let updated = Entity::Order(Order {
        status: to,
        ..order.clone()
    });
    NewEvent::entity(
        EventAction::EntityUpdated,
        &updated,
        ids::saga_event_id(&cause, Topic::Order.name(), &order.entity_id),
        view.version(EntityKind::Order.topic(), &order.entity_id),
        Some(cause),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::Shop;

    fn change(trigger: StatusTrigger) -> StatusChange {
        StatusChange {
            order_id: "o1".into(),
            trigger,
        }
    }

    fn billing_created() -> StatusChange {
        change(StatusTrigger::BillingCreated {
            billing_id: "b1".into(),
        })
    }

    fn billing_deleted() -> StatusChange {
        change(StatusTrigger::BillingDeleted {
            billing_id: "b1".into(),
        })
    }

    fn shipping_created() -> StatusChange {
        change(StatusTrigger::ShippingCreated {
            shipping_id: "s1".into(),
        })
    }

    fn delivered() -> StatusChange {
        change(StatusTrigger::ShippingDelivered {
            shipping_id: "s1".into(),
        })
    }

    fn in_stock() -> StatusChange {
        change(StatusTrigger::Stock { in_stock: true })
    }

    fn status(shop: &Shop) -> OrderStatus {
        shop.view.get::<Order>("o1").unwrap().status
    }

    /// Decides and, for Append, stores; returns a short label.
    fn step(shop: &mut Shop, c: &StatusChange) -> &'static str {
        match decide_order_status(&shop.view, c).unwrap() {
            StatusOutcome::Append(event) => {
                shop.append(&[event]).unwrap();
                "applied"
            }
            StatusOutcome::Done(_) => "done",
            StatusOutcome::NotYet(_) => "not yet",
            StatusOutcome::Refused(_) => "refused",
        }
    }

    fn created_order() -> Shop {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::Created);
        shop
    }

    #[test]
    fn the_happy_path_to_delivered() {
        let mut shop = created_order();
        assert_eq!(step(&mut shop, &in_stock()), "applied");
        assert_eq!(status(&shop), OrderStatus::InStock);
        shop.billing("b1", "o1", 9.0);
        assert_eq!(step(&mut shop, &billing_created()), "applied");
        assert_eq!(status(&shop), OrderStatus::Cleared);
        shop.shipping("s1", "o1", 0);
        assert_eq!(step(&mut shop, &shipping_created()), "applied");
        assert_eq!(status(&shop), OrderStatus::Shipped);
        shop.shipping("s1", "o1", 1_700_000_000);
        assert_eq!(step(&mut shop, &delivered()), "applied");
        assert_eq!(status(&shop), OrderStatus::Delivered);
        let last = shop.last();
        assert_eq!(last.causation_id.as_deref(), Some("shipping_delivered:s1"));
    }

    #[test]
    fn every_trigger_applies_once() {
        let mut shop = created_order();
        assert_eq!(step(&mut shop, &in_stock()), "applied");
        assert_eq!(step(&mut shop, &in_stock()), "done");
        shop.billing("b1", "o1", 9.0);
        assert_eq!(step(&mut shop, &billing_created()), "applied");
        assert_eq!(step(&mut shop, &billing_created()), "done");
        let versions = shop.view.version(Topic::Order, "o1");
        assert_eq!(step(&mut shop, &in_stock()), "done");
        assert_eq!(shop.view.version(Topic::Order, "o1"), versions);
    }

    #[test]
    fn shipping_before_billing_waits_then_goes_through() {
        let mut shop = created_order();
        step(&mut shop, &in_stock());
        shop.billing("b1", "o1", 9.0).shipping("s1", "o1", 0);
        // The shipping event is handled before the billing event.
        assert_eq!(step(&mut shop, &shipping_created()), "not yet");
        assert_eq!(status(&shop), OrderStatus::InStock);
        assert_eq!(step(&mut shop, &billing_created()), "applied");
        assert_eq!(step(&mut shop, &shipping_created()), "applied");
        assert_eq!(status(&shop), OrderStatus::Shipped);
    }

    #[test]
    fn a_withdrawn_payment_unclears_and_a_new_one_clears_again() {
        let mut shop = created_order();
        step(&mut shop, &in_stock());
        shop.billing("b1", "o1", 9.0);
        step(&mut shop, &billing_created());
        shop.delete(Entity::Billing(
            shop.view.get::<Billing>("b1").unwrap().clone(),
        ));
        assert_eq!(step(&mut shop, &billing_deleted()), "applied");
        assert_eq!(status(&shop), OrderStatus::Uncleared);
        // The shipping made for b1 waits for a new payment.
        shop.shipping("s1", "o1", 0);
        assert_eq!(step(&mut shop, &shipping_created()), "not yet");
        shop.billing("b2", "o1", 9.0);
        let b2 = change(StatusTrigger::BillingCreated {
            billing_id: "b2".into(),
        });
        assert_eq!(step(&mut shop, &b2), "applied");
        assert_eq!(status(&shop), OrderStatus::Cleared);
        assert_eq!(step(&mut shop, &shipping_created()), "applied");
    }

    #[test]
    fn a_billing_deleted_before_it_counted_changes_nothing() {
        let mut shop = created_order();
        step(&mut shop, &in_stock());
        shop.billing("b1", "o1", 9.0);
        shop.delete(Entity::Billing(
            shop.view.get::<Billing>("b1").unwrap().clone(),
        ));
        // Deletion handled first (creation was waiting), then the creation.
        assert_eq!(step(&mut shop, &billing_deleted()), "done");
        assert_eq!(step(&mut shop, &billing_created()), "done");
        assert_eq!(status(&shop), OrderStatus::InStock);
    }

    #[test]
    fn contradictions_are_refused_and_gone_things_are_done() {
        let mut shop = created_order();
        let out = change(StatusTrigger::Stock { in_stock: false });
        assert_eq!(step(&mut shop, &out), "applied");
        assert_eq!(status(&shop), OrderStatus::OutOfStock);
        // A stale IN_STOCK after OUT_OF_STOCK: same causation, already applied.
        assert_eq!(step(&mut shop, &in_stock()), "done");
        shop.billing("b1", "o1", 9.0);
        assert_eq!(step(&mut shop, &billing_created()), "refused");
        assert_eq!(
            step(&mut shop, &shipping_created()),
            "done",
            "no such shipping"
        );
        let ghost = StatusChange {
            order_id: "ghost".into(),
            trigger: StatusTrigger::Stock { in_stock: true },
        };
        assert_eq!(step(&mut shop, &ghost), "done");
    }

    #[test]
    fn delivered_needs_shipped_first() {
        let mut shop = created_order();
        step(&mut shop, &in_stock());
        shop.billing("b1", "o1", 9.0);
        step(&mut shop, &billing_created());
        shop.shipping("s1", "o1", 1_700_000_000);
        assert_eq!(step(&mut shop, &delivered()), "not yet");
        assert_eq!(status(&shop), OrderStatus::Cleared);
    }

    #[test]
    fn set_status_payloads() {
        let c =
            StatusChange::from_set_status(&json!({"entity_id": "o1", "status": "OUT_OF_STOCK"}))
                .unwrap();
        assert_eq!(c, change(StatusTrigger::Stock { in_stock: false }));
        let err = StatusChange::from_set_status(&json!({"entity_id": "o1", "status": "DELIVERED"}))
            .unwrap_err();
        assert_eq!(err.to_string(), "status must be IN_STOCK or OUT_OF_STOCK");
        let err = StatusChange::from_set_status(&json!({"entity_id": "o1"})).unwrap_err();
        assert_eq!(err.to_string(), "status is required");
        let err = StatusChange::from_set_status(&json!({"status": "IN_STOCK"})).unwrap_err();
        assert_eq!(err.to_string(), "entity_id is required");
    }

    #[test]
    fn triggers_from_events() {
        let mut shop = created_order();
        shop.billing("b1", "o1", 9.0);
        assert_eq!(
            StatusChange::from_event(shop.last()),
            Some(billing_created())
        );
        shop.billing("b1", "o1", 9.0001);
        assert_eq!(
            StatusChange::from_event(shop.last()),
            None,
            "billing update"
        );
        shop.delete(Entity::Billing(
            shop.view.get::<Billing>("b1").unwrap().clone(),
        ));
        assert_eq!(
            StatusChange::from_event(shop.last()),
            Some(billing_deleted())
        );
        shop.shipping("s1", "o1", 0);
        assert_eq!(
            StatusChange::from_event(shop.last()),
            Some(shipping_created())
        );
        shop.shipping("s1", "o1", 0);
        assert_eq!(StatusChange::from_event(shop.last()), None, "not delivered");
        shop.shipping("s1", "o1", 17);
        assert_eq!(StatusChange::from_event(shop.last()), Some(delivered()));
        shop.customer("c9", "Cy");
        assert_eq!(StatusChange::from_event(shop.last()), None);
    }
}
