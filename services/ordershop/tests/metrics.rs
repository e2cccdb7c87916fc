//! Every role of `ordershop local` serves Prometheus metrics on its gRPC
//! port (`GET /metrics`, HTTP/1.1), and they follow what the shop does: an
//! order flow shows up as HTTP requests, gRPC calls, appends, queue states,
//! consumer-group lag, handled events and their lag. Every metric the
//! chart's Grafana dashboard queries exists.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ordershop_testkit::eventually_async;
use ordershop_topology::Role;
use serde_json::json;
use support::{DEADLINE, Shop};

/// One scrape: `name{labels}` → value, and the families it declares.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<String, f64>,
    families: BTreeSet<String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if let Some(family) = line.strip_prefix("# TYPE ") {
                if let Some(name) = family.split_whitespace().next() {
                    scrape.families.insert(name.to_owned());
                }
            } else if !line.starts_with('#')
                && let Some((series, value)) = line.rsplit_once(' ')
                && let Ok(value) = value.parse::<f64>()
            {
                scrape.samples.insert(series.to_owned(), value);
            }
        }
        scrape
    }

    /// The value of `name` whose labels include every one of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.iter().find_map(|(series, value)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then_some(*value)
        })
    }
}

async fn scrape(shop: &Shop, role: Role) -> Scrape {
    let addr_file = shop
        .data_dir
        .join("run")
        .join(format!("{}.grpc.addr", role.slug()));
    let addr = std::fs::read_to_string(&addr_file)
        .unwrap_or_else(|e| panic!("{}: {e}", addr_file.display()));
    let response = reqwest::get(format!("http://{}/metrics", addr.trim()))
        .await
        .unwrap_or_else(|e| panic!("GET /metrics of {}: {e}", role.slug()));
    assert!(
        response.status().is_success(),
        "{}: {}",
        role.slug(),
        response.status()
    );
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    Scrape::parse(&response.text().await.unwrap())
}

/// Polls `role`'s metrics until `check` finds what it looks for.
async fn eventually_metric(shop: &Shop, role: Role, what: &str, check: impl Fn(&Scrape) -> bool) {
    eventually_async(what, DEADLINE, || async {
        let scrape = scrape(shop, role).await;
        check(&scrape).then_some(())
    })
    .await;
}

fn at_least_one(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> bool {
    scrape.value(name, labels).is_some_and(|v| v >= 1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_serves_metrics_that_follow_an_order_flow() {
    let shop = Shop::start().await;
    // Returns once the stock saga has reserved the order.
    shop.order_in_stock(3).await;
    // A refusal, to be counted by its status.
    let (status, _) = shop
        .request(reqwest::Method::POST, "/customers", Some(json!({})))
        .await;
    assert_eq!(status, 400);

    eventually_metric(
        &shop,
        Role::ApiGateway,
        "the gateway's request counts",
        |s| {
            at_least_one(
                s,
                "ordershop_http_requests_total",
                &[("route", "/order"), ("method", "POST"), ("status", "200")],
            ) && at_least_one(
                s,
                "ordershop_http_requests_total",
                &[("route", "/customers"), ("status", "400")],
            ) && at_least_one(
                s,
                "ordershop_http_request_duration_seconds_count",
                &[("route", "/order/{id}")],
            )
        },
    )
    .await;
    eventually_metric(
        &shop,
        Role::EventStore,
        "the event store's appends and lag",
        |s| {
            at_least_one(s, "ordershop_events_appended_total", &[("topic", "order")])
                && at_least_one(
                    s,
                    "ordershop_append_duration_seconds_count",
                    &[("topic", "order")],
                )
                && at_least_one(
                    s,
                    "ordershop_grpc_server_handled_total",
                    &[
                        ("method", "/ordershop.eventstore.v1.EventStore/Publish"),
                        ("code", "Ok"),
                    ],
                )
                && s.value(
                    "ordershop_stream_group_lag",
                    &[("topic", "order"), ("group", "inventory-service")],
                )
                .is_some()
                && s.value("ordershop_stream_dead_letters", &[("topic", "billing")])
                    .is_some()
        },
    )
    .await;
    eventually_metric(
        &shop,
        Role::MessageQueue,
        "the queue's channel states",
        |s| {
            s.value(
                "ordershop_queue_messages",
                &[
                    ("channel", "order-service.create_orders"),
                    ("state", "waiting"),
                ],
            )
            .is_some()
                && s.value(
                    "ordershop_queue_messages",
                    &[("channel", "mail-service.send"), ("state", "dead")],
                )
                .is_some()
                && at_least_one(s, "ordershop_grpc_server_handled_total", &[("code", "Ok")])
        },
    )
    .await;
    eventually_metric(
        &shop,
        Role::Inventory,
        "the stock saga's handled events",
        |s| {
            at_least_one(
                s,
                "ordershop_events_handled_total",
                &[
                    ("role", "inventory"),
                    ("topic", "order"),
                    ("outcome", "done"),
                ],
            ) && at_least_one(
                s,
                "ordershop_event_handling_lag_seconds_count",
                &[("role", "inventory"), ("topic", "order")],
            )
        },
    )
    .await;
    eventually_metric(
        &shop,
        Role::ReadModel,
        "the read model's applied events",
        |s| {
            at_least_one(
                s,
                "ordershop_events_handled_total",
                &[("role", "read-model"), ("topic", "order")],
            ) && at_least_one(
                s,
                "ordershop_event_handling_lag_seconds_count",
                &[("role", "read-model"), ("topic", "order")],
            )
        },
    )
    .await;

    // Every role answers, and the dashboard asks only for families that exist.
    let mut families = BTreeSet::new();
    for role in Role::ALL {
        families.extend(scrape(&shop, role).await.families);
    }
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/ordershop-operator/dashboards/ordershop.json"
    ))
    .expect("the chart's dashboard");
    let queried: BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("ordershop_"))
        .collect();
    assert!(queried.len() >= 10, "{queried:?}");
    for name in queried {
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            families.contains(family),
            "the dashboard queries {name}, which no role exports"
        );
    }
}
