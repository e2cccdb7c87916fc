//! The REST API against real Redis, event store and queue servers, with a
//! fake domain behind the queue: envelopes, status codes, read-your-writes
//! heads, async creates.

mod support;

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode, header::CONTENT_TYPE},
};
use ordershop_gateway::GatewayConfig;
use ordershop_testkit::eventually_async;
use serde_json::{Value, json};
use support::{FakeDomain, Infra, InfraExt, absent_clients, gateway, get, json_request, send};
use tower::ServiceExt;

/// A read-model reply of one page, the last.
fn page(items: Value) -> Value {
    let total = items.as_array().map(Vec::len);
    json!({"result": {"items": items, "next": null, "total": total}})
}

fn quick() -> GatewayConfig {
    GatewayConfig {
        call_timeout: Duration::from_millis(500),
        ready_timeout: Duration::from_millis(500),
        ..GatewayConfig::default()
    }
}

#[tokio::test]
async fn reads_unwrap_results_and_carry_the_heads_as_after() {
    let infra = Infra::start().await;
    let head = infra
        .publish(
            "customer",
            "entity_created",
            json!({"entity_id": "c1", "name": "Ann", "email": "a@b.c"}),
        )
        .await;
    let mut domain = FakeDomain::start(
        &infra,
        &["read-model.get_entities", "read-model.get_entity"],
        |channel, _| match channel {
            "read-model.get_entities" => {
                page(json!([{"entity_id": "c1", "name": "Ann", "email": "a@b.c"}]))
            }
            _ => json!({"result": null}),
        },
    );
    let app = gateway(infra.clients("gateway-test"), quick());

    let (status, body) = send(&app, get("/customers")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"result": [{"entity_id": "c1", "name": "Ann", "email": "a@b.c"}]})
    );
    let request = domain.next().await;
    assert_eq!(request.channel, "read-model.get_entities");
    assert_eq!(
        request.payload,
        json!({"name": "customer", "after": {"customer": head}, "page": {"limit": 1000, "cursor": null}})
    );

    // Unknown ids are `{"result": null}` with 200: clients rely on it.
    let (status, body) = send(&app, get("/customer/nobody")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": null})));
    let request = domain.next().await;
    assert_eq!(
        request.payload,
        json!({"name": "customer", "id": "nobody", "after": {"customer": head}})
    );
}

#[tokio::test]
async fn order_queries_wait_for_every_topic_they_read() {
    let infra = Infra::start().await;
    let order_head = infra
        .publish(
            "order",
            "entity_created",
            json!({"entity_id": "o1", "cart_id": "k1", "status": "CREATED"}),
        )
        .await;
    let mut domain = FakeDomain::start(
        &infra,
        &[
            "read-model.get_unbilled_orders",
            "read-model.get_unshipped_orders",
            "read-model.get_delivered_orders",
            "read-model.get_mails",
        ],
        |_, _| page(json!([{"entity_id": "o1", "cart_id": "k1", "status": "CREATED"}])),
    );
    let app = gateway(infra.clients("gateway-test"), quick());
    let cases = [
        (
            "/orders/unbilled",
            "get_unbilled_orders",
            json!({"order": order_head, "billing": "0-0"}),
        ),
        (
            "/orders/unshipped",
            "get_unshipped_orders",
            json!({"order": order_head, "shipping": "0-0"}),
        ),
        (
            "/orders/delivered",
            "get_delivered_orders",
            json!({"order": order_head, "shipping": "0-0"}),
        ),
        ("/mails/sent", "get_mails", json!({"mail": "0-0"})),
    ];
    for (path, function, after) in cases {
        let (status, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.get("result").is_some(), "{path}: {body}");
        let request = domain.next().await;
        assert_eq!(request.channel, format!("read-model.{function}"));
        assert_eq!(
            request.payload,
            json!({"after": after, "page": {"limit": 1000, "cursor": null}}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn sync_writes_go_to_the_owning_service_and_answer_its_result() {
    let infra = Infra::start().await;
    let mut domain = FakeDomain::start(
        &infra,
        &[
            "cart-service.create_carts",
            "cart-service.update_cart",
            "cart-service.delete_cart",
        ],
        |channel, _| match channel {
            "cart-service.create_carts" => {
                json!({"result": ["k1", "k2"], "positions": {"cart": "5-0"}})
            }
            _ => json!({"result": true, "positions": {}}),
        },
    );
    let app = gateway(infra.clients("gateway-test"), quick());

    let carts = json!([
        {"customer_id": "c1", "product_ids": ["p1"]},
        {"customer_id": "c2", "product_ids": ["p1", "p1"]},
    ]);
    let (status, body) = send(&app, json_request("POST", "/cart", &carts)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"result": ["k1", "k2"]}))
    );
    let request = domain.next().await;
    assert_eq!(request.channel, "cart-service.create_carts");
    assert_eq!(request.payload, carts);

    let cart = json!({"customer_id": "c1", "product_ids": ["p2"]});
    let (status, body) = send(&app, json_request("PUT", "/cart/k1", &cart)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": true})));
    let request = domain.next().await;
    assert_eq!(request.channel, "cart-service.update_cart");
    assert_eq!(
        request.payload,
        json!({"entity_id": "k1", "customer_id": "c1", "product_ids": ["p2"]})
    );

    let delete = Request::delete("/cart/k2").body(Body::empty()).unwrap();
    let (status, body) = send(&app, delete).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": true})));
    let request = domain.next().await;
    assert_eq!(request.channel, "cart-service.delete_cart");
    assert_eq!(request.payload, json!({"entity_id": "k2"}));

    // A body naming another entity than the URL is refused before the queue.
    let other = json!({"entity_id": "k9", "customer_id": "c1", "product_ids": []});
    let (status, body) = send(&app, json_request("PUT", "/cart/k1", &other)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn refusals_map_to_statuses_with_the_service_text() {
    let infra = Infra::start().await;
    let _domain = FakeDomain::start(&infra, &["order-service.create_orders"], |_, payload| {
        let kind = payload["kind"].as_str().unwrap().to_owned();
        json!({"error": format!("refused as {kind}"), "kind": kind})
    });
    let app = gateway(infra.clients("gateway-test"), quick());
    let cases = [
        ("invalid", StatusCode::BAD_REQUEST),
        ("not_found", StatusCode::NOT_FOUND),
        ("conflict", StatusCode::CONFLICT),
        ("internal", StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for (kind, expected) in cases {
        let (status, body) = send(
            &app,
            json_request("POST", "/order", &json!({"cart_id": "k1", "kind": kind})),
        )
        .await;
        assert_eq!(status, expected, "{kind}");
        assert_eq!(body, json!({"error": format!("refused as {kind}")}));
    }
}

#[tokio::test]
async fn no_reply_within_the_call_timeout_is_504() {
    let infra = Infra::start().await;
    // Nobody serves the channels: the calls wait out the timeout.
    let app = gateway(infra.clients("gateway-test"), quick());
    let (status, body) = send(
        &app,
        json_request("POST", "/product", &json!({"name": "x", "price": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("product-service.create_products"),
        "{body}"
    );
    let (status, body) = send(&app, get("/products")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
}

#[tokio::test]
async fn requests_beyond_the_limit_are_503_and_slow_ones_408() {
    let infra = Infra::start().await;
    // Nobody serves the channels: a call holds its permit for 5 s.
    let config = GatewayConfig {
        call_timeout: Duration::from_secs(5),
        max_in_flight: 1,
        ..quick()
    };
    let app = gateway(infra.clients("gateway-test"), config);
    let waiting = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, get("/product/p1")).await })
    };
    // Once the first request holds the only permit, the next is refused.
    let busy = eventually_async(
        "a request refused as busy",
        Duration::from_secs(4),
        || async {
            // The document answers at once while the permit is free.
            let response = app.clone().oneshot(get("/openapi.json")).await.unwrap();
            (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(response)
        },
    )
    .await;
    assert_eq!(busy.headers()["retry-after"], "1");
    // The probes answer whatever the load.
    let (status, _) = send(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    waiting.abort();

    let config = GatewayConfig {
        call_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_millis(200),
        ..quick()
    };
    let app = gateway(infra.clients("gateway-test"), config);
    let (status, body) = send(&app, get("/product/p1")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("200ms"), "{body}");
}

#[tokio::test]
async fn api_tokens_guard_the_api_and_the_live_push_but_not_the_probes_and_the_page() {
    let config = GatewayConfig {
        api_tokens: vec!["s3cret".to_owned(), "next-one".to_owned()],
        ..quick()
    };
    let app = gateway(absent_clients(), config);
    let with = |path: &str, authorization: Option<&str>| {
        let mut request = Request::builder().uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.body(Body::empty()).unwrap()
    };
    for authorization in [None, Some("Bearer wrong"), Some("Basic s3cret")] {
        let response = app
            .clone()
            .oneshot(with("/customers", authorization))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"ordershop\""
        );
    }
    // Either token passes (the absent event store answers 503 then).
    for token in ["s3cret", "next-one"] {
        let (status, body) = send(&app, with("/customers", Some(&format!("Bearer {token}")))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    for open in ["/healthz", "/", "/openapi.json"] {
        let response = app.clone().oneshot(with(open, None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{open}");
    }
    let (_, document) = send(&app, with("/openapi.json", None)).await;
    assert_eq!(document["security"], json!([{"bearer": []}]));
    assert_eq!(document["paths"]["/healthz"]["get"]["security"], json!([]));
    assert!(document["paths"]["/customers"]["get"]["responses"]["401"].is_object());

    // The live push: the token as the second subprotocol.
    let handshake = |protocols: Option<&str>| {
        let mut request = Request::builder()
            .uri("/ws")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(protocols) = protocols {
            request = request.header("sec-websocket-protocol", protocols);
        }
        request.body(Body::empty()).unwrap()
    };
    let (status, _) = send(&app, handshake(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, handshake(Some("ordershop.bearer, wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = send(&app, handshake(Some("ordershop.bearer, s3cret"))).await;
    assert_ne!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Without tokens the document names no security.
    let open = gateway(absent_clients(), quick());
    let (_, document) = send(&open, with("/openapi.json", None)).await;
    assert!(document.get("security").is_none(), "{document}");
}

#[tokio::test]
async fn async_creates_answer_the_message_id_at_once() {
    let infra = Infra::start().await;
    let app = gateway(infra.clients("gateway-test"), quick());
    let product = json!({"name": "Tea", "price": 3.5});
    let (status, body) = send(&app, json_request("POST", "/products", &product)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message_id = body["result"].as_str().expect("a message id").to_owned();
    assert_eq!(message_id.len(), 36, "{message_id}");

    let message = infra
        .queue("test")
        .receive(
            "product-service.create_products",
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .expect("the create was enqueued");
    assert_eq!(message.id, message_id);
    assert_eq!(
        serde_json::from_str::<Value>(&message.payload).unwrap(),
        product
    );
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_create_one_message() {
    let infra = Infra::start().await;
    let app = gateway(infra.clients("gateway-test"), quick());
    let post = || {
        Request::post("/customers")
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "signup-42")
            .body(Body::from(r#"{"name": "Ann", "email": "a@b.c"}"#))
            .unwrap()
    };
    let (_, first) = send(&app, post()).await;
    let (_, second) = send(&app, post()).await;
    assert!(first["result"].is_string(), "{first}");
    assert_eq!(first, second);

    // The key reused for another customer: 422 with the reason, and the
    // first request stands.
    let other = Request::post("/customers")
        .header(CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", "signup-42")
        .body(Body::from(r#"{"name": "Bob", "email": "b@b.c"}"#))
        .unwrap();
    let (status, body) = send(&app, other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("signup-42"),
        "{body}"
    );
}

#[tokio::test]
async fn reports_are_built_from_every_list_and_the_mails() {
    let infra = Infra::start().await;
    let mail = json!(["1-0", {"event_id": "m1", "event_action": "mail_sent", "event_data": "{\"recipient\":\"a@b.c\",\"message\":\"hi\"}"}]);
    let mail_reply = mail.clone();
    let _domain = FakeDomain::start(
        &infra,
        &[
            "read-model.get_entities",
            "read-model.get_mails",
            "read-model.get_orders_report",
        ],
        move |channel, payload| {
            if channel == "read-model.get_mails" {
                return page(json!([mail_reply]));
            }
            if channel == "read-model.get_orders_report" {
                return page(json!([{
                    "entity_id": "o1", "cart_id": "k1", "status": "CLEARED",
                    "cart": {"entity_id": "k1", "customer_id": "c1", "product_ids": ["p1", "p1"],
                        "customer": {"entity_id": "c1", "name": "Ann", "email": "a@b.c"},
                        "products": [{"entity_id": "p1", "name": "Tea", "price": 3.5}, {"entity_id": "p1", "name": "Tea", "price": 3.5}]},
                    "billings": [{"entity_id": "b1", "order_id": "o1", "amount": 7.0}],
                    "shippings": [{"entity_id": "s1", "order_id": "o1", "delivered": 0}],
                }]));
            }
            let entity = match payload["name"].as_str().unwrap() {
                "customer" => json!({"entity_id": "c1", "name": "Ann", "email": "a@b.c"}),
                "product" => json!({"entity_id": "p1", "name": "Tea", "price": 3.5}),
                "inventory" => json!({"entity_id": "i1", "product_id": "p1", "amount": 4}),
                "cart" => {
                    json!({"entity_id": "k1", "customer_id": "c1", "product_ids": ["p1", "p1"]})
                }
                "order" => json!({"entity_id": "o1", "cart_id": "k1", "status": "CLEARED"}),
                "billing" => json!({"entity_id": "b1", "order_id": "o1", "amount": 7.0}),
                "shipping" => json!({"entity_id": "s1", "order_id": "o1", "delivered": 0}),
                other => panic!("unexpected name {other}"),
            };
            page(json!([entity]))
        },
    );
    let app = gateway(infra.clients("gateway-test"), quick());

    let (status, body) = send(&app, get("/report")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = &body["result"];
    for key in [
        "customers",
        "products",
        "inventory",
        "carts",
        "orders",
        "billings",
        "shippings",
    ] {
        assert_eq!(
            report[key].as_array().map(Vec::len),
            Some(1),
            "{key}: {report}"
        );
    }
    assert_eq!(report["mails"], json!([mail]));
    assert_eq!(report["inventory"][0]["amount"], json!(4));

    let (status, body) = send(&app, get("/report/orders")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let order = &body["result"][0];
    assert_eq!(order["cart"]["customer"]["name"], "Ann");
    assert_eq!(order["cart"]["products"].as_array().unwrap().len(), 2);
    assert_eq!(order["billings"][0]["entity_id"], "b1");
    assert_eq!(order["shippings"][0]["entity_id"], "s1");

    // With a limit: the first page of each list, its cursor and total.
    let (status, body) = send(&app, get("/report?limit=5")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["mails"], json!([mail]));
    assert_eq!(body["next"]["customers"], Value::Null);
    assert_eq!(body["total"]["orders"], json!(1));
    let (status, body) = send(&app, get("/report?after=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// A fake read model over `n` customers, paged as the real one pages:
/// cursor = the last id of the previous page.
fn paged_customers(
    n: usize,
    limit_cap: usize,
) -> impl Fn(&str, &Value) -> Value + Send + Sync + 'static {
    move |_, payload| {
        let ids: Vec<String> = (0..n).map(|i| format!("c{i:05}")).collect();
        let limit = (payload["page"]["limit"].as_u64().unwrap() as usize).min(limit_cap);
        let start = match payload["page"]["cursor"].as_str() {
            None => 0,
            Some(cursor) => ids.iter().position(|id| id.as_str() > cursor).unwrap_or(n),
        };
        let end = (start + limit).min(n);
        let items: Vec<Value> = ids[start..end]
            .iter()
            .map(|id| json!({"entity_id": id, "name": id, "email": "a@b.c"}))
            .collect();
        let next = (end < n).then(|| ids[end - 1].clone());
        json!({"result": {"items": items, "next": next, "total": n}})
    }
}

#[tokio::test]
async fn lists_are_streamed_page_by_page_or_answered_one_page_at_a_time() {
    let infra = Infra::start().await;
    let mut domain = FakeDomain::start(
        &infra,
        &["read-model.get_entities"],
        paged_customers(2500, 400),
    );
    let app = gateway(infra.clients("gateway-test"), quick());

    // Whole: every page followed, the v2 shape, every customer once.
    let (status, body) = send(&app, get("/customers")).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["entity_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..2500).map(|i| format!("c{i:05}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only result: {:.200}",
        body.to_string()
    );
    let mut cursors = Vec::new();
    for _ in 0..7 {
        let request = domain.next().await;
        cursors.push(request.payload["page"]["cursor"].clone());
    }
    assert_eq!(
        cursors,
        [
            json!(null),
            json!("c00399"),
            json!("c00799"),
            json!("c01199"),
            json!("c01599"),
            json!("c01999"),
            json!("c02399")
        ]
    );

    // One page, then the next from its cursor.
    let (status, body) = send(&app, get("/customers?limit=3")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"].as_array().unwrap().len(), 3);
    assert_eq!(body["next"], json!("c00002"));
    assert_eq!(body["total"], json!(2500));
    let (_, body) = send(&app, get("/customers?limit=3&after=c02498")).await;
    assert_eq!(body["result"][0]["entity_id"], json!("c02499"));
    assert_eq!(body["next"], Value::Null);

    for bad in ["limit=0", "limit=1001", "limit=ten", "after="] {
        let (status, body) = send(&app, get(&format!("/customers?{bad}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains(bad.split('=').next().unwrap()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_list_failing_midway_is_cut_off_not_truncated() {
    let infra = Infra::start().await;
    let pages = paged_customers(2500, 1000);
    let _domain = FakeDomain::start(
        &infra,
        &["read-model.get_entities"],
        move |channel, payload| {
            if payload["page"]["cursor"].is_string() {
                return json!({"error": "read model is behind", "kind": "internal"});
            }
            pages(channel, payload)
        },
    );
    let app = gateway(infra.clients("gateway-test"), quick());
    let response = tower::ServiceExt::oneshot(app, get("/customers"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the first page was fine");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    assert!(
        body.is_err(),
        "a body cut off midway must not read as complete"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_and_large_ones_413() {
    // None of these requests may reach the queue: it is not there.
    let config = GatewayConfig {
        body_limit: 1024,
        ..quick()
    };
    let app = gateway(absent_clients(), config);

    let broken = Request::post("/customer")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let (status, body) = send(&app, broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string());

    let not_json = Request::post("/customer")
        .header(CONTENT_TYPE, "text/plain")
        .body(Body::from("name=Ann"))
        .unwrap();
    let (status, body) = send(&app, not_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("application/json"),
        "{body}"
    );

    let put_list = json_request("PUT", "/customer/c1", &json!(["not", "an", "entity"]));
    let (status, body) = send(&app, put_list).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let delete_garbage = Request::delete("/customer/c1")
        .body(Body::from("{{"))
        .unwrap();
    let (status, body) = send(&app, delete_garbage).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let huge = json!({"name": "x".repeat(2048), "email": "a@b.c"});
    for (method, path) in [
        ("POST", "/customer"),
        ("POST", "/customers"),
        ("PUT", "/customer/c1"),
        ("DELETE", "/customer/c1"),
    ] {
        let (status, body) = send(&app, json_request(method, path, &huge)).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}: {body}"
        );
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = gateway(absent_clients(), quick());
    let (status, body) = send(&app, get("/nothing/here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "no route for GET /nothing/here"}));

    let (status, body) = send(&app, json_request("PATCH", "/customer/c1", &json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(body["error"].is_string());

    // Not a WebSocket handshake.
    let response = app.clone().oneshot(get("/ws")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()["upgrade"], "websocket");
}

/// Input the domain refuses as malformed never reaches the queue: these
/// answers come with the queue unreachable, which would be a 503.
#[tokio::test]
async fn malformed_writes_are_refused_before_anything_is_enqueued() {
    let app = gateway(absent_clients(), quick());
    let too_many = Value::Array(vec![json!({"name": "A", "email": "a@b"}); 1001]);
    for (method, path, body, error) in [
        ("POST", "/customers", json!({}), "name is required"),
        (
            "POST",
            "/customers",
            json!(null),
            "expected a JSON object or a list of JSON objects",
        ),
        (
            "POST",
            "/customers",
            json!([]),
            "expected at least one object",
        ),
        (
            "POST",
            "/customers",
            too_many.clone(),
            "at most 1000 objects per request, got 1001",
        ),
        (
            "POST",
            "/customer",
            too_many,
            "at most 1000 objects per request, got 1001",
        ),
        (
            "POST",
            "/products",
            json!([{"name": "Tea", "price": 1}, {"name": " ", "price": 1}]),
            "item 1: name is required",
        ),
        (
            "POST",
            "/order",
            json!({"cart_id": "c", "status": "SHIPPED"}),
            "status must be CREATED for a new order",
        ),
        (
            "POST",
            "/shippings",
            json!({"order_id": "o", "delivered": 5}),
            "delivered must be 0 for a new shipping",
        ),
        (
            "PUT",
            "/product/p1",
            json!({"name": "Tea", "price": -1}),
            "price must be a number not below 0",
        ),
        (
            "PUT",
            "/inventory/i1",
            json!({"product_id": "p", "amount": 1.5}),
            "amount must be a whole number not below 0",
        ),
    ] {
        let (status, reply) = send(&app, json_request(method, path, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {reply}");
        assert_eq!(reply, json!({ "error": error }), "{method} {path}");
    }
    // A blank id names no entity.
    for method in ["PUT", "DELETE"] {
        let (status, reply) = send(
            &app,
            json_request(
                method,
                "/customer/%20",
                &json!({"name": "A", "email": "a@b"}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {reply}");
        assert_eq!(reply, json!({"error": "could not find customer"}));
    }
}

#[tokio::test]
async fn a_page_of_another_site_cannot_open_the_live_push() {
    let app = gateway(absent_clients(), quick());
    let handshake = |origin: &str| {
        Request::builder()
            .uri("/ws")
            .header("host", "shop.example:5000")
            .header("origin", origin)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap()
    };
    let (status, body) = send(&app, handshake("https://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("evil.example"),
        "{body}"
    );
    // The gateway's own page passes the origin check (and then fails only
    // because this in-process request cannot be upgraded).
    let (status, body) = send(&app, handshake("http://shop.example:5000")).await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");

    let allowed = GatewayConfig {
        allowed_origins: vec!["https://ui.example".to_owned()],
        ..quick()
    };
    let app = gateway(absent_clients(), allowed);
    let (status, body) = send(&app, handshake("https://ui.example")).await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn an_absent_event_store_or_queue_is_503() {
    let app = gateway(absent_clients(), quick());
    let (status, body) = send(&app, get("/customers")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, json!({"error": "the event store is unavailable"}));

    let (status, body) = send(
        &app,
        json_request(
            "POST",
            "/customer",
            &json!({"name": "Ann", "email": "ann@example.org"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, json!({"error": "the message queue is unavailable"}));

    let (status, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = send(&app, get("/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": "ok"})));
}

#[tokio::test]
async fn ready_when_the_event_store_and_queue_answer() {
    let infra = Infra::start().await;
    let app = gateway(infra.clients("gateway-test"), quick());
    // The servers report SERVING once their first Redis check passed.
    let body = ordershop_testkit::eventually_async(
        "/readyz 200",
        std::time::Duration::from_secs(10),
        || {
            let app = app.clone();
            async move {
                let (status, body) = send(&app, get("/readyz")).await;
                (status == StatusCode::OK).then_some(body)
            }
        },
    )
    .await;
    assert_eq!(body["result"], json!({"event_store": "ok", "queue": "ok"}));
}
