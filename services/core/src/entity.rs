//! The entities, exactly as the contract names their fields. These are what
//! an event's `event_data` holds (the whole entity after the change) and what
//! the read model returns.
//!
//! Deserializing an entity from a *recorded* event ignores unknown fields and
//! is otherwise strict; user input goes through [`crate::input`] instead,
//! which gives readable errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::EntityKind;
use crate::status::OrderStatus;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub entity_id: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub entity_id: String,
    pub name: String,
    pub price: f64,
}

/// The stock of one product (at most one inventory per product).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub entity_id: String,
    pub product_id: String,
    pub amount: i64,
}

/// A customer's selection; a product id repeated n times means n pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub entity_id: String,
    pub customer_id: String,
    pub product_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub entity_id: String,
    pub cart_id: String,
    pub status: OrderStatus,
}

/// The payment of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Billing {
    pub entity_id: String,
    pub order_id: String,
    pub amount: f64,
}

/// The shipment of an order; `delivered` is 0 until delivery, then a unix
/// timestamp in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipping {
    pub entity_id: String,
    pub order_id: String,
    pub delivered: i64,
}

/// Any entity, tagged by its kind. Its own serde form (tagged by kind) is
/// for snapshots; events carry [`Entity::to_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entity {
    Customer(Customer),
    Product(Product),
    Inventory(Inventory),
    Cart(Cart),
    Order(Order),
    Billing(Billing),
    Shipping(Shipping),
}

impl Entity {
    pub fn kind(&self) -> EntityKind {
        match self {
            Entity::Customer(_) => EntityKind::Customer,
            Entity::Product(_) => EntityKind::Product,
            Entity::Inventory(_) => EntityKind::Inventory,
            Entity::Cart(_) => EntityKind::Cart,
            Entity::Order(_) => EntityKind::Order,
            Entity::Billing(_) => EntityKind::Billing,
            Entity::Shipping(_) => EntityKind::Shipping,
        }
    }

    pub fn entity_id(&self) -> &str {
        match self {
            Entity::Customer(e) => &e.entity_id,
            Entity::Product(e) => &e.entity_id,
            Entity::Inventory(e) => &e.entity_id,
            Entity::Cart(e) => &e.entity_id,
            Entity::Order(e) => &e.entity_id,
            Entity::Billing(e) => &e.entity_id,
            Entity::Shipping(e) => &e.entity_id,
        }
    }

    pub(crate) fn set_entity_id(&mut self, id: String) {
        match self {
            Entity::Customer(e) => e.entity_id = id,
            Entity::Product(e) => e.entity_id = id,
            Entity::Inventory(e) => e.entity_id = id,
            Entity::Cart(e) => e.entity_id = id,
            Entity::Order(e) => e.entity_id = id,
            Entity::Billing(e) => e.entity_id = id,
            Entity::Shipping(e) => e.entity_id = id,
        }
    }

    /// The field of which at most one live entity of this kind may have a
    /// given value: an inventory's product, an order's cart (among orders
    /// not OUT_OF_STOCK), a billing's or a shipping's order. Such entities
    /// get ids from that key ([`crate::ids::keyed_entity_id`]).
    pub fn unique_key(&self) -> Option<&str> {
        match self {
            Entity::Inventory(e) => Some(&e.product_id),
            Entity::Order(e) => Some(&e.cart_id),
            Entity::Billing(e) => Some(&e.order_id),
            Entity::Shipping(e) => Some(&e.order_id),
            Entity::Customer(_) | Entity::Product(_) | Entity::Cart(_) => None,
        }
    }

    /// The ids of other entities this one refers to: a cart its customer
    /// and products, an inventory its product, an order its cart, a billing
    /// or a shipping its order. [`crate::View`] indexes entities by them, so
    /// "the carts of this customer" is a lookup, not a scan of every cart.
    pub fn references(&self) -> Vec<&str> {
        match self {
            Entity::Customer(_) | Entity::Product(_) => Vec::new(),
            Entity::Inventory(e) => vec![&e.product_id],
            Entity::Cart(e) => std::iter::once(e.customer_id.as_str())
                .chain(e.product_ids.iter().map(String::as_str))
                .collect(),
            Entity::Order(e) => vec![&e.cart_id],
            Entity::Billing(e) => vec![&e.order_id],
            Entity::Shipping(e) => vec![&e.order_id],
        }
    }

    /// The JSON document stored as `event_data`: numbers stay numbers.
    pub fn to_json(&self) -> Value {
        // Serializing these plain structs cannot fail: string keys only, and
        // non-finite floats are refused by input validation (serde_json would
        // write them as null, never fail).
        let result = match self {
            Entity::Customer(e) => serde_json::to_value(e),
            Entity::Product(e) => serde_json::to_value(e),
            Entity::Inventory(e) => serde_json::to_value(e),
            Entity::Cart(e) => serde_json::to_value(e),
            Entity::Order(e) => serde_json::to_value(e),
            Entity::Billing(e) => serde_json::to_value(e),
            Entity::Shipping(e) => serde_json::to_value(e),
        };
        result.unwrap_or(Value::Null)
    }

    /// Reads a recorded `event_data` document of the given kind.
    pub fn from_json(kind: EntityKind, data: &Value) -> Result<Entity, serde_json::Error> {
        fn read<T: serde::de::DeserializeOwned>(data: &Value) -> Result<T, serde_json::Error> {
            T::deserialize(data)
        }
        Ok(match kind {
            EntityKind::Customer => Entity::Customer(read(data)?),
            EntityKind::Product => Entity::Product(read(data)?),
            EntityKind::Inventory => Entity::Inventory(read(data)?),
            EntityKind::Cart => Entity::Cart(read(data)?),
            EntityKind::Order => Entity::Order(read(data)?),
            EntityKind::Billing => Entity::Billing(read(data)?),
            EntityKind::Shipping => Entity::Shipping(read(data)?),
        })
    }
}

/// Typed access to one kind of entity inside an [`Entity`], so that
/// [`crate::View`] can hand out `&Cart` rather than `&Entity`.
pub trait EntityData: Clone + Serialize + Sized + 'static {
    const KIND: EntityKind;
    fn entity_id(&self) -> &str;
    fn from_entity(entity: &Entity) -> Option<&Self>;
    fn into_entity(self) -> Entity;
}

macro_rules! entity_data {
    ($ty:ident) => {
        impl EntityData for $ty {
            const KIND: EntityKind = EntityKind::$ty;

            fn entity_id(&self) -> &str {
                &self.entity_id
            }

            fn from_entity(entity: &Entity) -> Option<&Self> {
                match entity {
                    Entity::$ty(e) => Some(e),
                    _ => None,
                }
            }

            fn into_entity(self) -> Entity {
                Entity::$ty(self)
            }
        }

        impl From<$ty> for Entity {
            fn from(e: $ty) -> Entity {
                Entity::$ty(e)
            }
        }
    };
}

entity_data!(Customer);
entity_data!(Product);
entity_data!(Inventory);
entity_data!(Cart);
entity_data!(Order);
entity_data!(Billing);
entity_data!(Shipping);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn event_data_keeps_the_contract_field_names_and_number_types() {
        let order = Entity::Order(Order {
            entity_id: "o1".into(),
            cart_id: "c1".into(),
            status: OrderStatus::InStock,
        });
        assert_eq!(
            order.to_json(),
            json!({"entity_id": "o1", "cart_id": "c1", "status": "IN_STOCK"})
        );
        let inventory = Entity::Inventory(Inventory {
            entity_id: "i1".into(),
            product_id: "p1".into(),
            amount: 7,
        });
        assert_eq!(inventory.to_json()["amount"], json!(7));
        assert!(inventory.to_json()["amount"].is_i64());
        let product = Entity::Product(Product {
            entity_id: "p1".into(),
            name: "Tea".into(),
            price: 2.5,
        });
        assert_eq!(product.to_json()["price"], json!(2.5));
    }

    #[test]
    fn round_trips_through_json_for_every_kind() {
        let all = [
            Entity::Customer(Customer {
                entity_id: "a".into(),
                name: "Ann".into(),
                email: "ann@example.org".into(),
            }),
            Entity::Product(Product {
                entity_id: "b".into(),
                name: "Tea".into(),
                price: 3.0,
            }),
            Entity::Inventory(Inventory {
                entity_id: "c".into(),
                product_id: "b".into(),
                amount: 4,
            }),
            Entity::Cart(Cart {
                entity_id: "d".into(),
                customer_id: "a".into(),
                product_ids: vec!["b".into(), "b".into()],
            }),
            Entity::Order(Order {
                entity_id: "e".into(),
                cart_id: "d".into(),
                status: OrderStatus::Created,
            }),
            Entity::Billing(Billing {
                entity_id: "f".into(),
                order_id: "e".into(),
                amount: 6.0,
            }),
            Entity::Shipping(Shipping {
                entity_id: "g".into(),
                order_id: "e".into(),
                delivered: 0,
            }),
        ];
        for entity in all {
            let back = Entity::from_json(entity.kind(), &entity.to_json()).unwrap();
            assert_eq!(back, entity);
        }
    }

    #[test]
    fn recorded_data_with_a_wrong_type_does_not_parse() {
        let data = json!({"entity_id": "i", "product_id": "p", "amount": "7"});
        assert!(Entity::from_json(EntityKind::Inventory, &data).is_err());
    }
}
