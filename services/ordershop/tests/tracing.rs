//! One trace per order flow (#13): `ordershop local --trace` records every
//! role's spans, and what one `POST /order` sets off — the queue call, the
//! order service, the event store, the stock saga, its verdict through the
//! queue and the order service again — is one trace whose spans form that
//! parent chain across six processes. `ordershop trace` prints it. And
//! the same spans reach an OTLP collector (a real OTLP/gRPC trace service,
//! run by the test) when the shop is given `OTEL_EXPORTER_OTLP_ENDPOINT`.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use ordershop_testkit::eventually_async;
use ordershop_trace::{SpanRecord, tree};
use serde_json::json;
use support::{DEADLINE, Shop};

/// `(span name, role)` from the stock saga's verdict being applied up to
/// the request that started it: each is the parent of the one before.
const CHAIN: [(&str, &str); 7] = [
    ("handle order-service.set_status", "order"),
    ("MessageQueue/Send", "message-queue"),
    ("handle order entity_created", "inventory"),
    ("EventStore/Publish", "event-store"),
    ("handle order-service.create_orders", "order"),
    ("MessageQueue/Call", "message-queue"),
    ("POST /order", "api-gateway"),
];

/// The chain above `span`, itself first, as `(name, role)`.
fn ancestry<'a>(spans: &'a [SpanRecord], span: &'a SpanRecord) -> Vec<(&'a str, &'a str)> {
    let mut chain = vec![(span.name.as_str(), span.service.as_str())];
    let mut parent = span.parent_span_id.as_str();
    while let Some(up) = spans
        .iter()
        .find(|s| !parent.is_empty() && s.span_id == parent)
    {
        chain.push((up.name.as_str(), up.service.as_str()));
        parent = up.parent_span_id.as_str();
    }
    chain
}

/// A fresh product, customer and cart, then `POST /order`: the new order's
/// id and the trace its answer names (`traceresponse`).
async fn traced_order(shop: &Shop) -> (String, String) {
    let (products, customers) = shop.seed(1, 5).await;
    let cart = shop
        .create_one(
            "cart",
            json!({"customer_id": customers[0], "product_ids": [products[0]]}),
        )
        .await;
    let response = reqwest::Client::new()
        .post(format!("{}/order", shop.url))
        .json(&json!({"cart_id": cart}))
        .send()
        .await
        .expect("POST /order");
    assert!(response.status().is_success(), "{}", response.status());
    let traceresponse = response
        .headers()
        .get(ordershop_trace::TRACERESPONSE)
        .and_then(|v| v.to_str().ok())
        .expect("a traced request names its trace in `traceresponse`")
        .to_owned();
    let trace_id = ordershop_trace::trace_id(&traceresponse)
        .expect("a W3C trace context")
        .to_owned();
    let order: serde_json::Value = response.json().await.expect("JSON");
    let order = order["result"][0]
        .as_str()
        .expect("the order's id")
        .to_owned();
    (order, trace_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_flow_is_one_trace_across_the_roles() {
    let shop = Shop::start_with_env(&[("ORDERSHOP_LOCAL_TRACE", "true")]).await;
    let (order, trace_id) = traced_order(&shop).await;
    shop.wait_status(&order, "IN_STOCK").await;

    // Spans reach the files within a second of ending; a parent ends after
    // its children, so the chain is complete, and the trace has one root,
    // only once everything is written.
    let traces = shop.data_dir.join("run").join("traces");
    let (chain, roots) = eventually_async("the flow's trace, complete", DEADLINE, || async {
        let spans = tree::read_dir(&traces).ok()?;
        let mine: Vec<SpanRecord> = spans
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        let verdict = mine
            .iter()
            .find(|s| s.name == CHAIN[0].0 && s.service == CHAIN[0].1)?;
        let chain: Vec<(String, String)> = ancestry(&mine, verdict)
            .into_iter()
            .map(|(n, r)| (n.to_owned(), r.to_owned()))
            .collect();
        // The order service's answer, finished by the queue on its
        // consume stream, is a child of the handling as a call's was.
        let handling = mine
            .iter()
            .find(|s| s.name == CHAIN[4].0 && s.service == CHAIN[4].1)?;
        mine.iter().find(|s| {
            s.name == "MessageQueue/Respond"
                && s.service == "message-queue"
                && s.parent_span_id == handling.span_id
        })?;
        let roots = tree::trace(&mine, &trace_id);
        (chain.len() >= CHAIN.len() && roots.len() == 1).then_some((chain, roots))
    })
    .await;
    let expected: Vec<(String, String)> = CHAIN
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect();
    assert_eq!(
        chain,
        expected,
        "the verdict's parent chain; the whole trace:\n{}",
        tree::render(&roots)
    );
    let root = &roots[0].span;
    assert_eq!(
        (root.name.as_str(), root.service.as_str()),
        ("POST /order", "api-gateway")
    );

    // The same, as `ordershop trace` prints it.
    let printed = Command::new(env!("CARGO_BIN_EXE_ordershop"))
        .args(["trace", &trace_id, "--data-dir"])
        .arg(&shop.data_dir)
        .output()
        .expect("running `ordershop trace`");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert!(text.starts_with("POST /order [api-gateway]"), "{text}");
    for (name, role) in CHAIN {
        assert!(
            text.contains(&format!("{name} [{role}]")),
            "{name} in:\n{text}"
        );
    }
    let listed = Command::new(env!("CARGO_BIN_EXE_ordershop"))
        .args(["trace", "--data-dir"])
        .arg(&shop.data_dir)
        .output()
        .expect("running `ordershop trace`");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&trace_id),
        "the latest traces list this one"
    );
}

/// `(service.name, span name, trace id in hex)` of every span received.
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// An OTLP/gRPC trace collector that keeps what it is sent.
#[derive(Clone, Default)]
struct Collector(Received);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().expect("collector lock");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                let trace_id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                received.push((service.clone(), span.name, trace_id));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_from_every_role_of_a_flow() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the collector");
    let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
    let collector = Collector::default();
    let received = collector.0.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let shop = Shop::start_with_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())]).await;
    let (_, trace_id) = traced_order(&shop).await;

    // Every role the order's creation and its stock verdict pass through.
    let wanted: BTreeSet<&str> = [
        "api-gateway",
        "message-queue",
        "order",
        "event-store",
        "inventory",
    ]
    .into();
    let services = eventually_async("the update's spans at the collector", DEADLINE, || async {
        let services: BTreeSet<String> = received
            .lock()
            .expect("collector lock")
            .iter()
            .filter(|(_, _, trace)| *trace == trace_id)
            .map(|(service, _, _)| service.clone())
            .collect();
        wanted
            .iter()
            .all(|w| services.contains(*w))
            .then_some(services)
    })
    .await;
    assert!(
        services.iter().all(|s| !s.is_empty()),
        "every span names its role: {services:?}"
    );
}
