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
        Role::ALL.iter().any(|role| role.serves(channel))
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

    /// Topics whose events this role reads (views, subscriptions, the
    /// read model's fold, the gateway's live push). The event store refuses
    /// a role every other topic: customer data stays with the roles that
    /// need it. Heads (entry ids only) are open to every role.
    pub const fn reads(self) -> &'static [&'static str] {
        match self {
            Role::Customer => &["customer", "cart", "order"],
            Role::Product => &["product", "cart", "inventory"],
            Role::Inventory => &["inventory", "product", "order", "cart"],
            Role::Cart => &["cart", "customer", "product", "inventory", "order"],
            Role::Order => &["order", "cart", "customer", "billing", "shipping"],
            Role::Billing => &["billing", "order", "cart", "product"],
            Role::Shipping => &["shipping", "order", "billing"],
            Role::Crm => &[
                "customer", "product", "cart", "order", "billing", "shipping",
            ],
            Role::ReadModel | Role::ApiGateway => crate::TOPICS,
            Role::Mail | Role::EventStore | Role::MessageQueue => &[],
        }
    }

    /// Topics this role folds into a view in its own memory, which it
    /// snapshots into the event store ([`crate::snapshot_key`]). Retention
    /// trims a topic only behind the snapshot of every role that lists it
    /// here (and the read model's checkpoint: it folds every topic into
    /// Redis), so a restarted role still finds every event after its
    /// snapshot.
    pub const fn view_topics(self) -> &'static [&'static str] {
        match self {
            // It reads billing and shipping only through its subscription.
            Role::Crm => &["customer", "product", "cart", "order"],
            Role::Customer
            | Role::Product
            | Role::Inventory
            | Role::Cart
            | Role::Order
            | Role::Billing
            | Role::Shipping => self.reads(),
            _ => &[],
        }
    }

    /// The roles that keep a view of `topic` (see [`Role::view_topics`]).
    pub fn viewers(topic: &str) -> impl Iterator<Item = Role> + '_ {
        Role::ALL
            .into_iter()
            .filter(move |role| role.view_topics().contains(&topic))
    }

    /// Whether this role may publish to `topic`: only to the one it owns.
    pub fn publishes_to(self, topic: &str) -> bool {
        self.owned_topic() == Some(topic)
    }

    /// Whether this role may send requests on `channel` (and await their
    /// responses): the gateway every served channel, the stock saga the
    /// order service's verdict channel, the CRM the mail service.
    pub fn sends_to(self, channel: &str) -> bool {
        let to =
            |role: Role, function: &str| channel == channel_name(role.service_name(), function);
        match self {
            Role::ApiGateway => Role::serves_channel(channel),
            Role::Inventory => to(Role::Order, "set_status"),
            Role::Crm => to(Role::Mail, "send"),
            _ => false,
        }
    }

    /// Whether this role receives, answers and acknowledges `channel`.
    pub fn serves(self, channel: &str) -> bool {
        channel
            .strip_prefix(self.service_name())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|function| self.functions().contains(&function))
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
    fn every_role_reads_what_it_subscribes_to_and_owns() {
        for role in Role::ALL {
            for sub in role.subscriptions() {
                assert!(role.reads().contains(&sub.topic), "{role:?} {}", sub.topic);
            }
            for topic in role.reads() {
                assert!(crate::TOPICS.contains(topic), "{role:?} {topic}");
            }
            if let Some(owned) = role.owned_topic() {
                assert!(role.publishes_to(owned));
            }
        }
        assert!(!Role::Customer.publishes_to("billing"));
        assert!(!Role::Mail.reads().contains(&"customer"));
    }

    #[test]
    fn only_the_gateway_and_the_sagas_send() {
        assert!(Role::ApiGateway.sends_to("billing-service.create_billings"));
        assert!(Role::Inventory.sends_to("order-service.set_status"));
        assert!(Role::Crm.sends_to("mail-service.send"));
        assert!(!Role::ApiGateway.sends_to("x.y"));
        assert!(!Role::Customer.sends_to("mail-service.send"));
        assert!(Role::Order.serves("order-service.set_status"));
        assert!(!Role::Order.serves("customer-service.create_customers"));
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
