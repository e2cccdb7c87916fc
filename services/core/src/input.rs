//! Reading command input (`serde_json::Value`) into typed entities, field by
//! field, with the errors a client can act on.
//!
//! Rules shared by every kind:
//! - Text fields must be JSON strings, non-empty after trimming.
//! - Numbers must be JSON numbers: `"10"` is refused, never coerced.
//!   Prices and billing amounts are finite and not negative; inventory
//!   amounts are whole numbers (`5` or `5.0`) and not negative; `delivered`
//!   takes any non-negative number of seconds and keeps the whole seconds
//!   (clients send Python's `time.time()`).
//! - Unknown fields are **ignored and dropped**: clients PUT back what they
//!   GET, and the reference accepted anything. Every field we store is
//!   required, so a misspelt field still fails as "missing".
//! - `entity_id` is required for updates and deletes, and ignored on create
//!   (ids are made by the server).
//! - A create takes one object or a list of 1 to
//!   [`MAX_APPEND_BATCH`](ordershop_topology::MAX_APPEND_BATCH) objects (one
//!   event each, appended atomically); a new order starts CREATED and a new
//!   shipping undelivered.
//!
//! These are the rules that need no state, so the gateway runs them too
//! ([`crate::commands::check_input`]) and refuses bad input before it enqueues
//! anything, and `/openapi.json` states them as JSON Schema.

use serde_json::{Map, Value};

use crate::entity::{Billing, Cart, Customer, Entity, Inventory, Order, Product, Shipping};
use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::status::OrderStatus;
use ordershop_topology::MAX_APPEND_BATCH;

/// The objects of a create command: one object or a list of objects.
pub fn batch(input: &Value) -> Result<Vec<&Map<String, Value>>, DomainError> {
    match input {
        Value::Object(object) => Ok(vec![object]),
        Value::Array(items) if items.is_empty() => Err(DomainError::EmptyBatch),
        Value::Array(items) if items.len() > MAX_APPEND_BATCH => Err(DomainError::BatchTooBig {
            given: items.len(),
            limit: MAX_APPEND_BATCH,
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.as_object()
                    .ok_or_else(|| DomainError::NotAnObject.in_item(index))
            })
            .collect(),
        _ => Err(DomainError::NotAnObjectOrList),
    }
}

/// The object of an update or delete command.
pub fn object(input: &Value) -> Result<&Map<String, Value>, DomainError> {
    input.as_object().ok_or(DomainError::NotAnObject)
}

/// The `entity_id` of an update or delete command.
pub fn entity_id(fields: &Map<String, Value>) -> Result<String, DomainError> {
    text(fields, "entity_id")
}

/// Reads an entity of `kind` from `fields`, giving it `entity_id`.
/// Field-level rules only; rules that need other entities live in
/// [`crate::commands`]. An order is read with status CREATED unless the
/// input names another (whether that is allowed is the command's call).
pub fn entity(
    kind: EntityKind,
    entity_id: String,
    fields: &Map<String, Value>,
) -> Result<Entity, DomainError> {
    Ok(match kind {
        EntityKind::Customer => Entity::Customer(Customer {
            entity_id,
            name: text(fields, "name")?,
            email: email(fields, "email")?,
        }),
        EntityKind::Product => Entity::Product(Product {
            entity_id,
            name: text(fields, "name")?,
            price: money(fields, "price")?,
        }),
        EntityKind::Inventory => Entity::Inventory(Inventory {
            entity_id,
            product_id: text(fields, "product_id")?,
            amount: count(fields, "amount")?,
        }),
        EntityKind::Cart => Entity::Cart(Cart {
            entity_id,
            customer_id: text(fields, "customer_id")?,
            product_ids: id_list(fields, "product_ids")?,
        }),
        EntityKind::Order => Entity::Order(Order {
            entity_id,
            cart_id: text(fields, "cart_id")?,
            status: optional_status(fields, "status")?.unwrap_or(OrderStatus::Created),
        }),
        EntityKind::Billing => Entity::Billing(Billing {
            entity_id,
            order_id: text(fields, "order_id")?,
            amount: money(fields, "amount")?,
        }),
        EntityKind::Shipping => Entity::Shipping(Shipping {
            entity_id,
            order_id: text(fields, "order_id")?,
            delivered: optional_timestamp(fields, "delivered")?.unwrap_or(0),
        }),
    })
}

/// Reads a new entity of `kind` (its id is made later): [`entity`] plus the
/// rules of a create: an order starts CREATED, a shipping undelivered.
pub fn new_entity(kind: EntityKind, fields: &Map<String, Value>) -> Result<Entity, DomainError> {
    // Ignored (ids are made by the server), but a non-string is a mistake.
    if !matches!(
        fields.get("entity_id"),
        None | Some(Value::Null | Value::String(_))
    ) {
        return Err(DomainError::Invalid {
            field: "entity_id",
            expected: "a string or null (it is ignored: the server makes ids)",
        });
    }
    let entity = entity(kind, String::new(), fields)?;
    match &entity {
        Entity::Order(order) if order.status != OrderStatus::Created => Err(DomainError::Invalid {
            field: "status",
            expected: "CREATED for a new order",
        }),
        Entity::Shipping(shipping) if shipping.delivered != 0 => Err(DomainError::Invalid {
            field: "delivered",
            expected: "0 for a new shipping",
        }),
        _ => Ok(entity),
    }
}

/// Whether the input names a status at all (an order update may omit it).
pub(crate) fn has_field(fields: &Map<String, Value>, field: &str) -> bool {
    fields.get(field).is_some_and(|v| !v.is_null())
}

fn required<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a Value, DomainError> {
    match fields.get(field) {
        None | Some(Value::Null) => Err(DomainError::Missing { field }),
        Some(value) => Ok(value),
    }
}

fn text(fields: &Map<String, Value>, field: &'static str) -> Result<String, DomainError> {
    let value = required(fields, field)?
        .as_str()
        .ok_or(DomainError::Invalid {
            field,
            expected: "a string",
        })?;
    if value.trim().is_empty() {
        return Err(DomainError::Missing { field });
    }
    Ok(value.to_string())
}

fn email(fields: &Map<String, Value>, field: &'static str) -> Result<String, DomainError> {
    let value = text(fields, field)?;
    // Deliberately loose: one '@' with something on both sides. Real
    // validation of mail addresses is the mail system's job.
    match value.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(value)
        }
        _ => Err(DomainError::Invalid {
            field,
            expected: "an email address",
        }),
    }
}

fn number(fields: &Map<String, Value>, field: &'static str) -> Result<f64, DomainError> {
    let value = required(fields, field)?;
    let not_a_number = DomainError::Invalid {
        field,
        expected: "a number",
    };
    let n = value.as_f64().ok_or(not_a_number.clone())?;
    if !n.is_finite() {
        return Err(not_a_number);
    }
    if n < 0.0 {
        return Err(DomainError::Invalid {
            field,
            expected: "a number not below 0",
        });
    }
    Ok(n)
}

fn money(fields: &Map<String, Value>, field: &'static str) -> Result<f64, DomainError> {
    number(fields, field)
}

fn count(fields: &Map<String, Value>, field: &'static str) -> Result<i64, DomainError> {
    let value = required(fields, field)?;
    if let Some(n) = value.as_i64() {
        if n < 0 {
            return Err(DomainError::Invalid {
                field,
                expected: "a whole number not below 0",
            });
        }
        return Ok(n);
    }
    let n = number(fields, field)?;
    // A float that is an exact whole number in i64's range (5.0) is fine.
    if n.fract() != 0.0 || n >= i64::MAX as f64 {
        return Err(DomainError::Invalid {
            field,
            expected: "a whole number not below 0",
        });
    }
    Ok(n as i64)
}

fn optional_timestamp(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<i64>, DomainError> {
    if !has_field(fields, field) {
        return Ok(None);
    }
    if let Some(n) = fields[field].as_i64() {
        if n < 0 {
            return Err(DomainError::Invalid {
                field,
                expected: "a number not below 0",
            });
        }
        return Ok(Some(n));
    }
    let seconds = number(fields, field)?;
    if seconds >= i64::MAX as f64 {
        return Err(DomainError::Invalid {
            field,
            expected: "a unix timestamp in seconds",
        });
    }
    Ok(Some(seconds.trunc() as i64))
}

fn id_list(fields: &Map<String, Value>, field: &'static str) -> Result<Vec<String>, DomainError> {
    let invalid = DomainError::Invalid {
        field,
        expected: "a list of ids",
    };
    let items = required(fields, field)?.as_array().ok_or(invalid.clone())?;
    if items.is_empty() {
        return Err(DomainError::Missing { field });
    }
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(id) if !id.trim().is_empty() => Ok(id.to_string()),
            _ => Err(invalid.clone()),
        })
        .collect()
}

fn optional_status(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<OrderStatus>, DomainError> {
    if !has_field(fields, field) {
        return Ok(None);
    }
    let invalid = DomainError::Invalid {
        field,
        expected: "one of CREATED, IN_STOCK, OUT_OF_STOCK, CLEARED, UNCLEARED, SHIPPED, DELIVERED",
    };
    let text = fields[field].as_str().ok_or(invalid.clone())?;
    text.parse().map(Some).map_err(|_| invalid)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(kind: EntityKind, input: Value) -> Result<Entity, DomainError> {
        entity(kind, "id".into(), input.as_object().unwrap())
    }

    #[test]
    fn batches_are_an_object_or_a_list_of_objects() {
        assert_eq!(batch(&json!({"a": 1})).unwrap().len(), 1);
        assert_eq!(batch(&json!([{"a": 1}, {"b": 2}])).unwrap().len(), 2);
        assert_eq!(batch(&json!([])), Err(DomainError::EmptyBatch));
        let too_many = Value::Array(vec![json!({}); MAX_APPEND_BATCH + 1]);
        assert_eq!(
            batch(&too_many).unwrap_err().to_string(),
            format!("at most {MAX_APPEND_BATCH} objects per request, got 1001")
        );
        assert_eq!(
            batch(&Value::Array(vec![json!({}); MAX_APPEND_BATCH]))
                .unwrap()
                .len(),
            MAX_APPEND_BATCH
        );
        assert_eq!(batch(&json!("x")), Err(DomainError::NotAnObjectOrList));
        assert_eq!(
            batch(&json!([{}, 3])).unwrap_err().to_string(),
            "item 1: expected a JSON object"
        );
        assert_eq!(object(&json!([])), Err(DomainError::NotAnObject));
    }

    #[test]
    fn required_fields_are_named() {
        let err = read(EntityKind::Customer, json!({"email": "a@b.c"})).unwrap_err();
        assert_eq!(err.to_string(), "name is required");
        let err = read(
            EntityKind::Customer,
            json!({"name": "  ", "email": "a@b.c"}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "name is required");
        let err = read(EntityKind::Product, json!({"name": "Tea", "price": null})).unwrap_err();
        assert_eq!(err.to_string(), "price is required");
        let err = read(EntityKind::Order, json!({})).unwrap_err();
        assert_eq!(err.to_string(), "cart_id is required");
        let err = read(EntityKind::Billing, json!({"order_id": "o"})).unwrap_err();
        assert_eq!(err.to_string(), "amount is required");
        let err = read(EntityKind::Inventory, json!({"amount": 1})).unwrap_err();
        assert_eq!(err.to_string(), "product_id is required");
        let err = read(EntityKind::Shipping, json!({})).unwrap_err();
        assert_eq!(err.to_string(), "order_id is required");
        let err = read(
            EntityKind::Cart,
            json!({"customer_id": "c", "product_ids": []}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "product_ids is required");
        assert_eq!(
            entity_id(json!({}).as_object().unwrap()).unwrap_err(),
            DomainError::Missing { field: "entity_id" }
        );
    }

    #[test]
    fn numbers_given_as_strings_are_refused() {
        let err = read(EntityKind::Product, json!({"name": "Tea", "price": "10"})).unwrap_err();
        assert_eq!(err.to_string(), "price must be a number");
        let err = read(
            EntityKind::Inventory,
            json!({"product_id": "p", "amount": "5"}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "amount must be a number");
        let err = read(EntityKind::Billing, json!({"order_id": "o", "amount": "5"})).unwrap_err();
        assert_eq!(err.to_string(), "amount must be a number");
        let err = read(
            EntityKind::Shipping,
            json!({"order_id": "o", "delivered": "1"}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "delivered must be a number");
    }

    #[test]
    fn negative_numbers_are_refused() {
        let err = read(EntityKind::Product, json!({"name": "Tea", "price": -1})).unwrap_err();
        assert_eq!(err.to_string(), "price must be a number not below 0");
        let err = read(
            EntityKind::Inventory,
            json!({"product_id": "p", "amount": -1}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "amount must be a whole number not below 0");
        let err = read(
            EntityKind::Billing,
            json!({"order_id": "o", "amount": -0.5}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "amount must be a number not below 0");
        let err = read(
            EntityKind::Shipping,
            json!({"order_id": "o", "delivered": -3}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "delivered must be a number not below 0");
    }

    #[test]
    fn inventory_amounts_are_whole_numbers() {
        let Entity::Inventory(inv) = read(
            EntityKind::Inventory,
            json!({"product_id": "p", "amount": 5.0}),
        )
        .unwrap() else {
            panic!("not an inventory")
        };
        assert_eq!(inv.amount, 5);
        let err = read(
            EntityKind::Inventory,
            json!({"product_id": "p", "amount": 5.5}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "amount must be a whole number not below 0");
    }

    #[test]
    fn delivered_keeps_whole_seconds_and_defaults_to_zero() {
        let Entity::Shipping(s) = read(
            EntityKind::Shipping,
            json!({"order_id": "o", "delivered": 1700000000.75}),
        )
        .unwrap() else {
            panic!("not a shipping")
        };
        assert_eq!(s.delivered, 1_700_000_000);
        let Entity::Shipping(s) = read(EntityKind::Shipping, json!({"order_id": "o"})).unwrap()
        else {
            panic!("not a shipping")
        };
        assert_eq!(s.delivered, 0);
    }

    #[test]
    fn strings_must_be_strings_and_emails_look_like_emails() {
        let err = read(EntityKind::Customer, json!({"name": 3, "email": "a@b.c"})).unwrap_err();
        assert_eq!(err.to_string(), "name must be a string");
        for bad in ["nobody", "@b.c", "a@", "a@b@c"] {
            let err = read(EntityKind::Customer, json!({"name": "Ann", "email": bad})).unwrap_err();
            assert_eq!(err.to_string(), "email must be an email address", "{bad}");
        }
        let err = read(
            EntityKind::Cart,
            json!({"customer_id": "c", "product_ids": ["p", 3]}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "product_ids must be a list of ids");
        let err = read(
            EntityKind::Cart,
            json!({"customer_id": "c", "product_ids": "p"}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "product_ids must be a list of ids");
    }

    #[test]
    fn unknown_fields_are_dropped() {
        let e = read(
            EntityKind::Customer,
            json!({"name": "Ann", "email": "ann@example.org", "shoe_size": 42, "entity_id": "ignored"}),
        )
        .unwrap();
        assert_eq!(
            e.to_json(),
            json!({"entity_id": "id", "name": "Ann", "email": "ann@example.org"})
        );
    }

    #[test]
    fn new_orders_start_created_and_new_shippings_undelivered() {
        let new = |kind, input: Value| new_entity(kind, input.as_object().unwrap());
        assert!(
            new(
                EntityKind::Order,
                json!({"cart_id": "c", "entity_id": "mine"})
            )
            .is_ok()
        );
        assert_eq!(
            new(EntityKind::Order, json!({"cart_id": "c", "entity_id": 5}))
                .unwrap_err()
                .to_string(),
            "entity_id must be a string or null (it is ignored: the server makes ids)"
        );
        assert!(new(EntityKind::Order, json!({"cart_id": "c"})).is_ok());
        assert!(new(EntityKind::Order, json!({"cart_id": "c", "status": null})).is_ok());
        assert!(
            new(
                EntityKind::Order,
                json!({"cart_id": "c", "status": "CREATED"})
            )
            .is_ok()
        );
        assert_eq!(
            new(
                EntityKind::Order,
                json!({"cart_id": "c", "status": "SHIPPED"})
            )
            .unwrap_err()
            .to_string(),
            "status must be CREATED for a new order"
        );
        // Fractions of a second are dropped, so 0.5 is 0.
        for delivered in [json!(0), json!(0.5), json!(null)] {
            assert!(
                new(
                    EntityKind::Shipping,
                    json!({"order_id": "o", "delivered": delivered})
                )
                .is_ok()
            );
        }
        assert_eq!(
            new(
                EntityKind::Shipping,
                json!({"order_id": "o", "delivered": 1})
            )
            .unwrap_err()
            .to_string(),
            "delivered must be 0 for a new shipping"
        );
    }

    #[test]
    fn order_status_is_read_when_given() {
        let Entity::Order(o) = read(EntityKind::Order, json!({"cart_id": "c"})).unwrap() else {
            panic!("not an order")
        };
        assert_eq!(o.status, OrderStatus::Created);
        let Entity::Order(o) = read(
            EntityKind::Order,
            json!({"cart_id": "c", "status": "SHIPPED"}),
        )
        .unwrap() else {
            panic!("not an order")
        };
        assert_eq!(o.status, OrderStatus::Shipped);
        assert!(
            read(
                EntityKind::Order,
                json!({"cart_id": "c", "status": "shipped"})
            )
            .is_err()
        );
    }
}
