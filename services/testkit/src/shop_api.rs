//! A running shop's REST API, driven over real HTTP, wherever the shop runs:
//! `ordershop local` in the service tests, a port-forward to the gateway's
//! Service in the cluster tests.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eventually_async;

/// How long a test waits for an eventual effect (a saga's status change, a
/// mail) before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The REST API of one shop. Helpers panic with the route and the reply on
/// anything unexpected: they are for tests.
#[derive(Debug, Clone)]
pub struct ShopApi {
    pub url: String,
    http: reqwest::Client,
    deadline: Duration,
}

impl ShopApi {
    /// The API at `url` (`http://host:port`, no trailing slash).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            // No pooled connections: tests share one shop across their own
            // runtimes, and a pooled connection belongs to the runtime that
            // opened it.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            deadline: DEADLINE,
        }
    }

    /// Waits up to `deadline` for eventual effects instead of [`DEADLINE`]
    /// (a cluster on a busy machine is slower than a local run).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Polls `/readyz` until it answers 200, for at most `within`.
    pub async fn wait_ready(&self, within: Duration) {
        let readyz = format!("{}/readyz", self.url);
        eventually_async("the shop to be ready", within, || async {
            let response = self.http.get(&readyz).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("body");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
        (status, value)
    }

    /// GET expecting 200 and `{"result": ...}`.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.request(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body["result"].clone()
    }

    /// Sync create, returning the new ids.
    pub async fn create(&self, singular: &str, body: Value) -> Vec<String> {
        let (status, reply) = self
            .request(Method::POST, &format!("/{singular}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "POST /{singular}: {reply}");
        serde_json::from_value(reply["result"].clone()).expect("a list of ids")
    }

    pub async fn create_one(&self, singular: &str, body: Value) -> String {
        self.create(singular, body).await.remove(0)
    }

    pub async fn put(&self, singular: &str, id: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, &format!("/{singular}/{id}"), Some(body))
            .await
    }

    pub async fn delete(&self, singular: &str, id: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, &format!("/{singular}/{id}"), None)
            .await
    }

    /// Polls GET /order/<id> until its status is `status`.
    pub async fn wait_status(&self, order_id: &str, status: &str) {
        let path = format!("/order/{order_id}");
        let what = format!("order {order_id} to be {status}");
        eventually_async(&what, self.deadline, || {
            let path = path.clone();
            async move { (self.get(&path).await["status"] == json!(status)).then_some(()) }
        })
        .await;
    }

    /// Seeds `n` products (price 10, 20, ...), one inventory each, and `n`
    /// customers; returns (product ids, customer ids).
    pub async fn seed(&self, n: usize, stock: i64) -> (Vec<String>, Vec<String>) {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let products: Vec<Value> = (0..n)
            .map(
                |i| json!({"name": format!("product {i} {tag}"), "price": 10.0 * (i as f64 + 1.0)}),
            )
            .collect();
        let product_ids = self.create("product", Value::Array(products)).await;
        let inventories: Vec<Value> = product_ids
            .iter()
            .map(|id| json!({"product_id": id, "amount": stock}))
            .collect();
        self.create("inventory", Value::Array(inventories)).await;
        let customers: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("customer {i}"), "email": format!("c{i}-{tag}@example.com")}))
            .collect();
        let customer_ids = self.create("customer", Value::Array(customers)).await;
        (product_ids, customer_ids)
    }

    /// A fresh product (with `stock`) and customer, and an order of one
    /// unit that the inventory saga has reserved: (product, customer, order).
    pub async fn order_in_stock(&self, stock: i64) -> (String, String, String) {
        let (mut products, mut customers) = self.seed(1, stock).await;
        let (product, customer) = (products.remove(0), customers.remove(0));
        let cart = self
            .create_one(
                "cart",
                json!({"customer_id": customer, "product_ids": [product]}),
            )
            .await;
        let order = self.create_one("order", json!({"cart_id": cart})).await;
        self.wait_status(&order, "IN_STOCK").await;
        (product, customer, order)
    }

    pub async fn stock_of(&self, product_id: &str) -> i64 {
        let inventories = self.get("/inventories").await;
        inventories
            .as_array()
            .expect("a list")
            .iter()
            .find(|i| i["product_id"] == json!(product_id))
            .and_then(|i| i["amount"].as_i64())
            .expect("an inventory for the product")
    }
}
