//! The v2 reference client's whole session, played against the deciders
//! with every saga running in between (one view of all topics, the test
//! fixture as the event store). Checks the counts that client asserts.

use serde_json::{Value, json};

use crate::commands::{CommandOp, decide_command};
use crate::crm::{MailDecision, decide_mail};
use crate::entity::{Inventory, Order};
use crate::event::{EventAction, NewEvent};
use crate::kind::{EntityKind, Topic};
use crate::mail::decide_mail_sent;
use crate::query::{self, EntitySnapshot};
use crate::sagas::order_status::{StatusChange, StatusOutcome, decide_order_status};
use crate::sagas::shipping::decide_shipping_for_event;
use crate::sagas::stock::decide_stock;
use crate::status::OrderStatus;
use crate::testing::Shop;

struct World {
    shop: Shop,
    handled: usize,
    waiting: Vec<StatusChange>,
    messages: usize,
}

impl World {
    fn new() -> World {
        World {
            shop: Shop::new(),
            handled: 0,
            waiting: Vec::new(),
            messages: 0,
        }
    }

    fn message_id(&mut self) -> String {
        self.messages += 1;
        format!("msg-{}", self.messages)
    }

    /// A command through the gateway: decide, append, let sagas settle.
    fn command(&mut self, kind: EntityKind, op: CommandOp, input: Value) -> Value {
        let message_id = self.message_id();
        let decision = decide_command(kind, op, &self.shop.view, &message_id, &input)
            .unwrap_or_else(|e| panic!("{op:?} {kind}: {e}"));
        self.append(&decision.events);
        self.settle();
        decision.reply
    }

    fn append(&mut self, events: &[NewEvent]) {
        self.shop
            .append(events)
            .expect("no concurrent writers here");
    }

    fn apply_status(&mut self, change: StatusChange) {
        match decide_order_status(&self.shop.view, &change).unwrap() {
            StatusOutcome::Append(event) => self.append(&[event]),
            StatusOutcome::NotYet(_) => self.waiting.push(change),
            StatusOutcome::Done(_) => {}
            StatusOutcome::Refused(why) => panic!("refused: {why}"),
        }
    }

    /// Runs every saga over every event not handled yet, until quiet.
    fn settle(&mut self) {
        loop {
            while self.handled < self.shop.log().len() {
                let event = self.shop.log()[self.handled].clone();
                self.handled += 1;
                if event.topic == Topic::Order {
                    let stock = decide_stock(&self.shop.view, &event).unwrap();
                    self.append(&stock.events);
                    if let Some(request) = stock.set_status_request() {
                        self.apply_status(StatusChange::from_set_status(&request).unwrap());
                    }
                }
                if let Some(change) = StatusChange::from_event(&event) {
                    self.apply_status(change);
                }
                if let Some(shipping) = decide_shipping_for_event(&self.shop.view, &event).unwrap()
                {
                    self.append(&[shipping]);
                }
                if event.topic != Topic::Mail
                    && let MailDecision::Send(mail) = decide_mail(&self.shop.view, &event).unwrap()
                {
                    let message_id = self.message_id();
                    let sent = decide_mail_sent(&message_id, &mail.send_request()).unwrap();
                    self.append(&[sent]);
                }
            }
            let before = self.shop.log().len();
            for change in std::mem::take(&mut self.waiting) {
                self.apply_status(change);
            }
            if self.shop.log().len() == before {
                return;
            }
        }
    }

    fn list(&self, kind: EntityKind) -> Vec<Value> {
        self.shop.view.entity_map(kind).into_values().collect()
    }

    fn ids(&self, kind: EntityKind) -> Vec<String> {
        self.shop.view.entity_map(kind).into_keys().collect()
    }
}

#[test]
fn the_reference_client_session() {
    let mut w = World::new();
    let customers: Vec<Value> = (0..10)
        .map(|i| json!({"name": format!("Customer{i}"), "email": format!("c{i}@server.com")}))
        .collect();
    w.command(EntityKind::Customer, CommandOp::Create, json!(customers));
    let products: Vec<Value> = (0..10)
        .map(|i| json!({"name": format!("Product{i}"), "price": 10 + i * 7}))
        .collect();
    w.command(EntityKind::Product, CommandOp::Create, json!(products));
    let product_ids = w.ids(EntityKind::Product);
    let inventories: Vec<Value> = product_ids
        .iter()
        .map(|p| json!({"product_id": p, "amount": 100}))
        .collect();
    w.command(EntityKind::Inventory, CommandOp::Create, json!(inventories));
    let customer_ids = w.ids(EntityKind::Customer);
    let carts: Vec<Value> = (0..10)
        .map(|i| {
            let picks: Vec<&String> = (0..=(i % 4))
                .map(|j| &product_ids[(i + j * 3) % 10])
                .collect();
            json!({"customer_id": customer_ids[i], "product_ids": picks})
        })
        .collect();
    w.command(EntityKind::Cart, CommandOp::Create, json!(carts));

    // test_e: update the second cart's first product.
    let mut cart = w.list(EntityKind::Cart)[1].clone();
    cart["product_ids"][0] = json!(product_ids[9]);
    assert_eq!(
        w.command(EntityKind::Cart, CommandOp::Update, cart.clone()),
        json!(true)
    );
    let stored =
        w.shop.view.entity_map(EntityKind::Cart)[cart["entity_id"].as_str().unwrap()].clone();
    assert_eq!(stored["product_ids"][0], json!(product_ids[9]));

    // test_f: one order per cart, in one batch.
    let orders: Vec<Value> = w
        .ids(EntityKind::Cart)
        .iter()
        .map(|c| json!({"cart_id": c}))
        .collect();
    w.command(EntityKind::Order, CommandOp::Create, json!(orders));
    assert_eq!(w.list(EntityKind::Order).len(), 10);
    for order in w.shop.view.all::<Order>() {
        assert_eq!(order.status, OrderStatus::InStock, "{}", order.entity_id);
    }
    let reserved: i64 = w.shop.view.all::<Inventory>().map(|i| 100 - i.amount).sum();
    let pieces: usize = w
        .list(EntityKind::Cart)
        .iter()
        .map(|c| c["product_ids"].as_array().unwrap().len())
        .sum();
    assert_eq!(reserved, pieces as i64);

    // test_g: delete the third order: its stock comes back.
    let third = w.list(EntityKind::Order)[2].clone();
    let third_cart =
        w.shop.view.entity_map(EntityKind::Cart)[third["cart_id"].as_str().unwrap()].clone();
    let third_customer = third_cart["customer_id"].as_str().unwrap().to_string();
    w.command(
        EntityKind::Order,
        CommandOp::Delete,
        json!({"entity_id": third["entity_id"]}),
    );
    let reserved_after: i64 = w.shop.view.all::<Inventory>().map(|i| 100 - i.amount).sum();
    assert_eq!(
        reserved_after,
        reserved - third_cart["product_ids"].as_array().unwrap().len() as i64
    );

    // test_h: delete that order's customer (their other things stay).
    w.command(
        EntityKind::Customer,
        CommandOp::Delete,
        json!({"entity_id": third_customer}),
    );

    // test_i: bill the first order with the sum of its cart's prices.
    let first = w.list(EntityKind::Order)[0].clone();
    let cart = w.shop.view.entity_map(EntityKind::Cart)[first["cart_id"].as_str().unwrap()].clone();
    let products = w.shop.view.entity_map(EntityKind::Product);
    let amount: f64 = cart["product_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| products[p.as_str().unwrap()]["price"].as_f64().unwrap())
        .sum();
    w.command(
        EntityKind::Billing,
        CommandOp::Create,
        json!({"order_id": first["entity_id"], "amount": amount}),
    );
    let first_id = first["entity_id"].as_str().unwrap();
    assert_eq!(
        w.shop.view.get::<Order>(first_id).unwrap().status,
        OrderStatus::Shipped
    );

    // test_j: unbilled orders.
    let s = EntitySnapshot::from_view(&w.shop.view);
    assert_eq!(
        query::unbilled_orders(s.map(EntityKind::Order), s.map(EntityKind::Billing)).len(),
        8
    );

    // test_k: confirm the (saga-made) shipping with a float timestamp.
    let mut shipping = w.list(EntityKind::Shipping)[0].clone();
    shipping["delivered"] = json!(1_700_000_000.25);
    assert_eq!(
        w.command(EntityKind::Shipping, CommandOp::Update, shipping),
        json!(true)
    );
    assert_eq!(
        w.shop.view.get::<Order>(first_id).unwrap().status,
        OrderStatus::Delivered
    );

    // test_l, test_m: unshipped and delivered.
    let s = EntitySnapshot::from_view(&w.shop.view);
    assert_eq!(
        query::unshipped_orders(s.map(EntityKind::Order), s.map(EntityKind::Shipping)).len(),
        8
    );
    assert_eq!(
        query::delivered_orders(s.map(EntityKind::Order), s.map(EntityKind::Shipping)).len(),
        1
    );

    // test_n: 10 welcomes, 10 please-pay, 1 good-bye, 1 payment, 1 shipped.
    let mails: Vec<_> = w
        .shop
        .log()
        .iter()
        .filter(|e| e.action == EventAction::MailSent)
        .collect();
    assert_eq!(mails.len(), 23);
    let starting = |text: &str| {
        mails
            .iter()
            .filter(|m| m.data["message"].as_str().unwrap().contains(text))
            .count()
    };
    assert_eq!(starting("Welcome to Ordershop."), 10);
    assert_eq!(starting("Please transfer"), 10);
    assert_eq!(starting("Good bye"), 1);
    assert_eq!(starting("We've just received"), 1);
    assert_eq!(starting("We've just shipped"), 1);

    // Replaying every saga over the whole history changes nothing.
    let stored = w.shop.log().len();
    w.handled = 0;
    w.settle();
    assert_eq!(w.shop.log().len(), stored);
}
