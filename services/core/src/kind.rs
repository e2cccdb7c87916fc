//! Names of things: the seven entity kinds and the eight event topics.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of entities OrderShop manages. Each has its own topic, its own
/// domain service and its own REST routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    Customer,
    Product,
    Inventory,
    Cart,
    Order,
    Billing,
    Shipping,
}

impl EntityKind {
    /// In the contract's order.
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Customer,
        EntityKind::Product,
        EntityKind::Inventory,
        EntityKind::Cart,
        EntityKind::Order,
        EntityKind::Billing,
        EntityKind::Shipping,
    ];

    /// `customer`, ... : the topic name, the read model's `name` and the REST
    /// path of one entity (`/customer/<id>`).
    pub const fn singular(self) -> &'static str {
        match self {
            EntityKind::Customer => "customer",
            EntityKind::Product => "product",
            EntityKind::Inventory => "inventory",
            EntityKind::Cart => "cart",
            EntityKind::Order => "order",
            EntityKind::Billing => "billing",
            EntityKind::Shipping => "shipping",
        }
    }

    /// `customers`, `inventories`, ... : the REST path of the collection and
    /// the suffix of `create_<plural>`.
    pub const fn plural(self) -> &'static str {
        match self {
            EntityKind::Customer => "customers",
            EntityKind::Product => "products",
            EntityKind::Inventory => "inventories",
            EntityKind::Cart => "carts",
            EntityKind::Order => "orders",
            EntityKind::Billing => "billings",
            EntityKind::Shipping => "shippings",
        }
    }

    /// The topic this kind's events go to.
    pub const fn topic(self) -> Topic {
        match self {
            EntityKind::Customer => Topic::Customer,
            EntityKind::Product => Topic::Product,
            EntityKind::Inventory => Topic::Inventory,
            EntityKind::Cart => Topic::Cart,
            EntityKind::Order => Topic::Order,
            EntityKind::Billing => Topic::Billing,
            EntityKind::Shipping => Topic::Shipping,
        }
    }

    pub fn from_singular(name: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.singular() == name)
    }

    pub fn from_plural(name: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.plural() == name)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.singular())
    }
}

/// An event topic: one per entity kind, plus `mail` whose events
/// (`mail_sent`) are not entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    Customer,
    Product,
    Inventory,
    Cart,
    Order,
    Billing,
    Shipping,
    Mail,
}

impl Topic {
    /// In the contract's order.
    pub const ALL: [Topic; 8] = [
        Topic::Customer,
        Topic::Product,
        Topic::Inventory,
        Topic::Cart,
        Topic::Order,
        Topic::Billing,
        Topic::Shipping,
        Topic::Mail,
    ];

    /// The topic name (stream `events:<name>`).
    pub const fn name(self) -> &'static str {
        match self.entity_kind() {
            Some(kind) => kind.singular(),
            None => "mail",
        }
    }

    /// The entity kind whose events this topic carries; `None` for `mail`.
    pub const fn entity_kind(self) -> Option<EntityKind> {
        match self {
            Topic::Customer => Some(EntityKind::Customer),
            Topic::Product => Some(EntityKind::Product),
            Topic::Inventory => Some(EntityKind::Inventory),
            Topic::Cart => Some(EntityKind::Cart),
            Topic::Order => Some(EntityKind::Order),
            Topic::Billing => Some(EntityKind::Billing),
            Topic::Shipping => Some(EntityKind::Shipping),
            Topic::Mail => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EntityKind::ALL {
            assert_eq!(EntityKind::from_singular(kind.singular()), Some(kind));
            assert_eq!(EntityKind::from_plural(kind.plural()), Some(kind));
            assert_eq!(kind.topic().entity_kind(), Some(kind));
            assert_eq!(kind.topic().name(), kind.singular());
        }
        for topic in Topic::ALL {
            assert_eq!(Topic::from_name(topic.name()), Some(topic));
        }
        assert_eq!(EntityKind::Inventory.plural(), "inventories");
        assert_eq!(Topic::Mail.entity_kind(), None);
        assert_eq!(EntityKind::from_singular("mail"), None);
    }

    #[test]
    fn topics_agree_with_the_deployment_tables() {
        let ours: Vec<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(ours, ordershop_topology::TOPICS);
        let entities: Vec<&str> = EntityKind::ALL.iter().map(|k| k.singular()).collect();
        assert_eq!(entities, ordershop_topology::ENTITY_TOPICS);
    }

    #[test]
    fn serde_uses_the_topic_names() {
        assert_eq!(
            serde_json::to_value(Topic::Inventory).unwrap(),
            serde_json::json!("inventory")
        );
        assert_eq!(
            serde_json::from_value::<EntityKind>(serde_json::json!("shipping")).unwrap(),
            EntityKind::Shipping
        );
    }
}
