//! The CRM: which event makes which mail, and the mails' texts.
//!
//! | event | mail (to the cart's or the customer's address) |
//! |---|---|
//! | customer created | welcome |
//! | customer deleted | good-bye |
//! | order updated to IN_STOCK | please pay the sum of the cart's product prices |
//! | billing created | payment received, stating the billing's amount |
//! | shipping created | order shipped |
//!
//! Layout: `Dear <name>!`, blank line, one sentence, blank line, `Cheers`.
//! Each mail has an idempotency key (`welcome:<customer>`, `pay:<order>`,
//! ...) that is the same however often the event is handled: send it with
//! the queue message so a redelivered event does not mail twice; the mail
//! service also uses it as the `mail_sent` event's causation id.

use serde_json::{Value, json};

use crate::entity::{Billing, Cart, Customer, Order, Shipping};
use crate::error::DomainError;
use crate::event::{EventAction, RecordedEvent};
use crate::kind::Topic;
use crate::lookup;
use crate::status::OrderStatus;
use crate::view::View;

/// The topics the CRM's view must fold to address and price mails. The
/// events themselves come from its subscriptions (customer, order,
/// billing, shipping).
pub const CRM_TOPICS: &[Topic] = &[Topic::Customer, Topic::Product, Topic::Cart, Topic::Order];

/// A mail to send through `mail-service.send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Idempotency key, unique per (kind of mail, entity).
    pub key: String,
    pub to: String,
    pub msg: String,
}

impl Mail {
    /// The `mail-service.send` payload: `{to, msg, key}`.
    pub fn send_request(&self) -> Value {
        json!({"to": self.to, "msg": self.msg, "key": self.key})
    }
}

/// What the CRM does about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailDecision {
    Send(Mail),
    /// No mail, and why (not a mail event, or the recipient is gone).
    Skip(String),
}

/// The mail for `event`, addressed and priced from `view`.
pub fn decide_mail(view: &View, event: &RecordedEvent) -> Result<MailDecision, DomainError> {
    view.require(CRM_TOPICS)?;
    let skip = |why: String| Ok(MailDecision::Skip(why));
    match (event.topic, event.action) {
        (Topic::Customer, EventAction::EntityCreated) => match event.entity::<Customer>() {
            Some(customer) => Ok(send(
                format!("welcome:{}", customer.entity_id),
                &customer,
                "Welcome to Ordershop.".to_string(),
            )),
            None => skip(unreadable(event)),
        },
        (Topic::Customer, EventAction::EntityDeleted) => match event.entity::<Customer>() {
            Some(customer) => Ok(send(
                format!("goodbye:{}", customer.entity_id),
                &customer,
                "Good bye, hope to see you soon again at Ordershop.".to_string(),
            )),
            None => skip(unreadable(event)),
        },
        (Topic::Order, EventAction::EntityUpdated) => {
            let Some(order) = event.entity::<Order>() else {
                return skip(unreadable(event));
            };
            if order.status != OrderStatus::InStock {
                return skip(format!("order {} is {}", order.entity_id, order.status));
            }
            let (cart, customer) = match cart_and_customer(view, &order.cart_id) {
                Ok(found) => found,
                Err(why) => return skip(why),
            };
            let total = match lookup::cart_total(view, cart) {
                Ok(total) => total,
                Err(e) => return skip(e.to_string()),
            };
            Ok(send(
                format!("pay:{}", order.entity_id),
                customer,
                format!(
                    "Please transfer € {} with your favourite payment method.",
                    format_money(total)
                ),
            ))
        }
        (Topic::Billing, EventAction::EntityCreated) => {
            let Some(billing) = event.entity::<Billing>() else {
                return skip(unreadable(event));
            };
            let customer = match customer_of_order(view, &billing.order_id) {
                Ok(customer) => customer,
                Err(why) => return skip(why),
            };
            Ok(send(
                format!("paid:{}", billing.entity_id),
                customer,
                format!(
                    "We've just received € {} from you, thank you for your transfer.",
                    format_money(billing.amount)
                ),
            ))
        }
        (Topic::Shipping, EventAction::EntityCreated) => {
            let Some(shipping) = event.entity::<Shipping>() else {
                return skip(unreadable(event));
            };
            let customer = match customer_of_order(view, &shipping.order_id) {
                Ok(customer) => customer,
                Err(why) => return skip(why),
            };
            Ok(send(
                format!("shipped:{}", shipping.entity_id),
                customer,
                format!(
                    "We've just shipped order {}. It will be soon delivered to you.",
                    shipping.order_id
                ),
            ))
        }
        (topic, action) => skip(format!("no mail for {topic} {action}")),
    }
}

/// `Dear <name>!`, blank line, `sentence`, blank line, `Cheers`.
pub fn letter(name: &str, sentence: &str) -> String {
    format!("Dear {name}!\n\n{sentence}\n\nCheers")
}

/// Money as mails show it: whole amounts without decimals (`12`), others
/// with two (`12.50`).
pub fn format_money(amount: f64) -> String {
    let cents = (amount * 100.0).round();
    if cents % 100.0 == 0.0 {
        format!("{}", cents / 100.0)
    } else {
        format!("{:.2}", cents / 100.0)
    }
}

fn send(key: String, customer: &Customer, sentence: String) -> MailDecision {
    MailDecision::Send(Mail {
        key,
        to: customer.email.clone(),
        msg: letter(&customer.name, &sentence),
    })
}

fn unreadable(event: &RecordedEvent) -> String {
    format!(
        "{} event {} has unreadable data",
        event.topic, event.event_id
    )
}

fn cart_and_customer<'v>(
    view: &'v View,
    cart_id: &str,
) -> Result<(&'v Cart, &'v Customer), String> {
    let cart = view
        .get::<Cart>(cart_id)
        .ok_or_else(|| format!("cart {cart_id} no longer exists"))?;
    let customer = view
        .get::<Customer>(&cart.customer_id)
        .ok_or_else(|| format!("customer {} no longer exists", cart.customer_id))?;
    Ok((cart, customer))
}

fn customer_of_order<'v>(view: &'v View, order_id: &str) -> Result<&'v Customer, String> {
    let order = view
        .get::<Order>(order_id)
        .ok_or_else(|| format!("order {order_id} no longer exists"))?;
    cart_and_customer(view, &order.cart_id).map(|(_, customer)| customer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Entity;
    use crate::testing::Shop;

    fn mail(shop: &Shop) -> MailDecision {
        decide_mail(&shop.view, shop.last()).unwrap()
    }

    fn sent(decision: MailDecision) -> Mail {
        match decision {
            MailDecision::Send(mail) => mail,
            MailDecision::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn welcome_and_good_bye() {
        let mut shop = Shop::new();
        shop.customer("ann", "Ann");
        let welcome = sent(mail(&shop));
        assert_eq!(welcome.to, "ann@example.org");
        assert_eq!(welcome.key, "welcome:ann");
        assert_eq!(welcome.msg, "Dear Ann!\n\nWelcome to Ordershop.\n\nCheers");
        shop.delete(
            shop.view
                .entity(crate::EntityKind::Customer, "ann")
                .unwrap()
                .clone(),
        );
        let bye = sent(mail(&shop));
        assert_eq!(bye.key, "goodbye:ann");
        assert_eq!(
            bye.msg,
            "Dear Ann!\n\nGood bye, hope to see you soon again at Ordershop.\n\nCheers"
        );
    }

    #[test]
    fn please_pay_states_the_cart_total_when_in_stock() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::Created);
        assert!(
            matches!(mail(&shop), MailDecision::Skip(_)),
            "order created: no mail"
        );
        shop.order("o1", "cart1", OrderStatus::InStock);
        let pay = sent(mail(&shop));
        assert_eq!(pay.key, "pay:o1");
        assert_eq!(
            pay.msg,
            "Dear Ann!\n\nPlease transfer € 9 with your favourite payment method.\n\nCheers"
        );
        shop.order("o1", "cart1", OrderStatus::Cleared);
        assert!(matches!(mail(&shop), MailDecision::Skip(_)));
    }

    #[test]
    fn payment_received_states_the_amount() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::InStock)
            .billing("b1", "o1", 9.5);
        let paid = sent(mail(&shop));
        assert_eq!(paid.key, "paid:b1");
        assert_eq!(paid.to, "ann@example.org");
        assert_eq!(
            paid.msg,
            "Dear Ann!\n\nWe've just received € 9.50 from you, thank you for your transfer.\n\nCheers"
        );
    }

    #[test]
    fn order_shipped() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::Cleared)
            .shipping("s1", "o1", 0);
        let shipped = sent(mail(&shop));
        assert_eq!(shipped.key, "shipped:s1");
        assert_eq!(
            shipped.msg,
            "Dear Ann!\n\nWe've just shipped order o1. It will be soon delivered to you.\n\nCheers"
        );
        // A delivery update is not a mail.
        shop.shipping("s1", "o1", 5);
        assert!(matches!(mail(&shop), MailDecision::Skip(_)));
    }

    #[test]
    fn no_mail_when_the_customer_is_gone() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::Created);
        let ann = shop
            .view
            .entity(crate::EntityKind::Customer, "ann")
            .unwrap()
            .clone();
        shop.delete(ann);
        shop.order("o1", "cart1", OrderStatus::InStock);
        assert_eq!(
            mail(&shop),
            MailDecision::Skip("customer ann no longer exists".into())
        );
    }

    #[test]
    fn the_same_event_gives_the_same_mail() {
        let mut shop = Shop::standard();
        shop.order("o1", "cart1", OrderStatus::InStock);
        assert_eq!(mail(&shop), mail(&shop));
    }

    #[test]
    fn other_events_send_nothing() {
        let mut shop = Shop::standard();
        shop.customer("ann", "Annie");
        assert_eq!(
            mail(&shop),
            MailDecision::Skip("no mail for customer entity_updated".into())
        );
        shop.delete(Entity::Order(crate::entity::Order {
            entity_id: "x".into(),
            cart_id: "cart1".into(),
            status: OrderStatus::Created,
        }));
        assert!(matches!(mail(&shop), MailDecision::Skip(_)));
    }

    #[test]
    fn money_formats() {
        assert_eq!(format_money(9.0), "9");
        assert_eq!(format_money(0.1 + 0.2), "0.30");
        assert_eq!(format_money(12.5), "12.50");
        assert_eq!(format_money(1234.567), "1234.57");
        assert_eq!(format_money(0.0), "0");
    }

    #[test]
    fn send_requests_carry_the_key() {
        let m = Mail {
            key: "k".into(),
            to: "a@b.c".into(),
            msg: "hi".into(),
        };
        assert_eq!(
            m.send_request(),
            json!({"to": "a@b.c", "msg": "hi", "key": "k"})
        );
    }
}
