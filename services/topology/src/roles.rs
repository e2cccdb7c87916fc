//! The services of OrderShop and what each consumes.

use crate::keys::channel_name;

/// A durable event subscription through a consumer group named after the
/// subscribing service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub topic: &'static str,
}

/// One OrderShop service. The same binary runs each of them
/// (`ordershop <role>`), the operator makes one Deployment per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    EventStore,
    MessageQueue,
    ReadModel,
    ApiGateway,
    Customer,
    Product,
    Inventory,
    Cart,
    Order,
    Billing,
    Shipping,
    Crm,
    Mail,
}

impl Role {
    pub const ALL: [Role; 13] = [
        Role::EventStore,
        Role::MessageQueue,
        Role::ReadModel,
        Role::ApiGateway,
        Role::Customer,
        Role::Product,
        Role::Inventory,
        Role::Cart,
        Role::Order,
        Role::Billing,
        Role::Shipping,
        Role::Crm,
        Role::Mail,
    ];

    /// Short name: the binary's subcommand and the Kubernetes component
    /// label (`customer`, `read-model`, ...).
    pub const fn slug(self) -> &'static str {
        match self {
            Role::EventStore => "event-store",
            Role::MessageQueue => "message-queue",
            Role::ReadModel => "read-model",
            Role::ApiGateway => "api-gateway",
            Role::Customer => "customer",
            Role::Product => "product",
            Role::Inventory => "inventory",
            Role::Cart => "cart",
            Role::Order => "order",
            Role::Billing => "billing",
            Role::Shipping => "shipping",
            Role::Crm => "crm",
            Role::Mail => "mail",
        }
    }

    /// The service name used for queue channels and consumer groups, as in
    /// the contract (`order-service.create_orders`).
    pub const fn service_name(self) -> &'static str {
        match self {
            Role::EventStore => "event-store",
            Role::MessageQueue => "message-queue",
            Role::ReadModel => "read-model",
            Role::ApiGateway => "api-gateway",
            Role::Customer => "customer-service",
            Role::Product => "product-service",
            Role::Inventory => "inventory-service",
            Role::Cart => "cart-service",
            Role::Order => "order-service",
            Role::Billing => "billing-service",
            Role::Shipping => "shipping-service",
            Role::Crm => "crm-service",
            Role::Mail => "mail-service",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.slug() == slug)
    }

    /// The entity topic a domain service owns (publishes entity events to).
    pub const fn owned_topic(self) -> Option<&'static str> {
        match self {
            Role::Customer => Some("customer"),
            Role::Product => Some("product"),
            Role::Inventory => Some("inventory"),
            Role::Cart => Some("cart"),
            Role::Order => Some("order"),
            Role::Billing => Some("billing"),
            Role::Shipping => Some("shipping"),
            Role::Mail => Some("mail"),
            _ => None,
        }
    }

    /// Queue functions this role serves.
    pub const fn functions(self) -> &'static [&'static str] {
        match self {
            Role::Customer => &["create_customers", "update_customer", "delete_customer"],
            Role::Product => &["create_products", "update_product", "delete_product"],
            Role::Inventory => &["create_inventories", "update_inventory", "delete_inventory"],
            Role::Cart => &["create_carts", "update_cart", "delete_cart"],
            // `set_status` carries the inventory saga's verdict
            // (IN_STOCK / OUT_OF_STOCK) to the owner of the order state.
            Role::Order => &[
                "create_orders",
                "update_order",
                "delete_order",
                "set_status",
            ],
            Role::Billing => &["create_billings", "update_billing", "delete_billing"],
            Role::Shipping => &["create_shippings", "update_shipping", "delete_shipping"],
            Role::Mail => &["send"],
            Role::ReadModel => &[
                "get_entity",
                "get_entities",
                "get_mails",
                "get_unbilled_orders",
                "get_unshipped_orders",
                "get_delivered_orders",
                "get_orders_report",
            ],
            Role::EventStore | Role::MessageQueue | Role::ApiGateway | Role::Crm => &[],
        }
    }

    /// Full channel names (`<service>.<function>`) this role serves.
    pub fn channels(self) -> Vec<String> {
        self.functions()
            .iter()
            .map(|f| channel_name(self.service_name(), f))
            .collect()
    }

    /// Whether `channel` is one that a role of OrderShop serves (metrics
    /// label only these by name, so a client cannot mint label values).
    pub fn serves_channel(channel: &str) -> bool {
        Role::ALL.iter().any(|role| {
            channel
                .strip_prefix(role.service_name())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|function| role.functions().contains(&function))
        })
    }

    /// Durable consumer-group subscriptions of this role's sagas. The group
    /// is always `service_name()`.
    pub const fn subscriptions(self) -> &'static [Subscription] {
        const ORDER: Subscription = Subscription { topic: "order" };
        const BILLING: Subscription = Subscription { topic: "billing" };
        const SHIPPING: Subscription = Subscription { topic: "shipping" };
        const CUSTOMER: Subscription = Subscription { topic: "customer" };
        match self {
            // Reserve stock on order created, restore it on order deleted.
            Role::Inventory => &[ORDER],
            // CLEARED / UNCLEARED from billing, SHIPPED / DELIVERED from shipping.
            Role::Order => &[BILLING, SHIPPING],
            // A billing creates its shipping.
            Role::Shipping => &[BILLING],
            Role::Crm => &[CUSTOMER, ORDER, BILLING, SHIPPING],
            _ => &[],
        }
    }

    /// Whether the role consumes any work the operator can measure and scale on.
    pub fn is_consumer(self) -> bool {
        !self.functions().is_empty() || !self.subscriptions().is_empty()
    }

    /// Whether the role serves the event store or queue gRPC API itself.
    pub const fn is_infrastructure(self) -> bool {
        matches!(self, Role::EventStore | Role::MessageQueue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_channels_are_known_and_others_not() {
        for role in Role::ALL {
            for channel in role.channels() {
                assert!(Role::serves_channel(&channel), "{channel}");
            }
        }
        for other in [
            "",
            "customer-service",
            "customer-service.",
            "x.create_customers",
            "customer-service.create_carts",
        ] {
            assert!(!Role::serves_channel(other), "{other}");
        }
    }

    #[test]
    fn slugs_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_slug(role.slug()), Some(role));
        }
    }

    #[test]
    fn channels_follow_the_contract_naming() {
        assert!(
            Role::Order
                .channels()
                .contains(&"order-service.create_orders".to_string())
        );
    }

    #[test]
    fn every_subscribed_topic_exists() {
        for role in Role::ALL {
            for sub in role.subscriptions() {
                assert!(crate::TOPICS.contains(&sub.topic), "{role:?} {}", sub.topic);
            }
        }
    }
}
