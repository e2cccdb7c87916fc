//! OrderShop client flows through a port-forward to the gateway: needs a
//! cluster that runs the containers (kind in GitHub Actions), so it is
//! ignored by default. Run with
//! `ORDERSHOP_E2E_REAL_PODS=1 cargo test -p ordershop-e2e -- --include-ignored`;
//! `ORDERSHOP_E2E_IMAGE` names the OrderShop image loaded into the cluster
//! (default `ghcr.io/ordershop/ordershop:e2e`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::PostParams;
use ordershop_e2e::namespace::TestNamespace;
use ordershop_e2e::objects::{condition_true, shops};
use ordershop_e2e::operator::{Operator, Options};
use ordershop_e2e::{cluster, eventually_async, install, real_pods, volumes};
use ordershop_operator::crd::{OrderShop, OrderShopSpec, PullPolicy};
use serde_json::{Value, json};

/// `kubectl port-forward`, stopped on drop.
struct PortForward(Child);

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method.clone(), &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: body is not JSON: {e}"));
    assert!(
        status.is_success() && value.get("error").is_none(),
        "{method} {url}: {status} {value}"
    );
    value["result"].clone()
}

async fn create(http: &reqwest::Client, base: &str, singular: &str, body: Value) -> String {
    let ids = call(
        http,
        reqwest::Method::POST,
        format!("{base}/{singular}"),
        Some(body),
    )
    .await;
    ids[0]
        .as_str()
        .unwrap_or_else(|| panic!("POST /{singular}: no id in {ids}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a cluster that runs containers (kind): ORDERSHOP_E2E_REAL_PODS=1 cargo test -p ordershop-e2e -- --include-ignored"]
async fn client_flows_through_the_gateway() {
    assert!(
        real_pods(),
        "this scenario needs real pods: set ORDERSHOP_E2E_REAL_PODS=1 on a cluster that runs containers (kind)"
    );
    let client = cluster::connect().await;
    install::chart();
    let mut ns = TestNamespace::create(&client, "real").await;
    volumes::provide_redis_volume(&client, &mut ns, "shop", "1Gi").await;
    let _operator = Operator::start(Options::for_namespace(&ns.name));

    let image = std::env::var("ORDERSHOP_E2E_IMAGE")
        .unwrap_or_else(|_| "ghcr.io/ordershop/ordershop:e2e".into());
    let (repository, tag) = image
        .rsplit_once(':')
        .expect("ORDERSHOP_E2E_IMAGE is repository:tag");
    let mut spec = OrderShopSpec::default();
    spec.image.repository = repository.into();
    spec.image.tag = Some(tag.into());
    // `kind load` puts the image on the node; never pull it.
    spec.image.pull_policy = PullPolicy::Never;
    spec.log.format = ordershop_operator::crd::LogFormat::Text;
    shops(&client, &ns.name)
        .create(&PostParams::default(), &OrderShop::new("shop", spec))
        .await
        .expect("creating the OrderShop");
    let api = shops(&client, &ns.name);
    eventually_async(
        "OrderShop Ready with real pods",
        Duration::from_secs(300),
        || {
            let api = api.clone();
            async move {
                api.get("shop")
                    .await
                    .ok()
                    .filter(|s| condition_true(s, "Ready"))
                    .map(|_| ())
            }
        },
    )
    .await;

    let port = ordershop_testkit::free_port();
    let _forward = PortForward(
        Command::new("kubectl")
            .args([
                "port-forward",
                "-n",
                &ns.name,
                "svc/shop-api-gateway",
                &format!("{port}:80"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kubectl port-forward"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    eventually_async(
        "gateway /readyz through the port-forward",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let url = format!("{base}/readyz");
            async move {
                http.get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        },
    )
    .await;

    // The order saga: customer, product with stock, cart, order → IN_STOCK.
    let customer = create(
        &http,
        &base,
        "customer",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let read = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/customer/{customer}"),
        None,
    )
    .await;
    assert_eq!(
        read["name"], "Ada",
        "a sync write is readable at once: {read}"
    );
    let product = create(
        &http,
        &base,
        "product",
        json!({"name": "Lamp", "price": 12.5}),
    )
    .await;
    create(
        &http,
        &base,
        "inventory",
        json!({"product_id": product, "amount": 3}),
    )
    .await;
    let cart = create(
        &http,
        &base,
        "cart",
        json!({"customer_id": customer, "product_ids": [product, product]}),
    )
    .await;
    let order = create(&http, &base, "order", json!({"cart_id": cart})).await;
    eventually_async("order reaches IN_STOCK", Duration::from_secs(60), || {
        let http = http.clone();
        let url = format!("{base}/order/{order}");
        async move {
            let order = call(&http, reqwest::Method::GET, url, None).await;
            (order["status"] == "IN_STOCK").then_some(())
        }
    })
    .await;
}
