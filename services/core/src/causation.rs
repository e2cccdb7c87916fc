//! Causation ids: what a saga writes next to its events, so that a
//! redelivered trigger finds its own earlier work in the [`crate::View`] and
//! does nothing twice. One function per saga step, so the writers and the
//! readers cannot disagree on the spelling.

/// The inventory reserved the cart items of an order.
pub fn reserve(order_id: &str) -> String {
    format!("reserve:{order_id}")
}

/// The inventory gave back what it reserved for a deleted order.
pub fn restore(order_id: &str) -> String {
    format!("restore:{order_id}")
}

/// The shipping service created the shipping of a billing.
pub fn ship(billing_id: &str) -> String {
    format!("ship:{billing_id}")
}

/// The order service applied the inventory's verdict to an order.
pub fn stock_verdict(order_id: &str) -> String {
    format!("stock:{order_id}")
}

/// The order service applied a billing's creation (the order got CLEARED).
pub fn billing_created(billing_id: &str) -> String {
    format!("billing_created:{billing_id}")
}

/// The order service applied a billing's deletion (the order got UNCLEARED).
pub fn billing_deleted(billing_id: &str) -> String {
    format!("billing_deleted:{billing_id}")
}

/// The order service applied a shipping's creation (the order got SHIPPED).
pub fn shipping_created(shipping_id: &str) -> String {
    format!("shipping_created:{shipping_id}")
}

/// The order service applied a shipping's delivery (the order got DELIVERED).
pub fn shipping_delivered(shipping_id: &str) -> String {
    format!("shipping_delivered:{shipping_id}")
}
