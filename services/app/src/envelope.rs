//! Reply envelopes of the wire contract: `{"result": ..., "positions":
//! {topic: entry id}}` on success, `{"error": "...", "kind": "..."}` on
//! failure (the gateway maps `kind` to an HTTP status).

use std::collections::BTreeMap;
use std::fmt::Display;

use ordershop_core::{DomainError, ErrorKind};
use serde_json::{Value, json};

/// Topic name -> entry id of the last event a command appended there, so
/// the caller can make its next read wait for the read model to apply it.
pub(crate) type Positions = BTreeMap<String, String>;

/// A successful reply.
pub(crate) fn result(result: Value, positions: &Positions) -> String {
    json!({"result": result, "positions": positions}).to_string()
}

/// A reply with no positions (queries).
pub(crate) fn plain_result(result: Value) -> String {
    json!({ "result": result }).to_string()
}

/// A failure of class `kind`.
pub(crate) fn error(kind: ErrorKind, text: impl Display) -> String {
    json!({"error": text.to_string(), "kind": kind.as_str()}).to_string()
}

/// A refused command; the text is the contract's.
pub(crate) fn domain_error(err: &DomainError) -> String {
    error(err.kind(), err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordershop_core::EntityKind;

    #[test]
    fn shapes_follow_the_wire_contract() {
        let mut positions = Positions::new();
        positions.insert("cart".into(), "5-0".into());
        let ok: Value = serde_json::from_str(&result(json!(["c1"]), &positions)).unwrap();
        assert_eq!(ok, json!({"result": ["c1"], "positions": {"cart": "5-0"}}));
        let err: Value =
            serde_json::from_str(&domain_error(&DomainError::NotFound(EntityKind::Cart))).unwrap();
        assert_eq!(
            err,
            json!({"error": "could not find cart", "kind": "not_found"})
        );
        let q: Value = serde_json::from_str(&plain_result(Value::Null)).unwrap();
        assert_eq!(q, json!({"result": null}));
    }
}
