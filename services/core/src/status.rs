//! The states of an order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an order stands. Serialized as the contract's upper-case names.
/// How an order moves between these is [`crate::state_machine`]'s business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Just placed; the inventory has not decided yet.
    Created,
    /// Every cart item is reserved.
    InStock,
    /// Some cart item was missing; nothing was reserved. Final.
    OutOfStock,
    /// Paid (a billing exists).
    Cleared,
    /// The payment was withdrawn (its billing was deleted).
    Uncleared,
    /// A shipping exists.
    Shipped,
    /// The shipping reports a delivery time. Final.
    Delivered,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Created,
        OrderStatus::InStock,
        OrderStatus::OutOfStock,
        OrderStatus::Cleared,
        OrderStatus::Uncleared,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::InStock => "IN_STOCK",
            OrderStatus::OutOfStock => "OUT_OF_STOCK",
            OrderStatus::Cleared => "CLEARED",
            OrderStatus::Uncleared => "UNCLEARED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the seven status names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_contract_names() {
        for status in OrderStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::Value::String(status.as_str().into()));
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
            assert_eq!(serde_json::from_value::<OrderStatus>(json).unwrap(), status);
        }
        assert_eq!(OrderStatus::OutOfStock.as_str(), "OUT_OF_STOCK");
        assert!("in_stock".parse::<OrderStatus>().is_err());
    }
}
