//! The live UI in Debian's headless Chromium, driven over the DevTools
//! protocol: open `/`, create a customer through the REST API, and see the
//! event appear in the events pane.

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use ordershop_testkit::eventually_async;
use serde_json::{Value, json};
use support::{DEADLINE, Shop};
use tokio_tungstenite::{connect_async, tungstenite::Message};

/// Flags that keep Chromium off the network (this machine has none) and
/// quiet, as the machine notes prescribe.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
];

struct Browser {
    child: Child,
    _profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

/// `ORDERSHOP_CHROMIUM`, else the first of Debian's `chromium`, Ubuntu's
/// `chromium-browser` or `google-chrome` (GitHub's runners) on PATH.
fn browser_binary() -> String {
    if let Ok(path) = std::env::var("ORDERSHOP_CHROMIUM") {
        return path;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            path.split(':')
                .any(|dir| std::path::Path::new(dir).join(name).is_file())
        })
        .unwrap_or("chromium")
        .to_owned()
}

/// Starts Chromium and returns it with its DevTools HTTP address.
fn launch() -> (Browser, String) {
    let profile = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chromium-{}", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new(browser_binary())
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium is required for the UI test: apt-get install -y chromium");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let ws = loop {
        let line = lines
            .next()
            .expect("chromium exited before printing its DevTools address")
            .expect("reading chromium's stderr");
        if let Some(rest) = line.split("DevTools listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    // Keep draining so Chromium never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let http = ws
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    (
        Browser {
            child,
            _profile: profile,
        },
        format!("http://{http}"),
    )
}

/// A minimal DevTools client: send a command, wait for its reply.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .expect("send");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("DevTools answers within 10 s")
                .expect("DevTools socket open")
                .expect("DevTools message");
            let Message::Text(text) = message else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).expect("JSON");
            if reply["id"] == json!(id) {
                return reply["result"].clone();
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_create_appears_live_in_the_events_pane() {
    let shop = Shop::shared().await;
    live_page_shows_a_create(&shop.url, None).await;
}

/// With API tokens, the page sends its token on every fetch and as the live
/// push's subprotocol (set here before the page's scripts run, as a user
/// would have answered its prompt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_api_tokens_the_page_authenticates_its_fetches_and_its_live_push() {
    let shop = Shop::start_with_env(&[("ORDERSHOP_API_TOKENS", "ui-token-1")]).await;
    let (status, _) = shop.request(reqwest::Method::GET, "/customers", None).await;
    assert_eq!(status, 401, "the API is closed without the token");
    live_page_shows_a_create(&shop.url, Some("ui-token-1")).await;
}

/// Opens the live UI, waits for its push to connect, creates a customer over
/// REST and waits for the event in the events pane and the state pane.
async fn live_page_shows_a_create(url: &str, token: Option<&str>) {
    let (_browser, devtools) = launch();
    let targets: Value = eventually_async("DevTools targets", DEADLINE, || async {
        reqwest::get(format!("{devtools}/json/list"))
            .await
            .ok()?
            .json()
            .await
            .ok()
    })
    .await;
    let page_ws = targets
        .as_array()
        .and_then(|t| t.iter().find(|t| t["type"] == json!("page")))
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .expect("a page target")
        .to_owned();
    let (socket, _) = connect_async(page_ws).await.expect("DevTools page socket");
    let mut page = Page { socket, next_id: 0 };
    if let Some(token) = token {
        // The tab's sessionStorage of the shop's origin, as the page's
        // prompt would have filled it: set from a page of the same origin
        // that asks for nothing.
        page.command("Page.navigate", json!({"url": format!("{url}/healthz")}))
            .await;
        let stored = format!(
            "location.pathname === '/healthz' \
             && (sessionStorage.setItem('ordershop.token', '{token}'), sessionStorage.getItem('ordershop.token'))"
        );
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while page.eval(&stored).await != json!(token) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the token was never stored for the tab"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    page.command("Page.navigate", json!({"url": format!("{url}/")}))
        .await;

    // The page's WebSocket is live once the status badge says so.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while page
        .eval("document.querySelector('#status')?.className ?? ''")
        .await
        != json!("status connected")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the UI never connected its live push"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let name = format!("UI test {}", uuid::Uuid::new_v4().simple());
    let mut create = reqwest::Client::new()
        .post(format!("{url}/customer"))
        .json(&json!({"name": name, "email": "ui@example.com"}));
    if let Some(token) = token {
        create = create.bearer_auth(token);
    }
    let created = create.send().await.expect("POST /customer");
    assert!(created.status().is_success(), "{}", created.status());
    let probe = format!("document.querySelector('#events').innerText.includes('{name}')");
    while page.eval(&probe).await != json!(true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the customer_created event never appeared in #events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The entry names the action as the contract's push message does.
    let entry = page
        .eval(&format!(
            "[...document.querySelector('#events').children].map(e => e.innerText).find(t => t.includes('{name}')) ?? ''"
        ))
        .await;
    assert!(
        entry
            .as_str()
            .unwrap_or_default()
            .contains("customer_created"),
        "{entry}"
    );

    // The state pane loaded the first page of every list (the report with
    // a limit), the customers counted.
    let loaded = "document.querySelector('#state')?.dataset.state === 'loaded' \
        && document.querySelectorAll('#state .collection').length === 8 \
        && !['', '0'].includes(document.querySelector('.collection[data-name=customers] .count')?.textContent ?? '')";
    while page.eval(loaded).await != json!(true) {
        let meta = page
            .eval("document.querySelector('#state-meta')?.textContent")
            .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the state pane never showed the customers: {meta}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
