//! Read-model queries over entity maps (id → entity JSON), the shape the
//! read model keeps per topic and [`crate::View::entity_map`] produces.
//! Outputs keep numbers as numbers.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::DomainError;
use crate::kind::EntityKind;
use crate::view::View;

/// Entities of one kind by id, as JSON documents.
pub type EntityMap = BTreeMap<String, Value>;

/// One entity map per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntitySnapshot {
    maps: BTreeMap<EntityKind, EntityMap>,
}

static EMPTY: EntityMap = EntityMap::new();

impl EntitySnapshot {
    pub fn new() -> EntitySnapshot {
        EntitySnapshot::default()
    }

    pub fn insert(&mut self, kind: EntityKind, map: EntityMap) {
        self.maps.insert(kind, map);
    }

    /// The map of `kind`; empty when none was inserted.
    pub fn map(&self, kind: EntityKind) -> &EntityMap {
        self.maps.get(&kind).unwrap_or(&EMPTY)
    }

    /// Every kind the view folds.
    pub fn from_view(view: &View) -> EntitySnapshot {
        let mut snapshot = EntitySnapshot::new();
        for kind in EntityKind::ALL {
            if view.tracks(kind.topic()) {
                snapshot.insert(kind, view.entity_map(kind));
            }
        }
        snapshot
    }
}

/// Which entities a query asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    All,
    Id(String),
    /// In this order; repeats are kept (a cart's `product_ids` repeat).
    Ids(Vec<String>),
    /// Entities whose fields equal every given field (numbers compare by
    /// value: `10` matches `10.0`).
    Props(Map<String, Value>),
}

/// A `get_entity` / `get_entities` request: `{name, id | ids | props}`.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityQuery {
    pub kind: EntityKind,
    pub selector: Selector,
}

impl EntityQuery {
    /// Reads `{name, id}`, `{name, ids}`, `{name, props}` or `{name}`;
    /// `name` is the singular (`order`) or plural (`orders`) name.
    pub fn from_request(request: &Value) -> Result<EntityQuery, DomainError> {
        let fields = request.as_object().ok_or(DomainError::NotAnObject)?;
        let name = match fields.get("name") {
            None | Some(Value::Null) => return Err(DomainError::Missing { field: "name" }),
            Some(Value::String(name)) => name,
            Some(_) => {
                return Err(DomainError::Invalid {
                    field: "name",
                    expected: "a string",
                });
            }
        };
        let kind = EntityKind::from_singular(name)
            .or_else(|| EntityKind::from_plural(name))
            .ok_or_else(|| DomainError::UnknownName(name.clone()))?;
        let given: Vec<&str> = ["id", "ids", "props"]
            .into_iter()
            .filter(|f| fields.get(*f).is_some_and(|v| !v.is_null()))
            .collect();
        let selector = match given.as_slice() {
            [] => Selector::All,
            ["id"] => match &fields["id"] {
                Value::String(id) => Selector::Id(id.clone()),
                _ => {
                    return Err(DomainError::Invalid {
                        field: "id",
                        expected: "a string",
                    });
                }
            },
            ["ids"] => {
                let invalid = DomainError::Invalid {
                    field: "ids",
                    expected: "a list of ids",
                };
                let items = fields["ids"].as_array().ok_or(invalid.clone())?;
                let ids = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).ok_or(invalid.clone()))
                    .collect::<Result<_, _>>()?;
                Selector::Ids(ids)
            }
            ["props"] => match &fields["props"] {
                Value::Object(props) => Selector::Props(props.clone()),
                _ => {
                    return Err(DomainError::Invalid {
                        field: "props",
                        expected: "an object",
                    });
                }
            },
            _ => {
                return Err(DomainError::Invalid {
                    field: "id, ids and props",
                    expected: "given one at a time",
                });
            }
        };
        Ok(EntityQuery { kind, selector })
    }
}

/// One entity: by id, the first of `ids` that exists, or the first (in id
/// order) matching `props`. `Selector::All` names no entity: `None`.
pub fn get_entity(map: &EntityMap, selector: &Selector) -> Option<Value> {
    match selector {
        Selector::All => None,
        Selector::Id(id) => map.get(id).cloned(),
        Selector::Ids(ids) => ids.iter().find_map(|id| map.get(id)).cloned(),
        Selector::Props(props) => map.values().find(|e| matches_props(e, props)).cloned(),
    }
}

/// Entities: all (in id order), by id, by ids (in the given order, repeats
/// kept, unknown ids left out — compare lengths to detect them), or all
/// matching `props`.
pub fn get_entities(map: &EntityMap, selector: &Selector) -> Vec<Value> {
    match selector {
        Selector::All => map.values().cloned().collect(),
        Selector::Id(id) => map.get(id).cloned().into_iter().collect(),
        Selector::Ids(ids) => ids.iter().filter_map(|id| map.get(id)).cloned().collect(),
        Selector::Props(props) => map
            .values()
            .filter(|e| matches_props(e, props))
            .cloned()
            .collect(),
    }
}

/// Whether `entity` has every field of `props` with an equal value.
pub fn matches_props(entity: &Value, props: &Map<String, Value>) -> bool {
    props.iter().all(|(field, wanted)| {
        entity
            .get(field)
            .is_some_and(|have| same_json(have, wanted))
    })
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}

/// Ids referred to by a field (`order_id`, ...) across a map.
fn referenced(map: &EntityMap, field: &str) -> Vec<String> {
    map.values()
        .filter_map(|e| e.get(field)?.as_str().map(str::to_string))
        .collect()
}

fn orders_without(orders: &EntityMap, others: &EntityMap) -> Map<String, Value> {
    let taken = referenced(others, "order_id");
    orders
        .iter()
        .filter(|(id, _)| !taken.contains(id))
        .map(|(id, order)| (id.clone(), order.clone()))
        .collect()
}

/// Orders without a billing, as a map id → order.
pub fn unbilled_orders(orders: &EntityMap, billings: &EntityMap) -> Map<String, Value> {
    orders_without(orders, billings)
}

/// Orders without a shipping, as a map id → order.
pub fn unshipped_orders(orders: &EntityMap, shippings: &EntityMap) -> Map<String, Value> {
    orders_without(orders, shippings)
}

/// Orders with a shipping whose `delivered` is not 0, as a list.
pub fn delivered_orders(orders: &EntityMap, shippings: &EntityMap) -> Vec<Value> {
    let delivered: Vec<&str> = shippings
        .values()
        .filter(|s| {
            s.get("delivered")
                .and_then(Value::as_f64)
                .is_some_and(|d| d != 0.0)
        })
        .filter_map(|s| s.get("order_id")?.as_str())
        .collect();
    orders
        .iter()
        .filter(|(id, _)| delivered.contains(&id.as_str()))
        .map(|(_, order)| order.clone())
        .collect()
}

/// The `/report/orders` list: each order with `cart` expanded (the cart
/// with its `customer` and its `products`, one per piece) and the order's
/// `billings` and `shippings`. Missing references expand to `null` (or are
/// left out of lists).
pub fn orders_report(snapshot: &EntitySnapshot) -> Vec<Value> {
    let carts = snapshot.map(EntityKind::Cart);
    let customers = snapshot.map(EntityKind::Customer);
    let products = snapshot.map(EntityKind::Product);
    let billings = snapshot.map(EntityKind::Billing);
    let shippings = snapshot.map(EntityKind::Shipping);
    snapshot
        .map(EntityKind::Order)
        .iter()
        .map(|(order_id, order)| {
            let mut order = order.clone();
            let cart = order
                .get("cart_id")
                .and_then(Value::as_str)
                .and_then(|id| carts.get(id))
                .map(|cart| expand_cart(cart, customers, products))
                .unwrap_or(Value::Null);
            let of_order = |map: &EntityMap| {
                let mut props = Map::new();
                props.insert("order_id".into(), Value::String(order_id.clone()));
                get_entities(map, &Selector::Props(props))
            };
            if let Value::Object(fields) = &mut order {
                fields.insert("cart".into(), cart);
                fields.insert("billings".into(), Value::Array(of_order(billings)));
                fields.insert("shippings".into(), Value::Array(of_order(shippings)));
            }
            order
        })
        .collect()
}

fn expand_cart(cart: &Value, customers: &EntityMap, products: &EntityMap) -> Value {
    let mut cart = cart.clone();
    let customer = cart
        .get("customer_id")
        .and_then(Value::as_str)
        .and_then(|id| customers.get(id))
        .cloned()
        .unwrap_or(Value::Null);
    let product_ids: Vec<String> = cart
        .get("product_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let expanded = get_entities(products, &Selector::Ids(product_ids));
    if let Value::Object(fields) = &mut cart {
        fields.insert("customer".into(), customer);
        fields.insert("products".into(), Value::Array(expanded));
    }
    cart
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::status::OrderStatus;
    use crate::testing::Shop;

    fn snapshot(shop: &Shop) -> EntitySnapshot {
        EntitySnapshot::from_view(&shop.view)
    }

    fn query(request: Value) -> EntityQuery {
        EntityQuery::from_request(&request).unwrap()
    }

    #[test]
    fn requests_are_read() {
        assert_eq!(
            query(json!({"name": "order", "id": "o1"})),
            EntityQuery {
                kind: EntityKind::Order,
                selector: Selector::Id("o1".into())
            }
        );
        assert_eq!(query(json!({"name": "products"})).selector, Selector::All);
        assert_eq!(
            query(json!({"name": "product", "ids": ["a", "a"]})).selector,
            Selector::Ids(vec!["a".into(), "a".into()])
        );
        assert!(matches!(
            query(json!({"name": "cart", "props": {"customer_id": "ann"}})).selector,
            Selector::Props(_)
        ));
        let err = |r: Value| EntityQuery::from_request(&r).unwrap_err().to_string();
        assert_eq!(err(json!({"id": "x"})), "name is required");
        assert_eq!(err(json!({"name": "mail"})), "unknown entity name \"mail\"");
        assert_eq!(
            err(json!({"name": "order", "id": 3})),
            "id must be a string"
        );
        assert_eq!(
            err(json!({"name": "order", "ids": [3]})),
            "ids must be a list of ids"
        );
        assert_eq!(
            err(json!({"name": "order", "props": []})),
            "props must be an object"
        );
        assert_eq!(
            err(json!({"name": "order", "id": "a", "props": {}})),
            "id, ids and props must be given one at a time"
        );
    }

    #[test]
    fn get_entity_by_id_or_props() {
        let shop = Shop::standard();
        let products = shop.view.entity_map(EntityKind::Product);
        assert_eq!(
            get_entity(&products, &Selector::Id("tea".into())).unwrap()["price"],
            json!(2.5)
        );
        assert_eq!(get_entity(&products, &Selector::Id("nope".into())), None);
        let mut props = Map::new();
        props.insert("price".into(), json!(4));
        assert_eq!(
            get_entity(&products, &Selector::Props(props)).unwrap()["entity_id"],
            json!("cup")
        );
        assert_eq!(get_entity(&products, &Selector::All), None);
        assert_eq!(
            get_entity(&products, &Selector::Ids(vec!["nope".into(), "cup".into()])).unwrap()["entity_id"],
            json!("cup")
        );
    }

    #[test]
    fn get_entities_keeps_order_and_repeats() {
        let shop = Shop::standard();
        let products = shop.view.entity_map(EntityKind::Product);
        let got = get_entities(
            &products,
            &Selector::Ids(vec![
                "tea".into(),
                "nope".into(),
                "cup".into(),
                "tea".into(),
            ]),
        );
        let ids: Vec<&str> = got
            .iter()
            .map(|p| p["entity_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["tea", "cup", "tea"]);
        assert_eq!(get_entities(&products, &Selector::All).len(), 2);
        let mut props = Map::new();
        props.insert("name".into(), json!("Product tea"));
        assert_eq!(get_entities(&products, &Selector::Props(props)).len(), 1);
        // Numbers stay numbers.
        assert!(got[0]["price"].is_f64());
    }

    #[test]
    fn props_compare_numbers_by_value_and_need_every_field() {
        let entity = json!({"a": 10, "b": [1, {"c": 2.0}], "s": "x"});
        let props = |v: Value| v.as_object().unwrap().clone();
        assert!(matches_props(&entity, &props(json!({"a": 10.0}))));
        assert!(matches_props(
            &entity,
            &props(json!({"b": [1.0, {"c": 2}], "s": "x"}))
        ));
        assert!(!matches_props(&entity, &props(json!({"a": "10"}))));
        assert!(!matches_props(&entity, &props(json!({"missing": null}))));
        assert!(matches_props(&entity, &props(json!({}))));
    }

    fn shop_with_orders() -> Shop {
        let mut shop = Shop::standard();
        shop.cart("cart2", "ann", &["tea"])
            .cart("cart3", "ann", &["cup"])
            .order("o1", "cart1", OrderStatus::Delivered)
            .order("o2", "cart2", OrderStatus::Cleared)
            .order("o3", "cart3", OrderStatus::InStock)
            .billing("b1", "o1", 9.0)
            .billing("b2", "o2", 2.5)
            .shipping("s1", "o1", 1_700_000_000)
            .shipping("s2", "o2", 0);
        shop
    }

    #[test]
    fn unbilled_unshipped_and_delivered() {
        let shop = shop_with_orders();
        let s = snapshot(&shop);
        let orders = s.map(EntityKind::Order);
        let unbilled = unbilled_orders(orders, s.map(EntityKind::Billing));
        assert_eq!(unbilled.keys().collect::<Vec<_>>(), ["o3"]);
        assert_eq!(unbilled["o3"]["status"], json!("IN_STOCK"));
        let unshipped = unshipped_orders(orders, s.map(EntityKind::Shipping));
        assert_eq!(unshipped.keys().collect::<Vec<_>>(), ["o3"]);
        let delivered = delivered_orders(orders, s.map(EntityKind::Shipping));
        assert_eq!(delivered, vec![orders["o1"].clone()]);
    }

    #[test]
    fn the_orders_report_expands_references() {
        let shop = shop_with_orders();
        let orders = orders_report(&snapshot(&shop));
        assert_eq!(orders.len(), 3);
        let o1 = &orders[0];
        assert_eq!(o1["entity_id"], json!("o1"));
        assert_eq!(o1["cart"]["entity_id"], json!("cart1"));
        assert_eq!(o1["cart"]["customer"]["name"], json!("Ann"));
        let names: Vec<&str> = o1["cart"]["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["entity_id"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["tea", "cup", "tea"]);
        assert_eq!(o1["billings"][0]["entity_id"], json!("b1"));
        assert_eq!(o1["shippings"][0]["delivered"], json!(1_700_000_000));
        assert_eq!(orders[2]["billings"], json!([]));
    }

    #[test]
    fn the_orders_report_survives_missing_references() {
        let mut s = EntitySnapshot::new();
        let mut orders = EntityMap::new();
        orders.insert(
            "o1".into(),
            json!({"entity_id": "o1", "cart_id": "gone", "status": "CREATED"}),
        );
        s.insert(EntityKind::Order, orders);
        let report = orders_report(&s);
        assert_eq!(report[0]["cart"], Value::Null);
        assert_eq!(report[0]["shippings"], json!([]));
    }
}
