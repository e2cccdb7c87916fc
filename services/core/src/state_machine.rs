//! The order state machine: which trigger moves an order from which status
//! to which, as one explicit table.
//!
//! | from \ on    | InStock  | OutOfStock   | BillingCreated | BillingDeleted | ShippingCreated | ShippingDelivered |
//! |--------------|----------|--------------|----------------|----------------|-----------------|-------------------|
//! | CREATED      | IN_STOCK | OUT_OF_STOCK | not yet        | not yet        | not yet         | not yet           |
//! | IN_STOCK     | there    | refused      | CLEARED        | not yet        | not yet         | not yet           |
//! | OUT_OF_STOCK | refused  | there        | refused        | there          | refused         | refused           |
//! | CLEARED      | there    | refused      | there          | UNCLEARED      | SHIPPED         | not yet           |
//! | UNCLEARED    | there    | refused      | CLEARED        | there          | not yet         | not yet           |
//! | SHIPPED      | there    | refused      | there          | refused        | there           | DELIVERED         |
//! | DELIVERED    | there    | refused      | there          | refused        | there           | there             |
//!
//! "there" = [`Transition::AlreadyThere`]: the order already reflects the
//! trigger (it is at or past the target), so a redelivered or late trigger
//! changes nothing. "not yet" = [`Transition::NotYet`]: an earlier step has
//! not been processed (a shipping created while the billing event is still
//! on its way finds the order IN_STOCK); the caller retries later.
//!
//! What the table guarantees (each is a defect of the reference): UNCLEARED
//! is reachable; SHIPPED cannot be skipped (nothing but a shipping leads to
//! it, and only from CLEARED); DELIVERED is only reached from SHIPPED; a paid
//! order never goes back to an earlier state by a stale verdict. Clients
//! cannot set a status by hand at all (see the order command rules).

use crate::status::OrderStatus;

/// What happened to an order, without the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The inventory reserved every cart item.
    InStock,
    /// The inventory could not reserve every cart item.
    OutOfStock,
    BillingCreated,
    BillingDeleted,
    ShippingCreated,
    /// A shipping was updated with `delivered` ≠ 0.
    ShippingDelivered,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Trigger::InStock,
        Trigger::OutOfStock,
        Trigger::BillingCreated,
        Trigger::BillingDeleted,
        Trigger::ShippingCreated,
        Trigger::ShippingDelivered,
    ];
}

/// The verdict of the table for one (status, trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move the order to this status.
    Apply(OrderStatus),
    /// Nothing to do: the order already reflects the trigger.
    AlreadyThere,
    /// The prerequisite has not been seen yet; retry later.
    NotYet,
    /// The trigger contradicts the order's state; retrying will not help.
    Refused(&'static str),
}

const OUT_OF_STOCK: &str = "the order is out of stock";
const RESERVED: &str = "the order's stock is already reserved";
const SHIPPED: &str = "the order is already shipped";

/// The transition table. Every cell is spelled out (no wildcard), so adding
/// a status or a trigger does not compile until its row and column are
/// decided.
pub const fn transition(from: OrderStatus, on: Trigger) -> Transition {
    use OrderStatus as S;
    use Transition::{AlreadyThere, Apply, NotYet, Refused};
    use Trigger as T;
    match from {
        S::Created => match on {
            T::InStock => Apply(S::InStock),
            T::OutOfStock => Apply(S::OutOfStock),
            T::BillingCreated => NotYet,
            T::BillingDeleted => NotYet,
            T::ShippingCreated => NotYet,
            T::ShippingDelivered => NotYet,
        },
        S::InStock => match on {
            T::InStock => AlreadyThere,
            T::OutOfStock => Refused(RESERVED),
            T::BillingCreated => Apply(S::Cleared),
            T::BillingDeleted => NotYet,
            T::ShippingCreated => NotYet,
            T::ShippingDelivered => NotYet,
        },
        S::OutOfStock => match on {
            T::InStock => Refused(OUT_OF_STOCK),
            T::OutOfStock => AlreadyThere,
            T::BillingCreated => Refused(OUT_OF_STOCK),
            // A billing of an out-of-stock order never cleared it.
            T::BillingDeleted => AlreadyThere,
            T::ShippingCreated => Refused(OUT_OF_STOCK),
            T::ShippingDelivered => Refused(OUT_OF_STOCK),
        },
        S::Cleared => match on {
            T::InStock => AlreadyThere,
            T::OutOfStock => Refused(RESERVED),
            T::BillingCreated => AlreadyThere,
            T::BillingDeleted => Apply(S::Uncleared),
            T::ShippingCreated => Apply(S::Shipped),
            T::ShippingDelivered => NotYet,
        },
        S::Uncleared => match on {
            T::InStock => AlreadyThere,
            T::OutOfStock => Refused(RESERVED),
            // Paid again.
            T::BillingCreated => Apply(S::Cleared),
            T::BillingDeleted => AlreadyThere,
            // Waits for a new payment.
            T::ShippingCreated => NotYet,
            T::ShippingDelivered => NotYet,
        },
        S::Shipped => match on {
            T::InStock => AlreadyThere,
            T::OutOfStock => Refused(RESERVED),
            T::BillingCreated => AlreadyThere,
            T::BillingDeleted => Refused(SHIPPED),
            T::ShippingCreated => AlreadyThere,
            T::ShippingDelivered => Apply(S::Delivered),
        },
        S::Delivered => match on {
            T::InStock => AlreadyThere,
            T::OutOfStock => Refused(RESERVED),
            T::BillingCreated => AlreadyThere,
            T::BillingDeleted => Refused(SHIPPED),
            T::ShippingCreated => AlreadyThere,
            T::ShippingDelivered => AlreadyThere,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use OrderStatus as S;
    use Trigger as T;

    /// The whole table once more, written as data, so that a change to
    /// `transition` has to be made twice on purpose.
    fn expected(from: OrderStatus, on: Trigger) -> &'static str {
        let row: [&str; 6] = match from {
            S::Created => [
                "IN_STOCK",
                "OUT_OF_STOCK",
                "not yet",
                "not yet",
                "not yet",
                "not yet",
            ],
            S::InStock => [
                "there", "refused", "CLEARED", "not yet", "not yet", "not yet",
            ],
            S::OutOfStock => ["refused", "there", "refused", "there", "refused", "refused"],
            S::Cleared => [
                "there",
                "refused",
                "there",
                "UNCLEARED",
                "SHIPPED",
                "not yet",
            ],
            S::Uncleared => ["there", "refused", "CLEARED", "there", "not yet", "not yet"],
            S::Shipped => ["there", "refused", "there", "refused", "there", "DELIVERED"],
            S::Delivered => ["there", "refused", "there", "refused", "there", "there"],
        };
        let column = Trigger::ALL.iter().position(|t| *t == on).unwrap();
        row[column]
    }

    fn describe(t: Transition) -> String {
        match t {
            Transition::Apply(to) => to.as_str().to_string(),
            Transition::AlreadyThere => "there".into(),
            Transition::NotYet => "not yet".into(),
            Transition::Refused(_) => "refused".into(),
        }
    }

    #[test]
    fn every_cell_of_the_table() {
        for from in OrderStatus::ALL {
            for on in Trigger::ALL {
                assert_eq!(
                    describe(transition(from, on)),
                    expected(from, on),
                    "{from} on {on:?}"
                );
            }
        }
    }

    #[test]
    fn every_status_is_reachable_from_created() {
        let mut seen = BTreeSet::from([S::Created]);
        let mut todo = vec![S::Created];
        while let Some(from) = todo.pop() {
            for on in Trigger::ALL {
                if let Transition::Apply(to) = transition(from, on)
                    && seen.insert(to)
                {
                    todo.push(to);
                }
            }
        }
        assert_eq!(seen.len(), OrderStatus::ALL.len(), "reached {seen:?}");
        assert!(seen.contains(&S::Uncleared));
    }

    #[test]
    fn delivered_only_from_shipped_and_shipped_only_from_cleared() {
        for from in OrderStatus::ALL {
            for on in Trigger::ALL {
                match transition(from, on) {
                    Transition::Apply(S::Delivered) => assert_eq!(from, S::Shipped),
                    Transition::Apply(S::Shipped) => {
                        assert_eq!((from, on), (S::Cleared, T::ShippingCreated))
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn shipping_before_billing_waits_instead_of_skipping() {
        assert_eq!(
            transition(S::InStock, T::ShippingCreated),
            Transition::NotYet
        );
        assert_eq!(
            transition(S::Cleared, T::ShippingDelivered),
            Transition::NotYet
        );
        assert_eq!(
            transition(S::InStock, T::ShippingDelivered),
            Transition::NotYet
        );
    }

    #[test]
    fn final_and_paid_states_never_move_back() {
        for on in Trigger::ALL {
            assert!(!matches!(
                transition(S::Delivered, on),
                Transition::Apply(_)
            ));
            assert!(!matches!(
                transition(S::OutOfStock, on),
                Transition::Apply(_)
            ));
        }
        for from in [S::Cleared, S::Uncleared, S::Shipped, S::Delivered] {
            assert_eq!(transition(from, T::InStock), Transition::AlreadyThere);
            assert!(matches!(
                transition(from, T::OutOfStock),
                Transition::Refused(_)
            ));
        }
    }

    #[test]
    fn applying_a_trigger_twice_is_a_no_op_the_second_time() {
        for from in OrderStatus::ALL {
            for on in Trigger::ALL {
                if let Transition::Apply(to) = transition(from, on) {
                    assert_eq!(
                        transition(to, on),
                        Transition::AlreadyThere,
                        "{from} -> {to} on {on:?}"
                    );
                }
            }
        }
    }
}
