//! Why a command was refused. The `Display` text is what goes into the
//! `{"error": "..."}` envelope, so the contract's texts are kept verbatim
//! (`product <id> is out of stock`, `amount is not accurate`,
//! `could not find <topic>`).

use crate::kind::{EntityKind, Topic};

/// A refused command or query. Pure domain: no I/O error ever ends up here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("expected a JSON object")]
    NotAnObject,

    #[error("expected a JSON object or a list of JSON objects")]
    NotAnObjectOrList,

    /// A create with an empty list.
    #[error("expected at least one object")]
    EmptyBatch,

    /// A create with more entities than one append takes.
    #[error("at most {limit} objects per request, got {given}")]
    BatchTooBig { given: usize, limit: usize },

    #[error("{field} is required")]
    Missing { field: &'static str },

    #[error("{field} must be {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },

    /// One item of a batch create was refused; nothing of the batch is written.
    #[error("item {index}: {source}")]
    Item {
        index: usize,
        source: Box<DomainError>,
    },

    /// Update or delete of an entity that does not exist (the contract's text).
    #[error("could not find {0}")]
    NotFound(EntityKind),

    /// The input refers to an entity that does not exist.
    #[error("could not find {kind} {id}")]
    UnknownReference { kind: EntityKind, id: String },

    /// A cart asks for more pieces than the product's inventory holds (or the
    /// product has no inventory).
    #[error("product {product_id} is out of stock")]
    OutOfStock { product_id: String },

    /// A billing's amount differs from the sum of its cart's product prices.
    #[error("amount is not accurate")]
    AmountNotAccurate,

    /// A delete refused because another entity still needs this one.
    #[error("{kind} {id} is still needed by {by} {by_id}")]
    StillNeeded {
        kind: EntityKind,
        id: String,
        by: EntityKind,
        by_id: String,
    },

    /// A field that must keep its value after creation.
    #[error("{field} cannot change")]
    Immutable { field: &'static str },

    /// The command contradicts the current state (a locked cart, a second
    /// billing, ...). The text says which rule.
    #[error("{0}")]
    Conflict(String),

    /// The request names no known entity kind.
    #[error("unknown entity name {0:?}")]
    UnknownName(String),

    /// Wiring bug: the caller's view does not fold a topic this decision
    /// reads. Never the client's fault.
    #[error("internal error: the view does not fold the {0} topic")]
    ViewIncomplete(Topic),
}

/// The class of an error, for mapping to a transport status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed: no state of the shop makes it succeed (HTTP 400).
    Invalid,
    /// The entity addressed by the command does not exist (HTTP 404).
    NotFound,
    /// The command is well-formed but the current state refuses it: it names
    /// an entity that does not exist, an amount that is not the order's, a
    /// field that cannot change, stock that is not there (HTTP 409).
    Conflict,
    /// A bug on our side (HTTP 500).
    Internal,
}

impl ErrorKind {
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorKind::Invalid => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Internal => 500,
        }
    }

    /// A short stable label (`invalid`, `not_found`, `conflict`, `internal`),
    /// e.g. to carry the class next to the message in a reply envelope.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Internal => "internal",
        }
    }

    pub fn from_label(label: &str) -> Option<ErrorKind> {
        [
            ErrorKind::Invalid,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Internal,
        ]
        .into_iter()
        .find(|k| k.as_str() == label)
    }
}

impl DomainError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DomainError::NotAnObject
            | DomainError::NotAnObjectOrList
            | DomainError::EmptyBatch
            | DomainError::BatchTooBig { .. }
            | DomainError::Missing { .. }
            | DomainError::Invalid { .. }
            | DomainError::UnknownName(_) => ErrorKind::Invalid,
            DomainError::Item { source, .. } => source.kind(),
            DomainError::NotFound(_) => ErrorKind::NotFound,
            // Well-formed input that the current state refuses: the same
            // request can succeed later (once the customer exists, the
            // order's cart is what the billing says). Kept apart from
            // `Invalid`, which no state can make succeed.
            DomainError::UnknownReference { .. }
            | DomainError::AmountNotAccurate
            | DomainError::Immutable { .. }
            | DomainError::OutOfStock { .. }
            | DomainError::StillNeeded { .. }
            | DomainError::Conflict(_) => ErrorKind::Conflict,
            DomainError::ViewIncomplete(_) => ErrorKind::Internal,
        }
    }

    /// Wraps the error of batch item `index` (0-based).
    pub(crate) fn in_item(self, index: usize) -> DomainError {
        DomainError::Item {
            index,
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_texts_are_verbatim() {
        assert_eq!(
            DomainError::OutOfStock {
                product_id: "p1".into()
            }
            .to_string(),
            "product p1 is out of stock"
        );
        assert_eq!(
            DomainError::AmountNotAccurate.to_string(),
            "amount is not accurate"
        );
        assert_eq!(
            DomainError::NotFound(EntityKind::Inventory).to_string(),
            "could not find inventory"
        );
    }

    #[test]
    fn batch_items_keep_the_kind_of_their_cause() {
        let err = DomainError::NotFound(EntityKind::Cart).in_item(2);
        assert_eq!(err.to_string(), "item 2: could not find cart");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.kind().http_status(), 404);
    }

    #[test]
    fn kinds_map_to_http_statuses_and_labels() {
        for kind in [
            ErrorKind::Invalid,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_label(kind.as_str()), Some(kind));
        }
        assert_eq!(
            DomainError::Missing { field: "name" }.kind().http_status(),
            400
        );
        assert_eq!(DomainError::AmountNotAccurate.kind().http_status(), 409);
        assert_eq!(DomainError::Conflict("x".into()).kind().http_status(), 409);
        assert_eq!(
            DomainError::ViewIncomplete(Topic::Cart)
                .kind()
                .http_status(),
            500
        );
    }
}
