//! `/openapi.json` describes every route of the contract, its references
//! resolve, and every operation it documents is routed.

mod support;

use std::{collections::BTreeSet, time::Duration};

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header::CONTENT_TYPE},
};
use futures::future::join_all;
use ordershop_gateway::GatewayConfig;
use serde_json::Value;
use support::{Infra, gateway, get, send};
use tower::ServiceExt;

const ENTITIES: [(&str, &str); 7] = [
    ("customer", "customers"),
    ("product", "products"),
    ("inventory", "inventories"),
    ("cart", "carts"),
    ("order", "orders"),
    ("billing", "billings"),
    ("shipping", "shippings"),
];

/// The routes of the contract (and of the issue), written out by hand.
fn contract_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (singular, plural) in ENTITIES {
        for (method, path) in [
            ("get", format!("/{plural}")),
            ("post", format!("/{plural}")),
            ("post", format!("/{singular}")),
            ("get", format!("/{singular}/{{id}}")),
            ("put", format!("/{singular}/{{id}}")),
            ("delete", format!("/{singular}/{{id}}")),
        ] {
            routes.insert((method.to_owned(), path));
        }
    }
    for path in [
        "/",
        "/ws",
        "/orders/unbilled",
        "/orders/unshipped",
        "/orders/delivered",
        "/mails/sent",
        "/report",
        "/report/orders",
        "/openapi.json",
        "/healthz",
        "/readyz",
    ] {
        routes.insert(("get".to_owned(), path.to_owned()));
    }
    routes
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                routes.insert((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target);
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_every_route_and_its_references_resolve() {
    let app = gateway(support::absent_clients(), GatewayConfig::default());
    let (status, doc) = send(&app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string());

    let documented = documented(&doc);
    let missing: Vec<_> = contract_routes().difference(&documented).cloned().collect();
    assert!(missing.is_empty(), "undocumented routes: {missing:?}");

    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 50, "{}", found.len());
    for target in found {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }

    let mut ids = BTreeSet::new();
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (key, operation) in item.as_object().unwrap() {
            if key == "parameters" {
                continue;
            }
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(
                operation["responses"]["200"].is_object()
                    || operation["responses"]["101"].is_object(),
                "{id}"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let infra = Infra::start().await;
    // Nobody answers on the queue: calls end in 504 quickly, which is fine;
    // what must never come back is the router's "no route" or 405.
    let config = GatewayConfig {
        call_timeout: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let app = gateway(infra.clients("gateway-test"), config);
    let (_, doc) = send(&app, get("/openapi.json")).await;
    let answers = join_all(documented(&doc).into_iter().map(|(method, path)| {
        let app = app.clone();
        async move {
            let uri = path.replace("{id}", "x1");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(if method == "get" { "" } else { "{}" }))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (
                method,
                path,
                status,
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    }))
    .await;
    assert!(answers.len() > 50, "{}", answers.len());
    for (method, path, status, body) in answers {
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert!(
            !body.contains("no route for"),
            "{method} {path}: {status} {body}"
        );
    }
}
