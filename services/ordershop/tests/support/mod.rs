//! The shop as `ordershop local` starts it, driven over real HTTP.
#![allow(dead_code, unreachable_pub)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use ordershop_testkit::{eventually_async, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running shop: the `ordershop local` supervisor and its children.
pub struct Shop {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
}

impl Shop {
    /// Starts a private shop: its own Redis (or `REDIS_URL`), free ports,
    /// short leases and claim timeouts so crash recovery is quick.
    pub async fn start() -> Shop {
        let http_port = free_port();
        let data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("shop-{}", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_ordershop"));
        command
            .arg("local")
            .arg("--watch-parent")
            .args(["--base-port", "0"])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
            // Short leases so a killed service's message comes back quickly; a
            // claim timeout well above the slowest saga backlog, so a busy
            // consumer's prefetched events are not taken from it.
            .args(["--lease-ms", "1500", "--claim-idle-ms", "5000"])
            .arg("--data-dir")
            .arg(&data_dir);
        match std::env::var("REDIS_URL") {
            Ok(url) => {
                command.args(["--redis-url", &url]);
            }
            Err(_) => {
                command.args(["--redis-port", &free_port().to_string()]);
            }
        }
        let child = command
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("starting `ordershop local`");
        let shop = Shop {
            child,
            url: format!("http://127.0.0.1:{http_port}"),
            data_dir,
            // No pooled connections: tests share one shop across their own
            // runtimes, and a pooled connection belongs to the runtime that
            // opened it.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client"),
        };
        let probe = shop.http.clone();
        let readyz = format!("{}/readyz", shop.url);
        eventually_async("the shop to be ready", Duration::from_secs(90), || {
            let probe = probe.clone();
            let readyz = readyz.clone();
            async move {
                let response = probe.get(&readyz).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        shop
    }

    /// One shop shared by the tests of a binary (each uses its own entities).
    pub async fn shared() -> &'static Shop {
        static SHOP: OnceLock<Shop> = OnceLock::new();
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _guard = STARTING.lock().await;
        if let Some(shop) = SHOP.get() {
            return shop;
        }
        let shop = Shop::start().await;
        SHOP.get_or_init(|| shop)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
        (status, value)
    }

    /// GET expecting 200 and `{"result": ...}`.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.request(reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body["result"].clone()
    }

    /// Sync create, returning the new ids.
    pub async fn create(&self, singular: &str, body: Value) -> Vec<String> {
        let (status, reply) = self
            .request(reqwest::Method::POST, &format!("/{singular}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "POST /{singular}: {reply}");
        serde_json::from_value(reply["result"].clone()).expect("a list of ids")
    }

    pub async fn create_one(&self, singular: &str, body: Value) -> String {
        self.create(singular, body).await.remove(0)
    }

    pub async fn put(&self, singular: &str, id: &str, body: Value) -> (StatusCode, Value) {
        self.request(
            reqwest::Method::PUT,
            &format!("/{singular}/{id}"),
            Some(body),
        )
        .await
    }

    pub async fn delete(&self, singular: &str, id: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::DELETE, &format!("/{singular}/{id}"), None)
            .await
    }

    /// Polls GET /order/<id> until its status is `status`.
    pub async fn wait_status(&self, order_id: &str, status: &str) {
        let path = format!("/order/{order_id}");
        let what = format!("order {order_id} to be {status}");
        eventually_async(&what, DEADLINE, || {
            let path = path.clone();
            async move { (self.get(&path).await["status"] == json!(status)).then_some(()) }
        })
        .await;
    }

    pub fn pid_of(&self, role: &str) -> i32 {
        let file = self.data_dir.join("run").join(format!("{role}.pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    /// `kill -9` one service; the supervisor restarts it.
    pub fn kill_role(&self, role: &str) -> i32 {
        let pid = self.pid_of(role);
        nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");
        pid
    }

    /// Waits until the supervisor has started `role` again.
    pub async fn wait_restarted(&self, role: &str, old_pid: i32) {
        eventually_async(
            &format!("{role} to be restarted"),
            DEADLINE,
            || async move {
                let file = self.data_dir.join("run").join(format!("{role}.pid"));
                let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
                (pid != old_pid).then_some(())
            },
        )
        .await;
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Seeds `n` products (price 10, 20, ...), one inventory each, and `n`
/// customers; returns (product ids, customer ids).
pub async fn seed(shop: &Shop, n: usize, stock: i64) -> (Vec<String>, Vec<String>) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let products: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("product {i} {tag}"), "price": 10.0 * (i as f64 + 1.0)}))
        .collect();
    let product_ids = shop.create("product", Value::Array(products)).await;
    let inventories: Vec<Value> = product_ids
        .iter()
        .map(|id| json!({"product_id": id, "amount": stock}))
        .collect();
    shop.create("inventory", Value::Array(inventories)).await;
    let customers: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("customer {i}"), "email": format!("c{i}-{tag}@example.com")}))
        .collect();
    let customer_ids = shop.create("customer", Value::Array(customers)).await;
    (product_ids, customer_ids)
}

pub async fn stock_of(shop: &Shop, product_id: &str) -> i64 {
    let inventories = shop.get("/inventories").await;
    inventories
        .as_array()
        .expect("a list")
        .iter()
        .find(|i| i["product_id"] == json!(product_id))
        .and_then(|i| i["amount"].as_i64())
        .expect("an inventory for the product")
}
