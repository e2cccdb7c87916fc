//! The OpenAPI 3.1 document of the gateway, built from the same paths and
//! entity kinds as the router, so a route cannot be added to one and not
//! the other without a test failing.

use std::sync::LazyLock;

use axum::{Json, extract::State};
use ordershop_core::{EntityKind, OrderStatus};
use ordershop_topology::MAX_APPEND_BATCH;
use serde_json::{Map, Value, json};

use crate::{GatewayState, routes, ui};

static DOCUMENT: LazyLock<Value> = LazyLock::new(document);
static WITH_TOKENS: LazyLock<Value> = LazyLock::new(|| with_bearer_tokens(document()));

/// The document of this gateway: with a bearer security scheme when it
/// asks for tokens.
pub(crate) async fn serve(State(state): State<GatewayState>) -> Json<Value> {
    if state.config.api_tokens.is_empty() {
        Json(DOCUMENT.clone())
    } else {
        Json(WITH_TOKENS.clone())
    }
}

/// Every operation needs a bearer token, but those the gateway leaves open.
fn with_bearer_tokens(mut document: Value) -> Value {
    document["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the gateway's API tokens. The live push takes it as the \
                second WebSocket subprotocol after `ordershop.bearer`.",
        },
    });
    document["security"] = json!([{"bearer": []}]);
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(operations) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in operations.iter_mut() {
                if method == "parameters" {
                    continue;
                }
                if crate::auth::OPEN_PATHS.contains(&path.as_str()) {
                    operation["security"] = json!([]);
                } else if let Some(responses) = operation["responses"].as_object_mut() {
                    responses.insert("401".into(), response_ref("401"));
                }
            }
        }
    }
    document["components"]["responses"]["401"] = json!({
        "description": "No bearer token, or an unknown one",
        "content": {"application/json": {"schema": schema_ref("Error")}},
    });
    document
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    let mut add = |path: String, item: Value| {
        paths.insert(path, item);
    };
    for kind in EntityKind::ALL {
        add(routes::collection_path(kind), collection_item(kind));
        add(routes::create_path(kind), create_item(kind));
        add(routes::entity_path(kind), entity_item(kind));
    }
    add(
        routes::UNBILLED_ORDERS.into(),
        list_item(
            "Orders without a billing",
            json!({"type": "object", "additionalProperties": schema_ref("Order")}),
        ),
    );
    add(
        routes::UNSHIPPED_ORDERS.into(),
        list_item(
            "Orders without a shipping",
            json!({"type": "object", "additionalProperties": schema_ref("Order")}),
        ),
    );
    add(
        routes::DELIVERED_ORDERS.into(),
        list_item(
            "Orders whose shipping was delivered",
            json!({"type": "array", "items": schema_ref("Order")}),
        ),
    );
    add(
        routes::SENT_MAILS.into(),
        list_item(
            "Every mail sent, in order",
            json!({"type": "array", "items": schema_ref("MailEntry")}),
        ),
    );
    add(routes::REPORT.into(), report_item());
    add(
        routes::ORDERS_REPORT.into(),
        list_item(
            "Orders with cart, customer, products, billings and shippings expanded",
            json!({"type": "array", "items": schema_ref("OrderReport")}),
        ),
    );
    add("/".into(), asset_item("The live UI", "text/html"));
    add(
        ui::SCRIPT_PATH.into(),
        asset_item("The live UI's script", "text/javascript"),
    );
    add(
        ui::STYLE_PATH.into(),
        asset_item("The live UI's stylesheet", "text/css"),
    );
    add(routes::WEBSOCKET.into(), websocket_item());
    add(
        routes::HEALTHZ.into(),
        probe_item("Liveness: the process serves HTTP", false),
    );
    add(
        routes::READYZ.into(),
        probe_item("Readiness: the event store and the queue answer", true),
    );
    add(
        routes::OPENAPI.into(),
        json!({"get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["meta"],
            "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "OrderShop API gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST API of OrderShop v2. Success is HTTP 200 with `{\"result\": ...}`; \
                every failure is a 4xx/5xx status with `{\"error\": \"...\"}`. Reads see every write \
                that completed before them. Writes accept an `Idempotency-Key` header: a retry with \
                the same key is carried out once.",
        },
        "paths": with_limit_errors(paths),
        "components": components(),
    })
}

/// Every operation but the probes may meet the gateway's limits: 503 when
/// too many requests are in progress, 408 past the request timeout, 429
/// when the client is over its rate (if the gateway limits rates).
fn with_limit_errors(mut paths: Map<String, Value>) -> Map<String, Value> {
    for (path, item) in paths.iter_mut() {
        if [routes::HEALTHZ, routes::READYZ].contains(&path.as_str()) {
            continue;
        }
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            if method == "parameters" {
                continue;
            }
            if let Some(responses) = operation["responses"].as_object_mut() {
                for code in ["408", "429", "503"] {
                    responses.entry(code).or_insert_with(|| response_ref(code));
                }
            }
        }
    }
    paths
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// The schema name of a kind's entity: `Customer`, ...
fn schema_name(kind: EntityKind) -> String {
    let singular = kind.singular();
    let mut chars = singular.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// A 200 answer `{"result": <schema>}`.
fn ok(description: &str, result: Value) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["result"],
            "properties": {"result": result},
        }}},
    })
}

fn with_links(mut response: Value, links: Value) -> Value {
    response["links"] = links;
    response
}

/// The error answers a query can give.
fn query_errors(responses: &mut Map<String, Value>) {
    for code in ["500", "502", "503", "504"] {
        responses.insert(code.into(), response_ref(code));
    }
}

/// The error answers a list route can give: a query's, and 400 for bad
/// page parameters.
fn list_errors(responses: &mut Map<String, Value>) {
    responses.insert("400".into(), response_ref("400"));
    query_errors(responses);
}

/// The error answers a command can give.
fn command_errors(responses: &mut Map<String, Value>) {
    for code in [
        "400", "404", "409", "413", "422", "500", "502", "503", "504",
    ] {
        responses.insert(code.into(), response_ref(code));
    }
}

fn responses(ok: Value, errors: fn(&mut Map<String, Value>)) -> Value {
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    errors(&mut responses);
    Value::Object(responses)
}

fn write_body(schema: Value, required: bool) -> Value {
    json!({
        "required": required,
        "content": {"application/json": {"schema": schema}},
    })
}

/// A create's body: one new entity, or a list of 1 to
/// [`MAX_APPEND_BATCH`] (one event each, appended atomically).
fn one_or_many(kind: EntityKind) -> Value {
    let entity = schema_ref(&new_schema_name(kind));
    json!({"oneOf": [entity, {
        "type": "array",
        "items": entity,
        "minItems": 1,
        "maxItems": MAX_APPEND_BATCH,
    }]})
}

/// The kinds whose new entities have rules of their own: an order starts
/// CREATED, a shipping undelivered.
const NEW_SCHEMAS: [EntityKind; 2] = [EntityKind::Order, EntityKind::Shipping];

/// The schema of a new entity: `New<Kind>` where a create has rules of its
/// own, else the entity's.
fn new_schema_name(kind: EntityKind) -> String {
    if NEW_SCHEMAS.contains(&kind) {
        format!("New{}", schema_name(kind))
    } else {
        schema_name(kind)
    }
}

/// From a sync create's answer (the new ids) to the entity's own routes,
/// so a stateful test can chain create → read → update → delete.
fn created_links(kind: EntityKind) -> Value {
    let singular = kind.singular();
    let mut links = Map::new();
    for (name, operation) in [("get", "get"), ("update", "update"), ("delete", "delete")] {
        links.insert(
            format!("{name}_created"),
            json!({
                "operationId": format!("{operation}_{singular}"),
                "parameters": {"id": "$response.body#/result/0"},
                "description": format!("The first {singular} created"),
            }),
        );
    }
    Value::Object(links)
}

fn collection_item(kind: EntityKind) -> Value {
    let (singular, plural, name) = (kind.singular(), kind.plural(), schema_name(kind));
    json!({
        "get": {
            "operationId": format!("list_{plural}"),
            "summary": format!("All {plural}, in id order; one page of them with `limit` or `after`"),
            "tags": [singular],
            "parameters": page_parameters(),
            "responses": responses(
                ok_page(&format!("Every {singular}, or one page"), json!({"type": "array", "items": schema_ref(&name)})),
                list_errors,
            ),
        },
        "post": {
            "operationId": format!("create_{plural}_async"),
            "summary": format!("Create {plural} asynchronously: answers at once with the message id"),
            "tags": [singular],
            "parameters": [idempotency_key_parameter()],
            "requestBody": write_body(one_or_many(kind), true),
            "responses": responses(
                ok("The id of the queued message", json!({"type": "string", "format": "uuid"})),
                command_errors,
            ),
        },
    })
}

fn create_item(kind: EntityKind) -> Value {
    let (singular, plural) = (kind.singular(), kind.plural());
    json!({
        "post": {
            "operationId": format!("create_{plural}"),
            "summary": format!("Create one {singular} or a list of them, all or none"),
            "tags": [singular],
            "parameters": [idempotency_key_parameter()],
            "requestBody": write_body(one_or_many(kind), true),
            "responses": responses(
                with_links(
                    ok("The new ids, in the order of the input", json!({"type": "array", "items": {"type": "string"}, "minItems": 1})),
                    created_links(kind),
                ),
                command_errors,
            ),
        },
    })
}

fn entity_item(kind: EntityKind) -> Value {
    let (singular, name) = (kind.singular(), schema_name(kind));
    let id = json!({
        "name": "id", "in": "path", "required": true,
        "schema": {"type": "string"},
        "description": format!("The {singular}'s entity_id (an unknown or blank one names no {singular})"),
    });
    json!({
        "parameters": [id],
        "get": {
            "operationId": format!("get_{singular}"),
            "summary": format!("One {singular}; `null` (still 200) when there is none"),
            "tags": [singular],
            "responses": responses(
                ok(&format!("The {singular} or null"), json!({"oneOf": [schema_ref(&name), {"type": "null"}]})),
                query_errors,
            ),
        },
        "put": {
            "operationId": format!("update_{singular}"),
            "summary": format!("Replace the {singular} with the whole entity given"),
            "tags": [singular],
            "parameters": [idempotency_key_parameter()],
            "requestBody": write_body(schema_ref(&name), true),
            "responses": responses(ok("Updated", json!({"const": true})), command_errors),
        },
        "delete": {
            "operationId": format!("delete_{singular}"),
            "summary": format!("Delete the {singular}"),
            "tags": [singular],
            "parameters": [idempotency_key_parameter()],
            "requestBody": write_body(schema_ref("DeleteBody"), false),
            "responses": responses(ok("Deleted", json!({"const": true})), command_errors),
        },
    })
}

/// The `Idempotency-Key` header of writes.
fn idempotency_key_parameter() -> Value {
    json!({ "$ref": "#/components/parameters/IdempotencyKey" })
}

/// `?limit=&after=` of the list routes.
fn page_parameters() -> Value {
    json!([
        {"$ref": "#/components/parameters/Limit"},
        {"$ref": "#/components/parameters/After"},
    ])
}

/// A 200 answer of a list route: `{"result": <schema>}`, plus `next` and
/// `total` when one page was asked for. (No OpenAPI link to the next page:
/// a whole list has no `next`, and a link cannot say "when present".)
fn ok_page(description: &str, result: Value) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["result"],
            "properties": {
                "result": result,
                "next": {
                    "type": ["string", "null"],
                    "description": "Present when a page was asked for: the `after` of the next page; null on the last page",
                },
                "total": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Entries in the whole list, where known without reading it all (unfiltered lists)",
                },
            },
        }}},
    })
}

/// A list route of the `query` tag.
fn list_item(summary: &str, result: Value) -> Value {
    let operation_id = summary.to_lowercase().replace([' ', ','], "_");
    let ok = ok_page(summary, result);
    json!({
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": "The whole list, streamed; or with `limit` or `after` one page of it, in a stable \
                order, with the cursor of the next page as `next`. A page may hold fewer than `limit` \
                entries (filtered lists stop after looking at a bounded number); follow `next` until it is null.",
            "tags": ["query"],
            "parameters": page_parameters(),
            "responses": responses(ok, list_errors),
        },
    })
}

/// `/report`: whole, or the first `limit` of each list.
fn report_item() -> Value {
    let summary = "Every entity list and the mails";
    let per_list = |schema: Value| {
        let mut properties = Map::new();
        for key in [
            "billings",
            "carts",
            "customers",
            "inventory",
            "mails",
            "orders",
            "products",
            "shippings",
        ] {
            properties.insert(key.into(), schema.clone());
        }
        json!({"type": "object", "properties": properties})
    };
    json!({
        "get": {
            "operationId": "report",
            "summary": summary,
            "description": "The v2 report: every list whole, streamed. With `limit`, the first `limit` entries of \
                each list, with each list's `next` cursor (for the list's own route, e.g. `/customers?after=`) \
                and `total`: what the live UI shows.",
            "tags": ["query"],
            "parameters": [{"$ref": "#/components/parameters/Limit"}],
            "responses": responses(
                json!({
                    "description": summary,
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["result"],
                        "properties": {
                            "result": schema_ref("Report"),
                            "next": per_list(json!({"type": ["string", "null"]})),
                            "total": per_list(json!({"type": ["integer", "null"], "minimum": 0})),
                        },
                    }}},
                }),
                list_errors,
            ),
        },
    })
}

fn asset_item(summary: &str, media_type: &str) -> Value {
    json!({
        "get": {
            "operationId": format!("ui_{}", media_type.replace('/', "_")),
            "summary": summary,
            "tags": ["ui"],
            "responses": {"200": {"description": summary, "content": {media_type: {"schema": {"type": "string"}}}}},
        },
    })
}

fn websocket_item() -> Value {
    json!({
        "get": {
            "operationId": "live_push",
            "summary": "WebSocket of the live push: each domain event as a text message {action, data, ts}",
            "description": "`action` is the event action with `entity` replaced by the topic \
                (`order_updated`) or `mail_sent`; `ts` is when the event store recorded it (unix ms). \
                Messages from the client are ignored. A client that falls behind is closed with code \
                1013 and may reconnect.",
            "tags": ["ui"],
            "responses": {
                "101": {"description": "Switched to the WebSocket protocol"},
                "400": response_ref("400"),
                "403": response_ref("403"),
                "426": response_ref("426"),
                "503": response_ref("503"),
            },
        },
    })
}

fn probe_item(summary: &str, can_fail: bool) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        ok(summary, json!({"type": ["string", "object"]})),
    );
    if can_fail {
        responses.insert("503".into(), response_ref("503"));
    }
    json!({
        "get": {
            "operationId": summary.split(':').next().unwrap_or(summary).to_lowercase(),
            "summary": summary,
            "tags": ["meta"],
            "responses": responses,
        },
    })
}

/// A text field: a string with something in it besides white space (the
/// domain trims with Rust's `char::is_whitespace`, whose characters the
/// pattern lists, so the schema and the services agree on every string).
fn text() -> Value {
    json!({"type": "string", "minLength": 1, "pattern": non_blank_pattern()})
}

/// `[^<every white-space character>]`: matches where a string has a
/// character that is not white space. Written with `\u` escapes, which
/// ECMA-262, Python and Rust regular expressions read alike.
fn non_blank_pattern() -> String {
    let mut class = String::from("[^");
    let mut run: Option<(char, char)> = None;
    let push = |class: &mut String, (first, last): (char, char)| {
        class.push_str(&format!("\\u{:04x}", u32::from(first)));
        if last != first {
            class.push_str(&format!("-\\u{:04x}", u32::from(last)));
        }
    };
    // Every white-space character is in the Basic Multilingual Plane.
    for c in (0..=0xFFFF_u32)
        .filter_map(char::from_u32)
        .filter(|c| c.is_whitespace())
    {
        run = match run {
            Some((first, last)) if u32::from(last) + 1 == u32::from(c) => Some((first, c)),
            Some(done) => {
                push(&mut class, done);
                Some((c, c))
            }
            None => Some((c, c)),
        };
    }
    if let Some(done) = run {
        push(&mut class, done);
    }
    class.push(']');
    class
}

/// The largest whole number the services keep (a signed 64-bit integer).
const MAX_WHOLE: i64 = i64::MAX;

/// The fields of an entity of `kind` as the domain reads them
/// ([`ordershop_core::input`]): required fields, types, minimums.
fn entity_schema(kind: EntityKind, new: bool) -> Value {
    let id = json!({
        "type": ["string", "null"],
        "readOnly": true,
        "description": "Made by the server: ignored on create; in an update's body, if given, it must be the id in the URL",
    });
    let amount =
        |description: &str| json!({"type": "number", "minimum": 0, "description": description});
    let statuses: Vec<Value> = if new {
        vec![json!("CREATED")]
    } else {
        OrderStatus::ALL.iter().map(|s| json!(s.as_str())).collect()
    };
    let (properties, required) = match kind {
        EntityKind::Customer => (
            json!({"name": text(), "email": {
                "type": "string",
                "pattern": "^[^@]+@[^@]+$",
                "description": "One @ with something on either side",
            }}),
            vec!["name", "email"],
        ),
        EntityKind::Product => (
            json!({"name": text(), "price": amount("The price of one piece")}),
            vec!["name", "price"],
        ),
        EntityKind::Inventory => (
            json!({"product_id": text(), "amount": {
                "type": "integer", "minimum": 0, "maximum": MAX_WHOLE,
                "description": "Pieces in stock (5.0 counts as 5)",
            }}),
            vec!["product_id", "amount"],
        ),
        EntityKind::Cart => (
            json!({"customer_id": text(), "product_ids": {
                "type": "array", "items": text(), "minItems": 1,
                "description": "A product repeated n times means n pieces",
            }}),
            vec!["customer_id", "product_ids"],
        ),
        EntityKind::Order => {
            let mut status = statuses;
            status.push(Value::Null);
            let description = if new {
                "A new order starts CREATED; null or absent means CREATED"
            } else {
                "Only the order workflow moves it: an update repeats it or leaves it out (null)"
            };
            (
                json!({"cart_id": text(), "status": {"enum": status, "description": description}}),
                vec!["cart_id"],
            )
        }
        EntityKind::Billing => (
            json!({"order_id": text(), "amount": amount(
                "The sum of the prices of the order's cart products (else 409)",
            )}),
            vec!["order_id", "amount"],
        ),
        EntityKind::Shipping if new => (
            json!({"order_id": text(), "delivered": {
                "type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 1,
                "description": "A new shipping is not delivered yet: 0 (seconds; fractions are dropped), null or absent",
            }}),
            vec!["order_id"],
        ),
        EntityKind::Shipping => (
            json!({"order_id": text(), "delivered": {
                "type": ["number", "null"], "minimum": 0, "maximum": MAX_WHOLE,
                "description": "0 until delivered, then a unix timestamp in seconds (fractions are dropped); null or absent keeps it",
            }}),
            vec!["order_id"],
        ),
    };
    let mut properties = match properties {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    properties.insert("entity_id".into(), id);
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "description": "Other fields are ignored and not kept",
    })
}

fn components() -> Value {
    let mut schemas = Map::new();
    for kind in EntityKind::ALL {
        schemas.insert(schema_name(kind), entity_schema(kind, false));
    }
    for kind in NEW_SCHEMAS {
        schemas.insert(new_schema_name(kind), entity_schema(kind, true));
    }
    schemas.insert(
        "DeleteBody".into(),
        json!({
            "type": "object",
            "description": "Optional: only entity_id is read, and if given it must be the id in the URL",
            "properties": {"entity_id": {"type": ["string", "null"], "readOnly": true}},
        }),
    );
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    schemas.insert(
        "OrderStatus".into(),
        json!({"type": "string", "enum": statuses}),
    );
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}),
    );
    schemas.insert(
        "MailEntry".into(),
        json!({
            "type": "array",
            "description": "[entry_id, event]: event_data is a JSON string of {recipient, message}",
            "prefixItems": [
                {"type": "string"},
                {"type": "object", "properties": {
                    "event_id": {"type": "string"},
                    "event_action": {"const": "mail_sent"},
                    "event_data": {"type": "string"},
                }},
            ],
            "minItems": 2,
            "maxItems": 2,
        }),
    );
    let list = |name: &str| json!({"type": "array", "items": schema_ref(name)});
    schemas.insert(
        "Report".into(),
        json!({"type": "object", "properties": {
            "customers": list("Customer"),
            "products": list("Product"),
            "inventory": list("Inventory"),
            "carts": list("Cart"),
            "orders": list("Order"),
            "billings": list("Billing"),
            "shippings": list("Shipping"),
            "mails": list("MailEntry"),
        }}),
    );
    schemas.insert(
        "OrderReport".into(),
        json!({"allOf": [schema_ref("Order"), {"type": "object", "properties": {
            "cart": {"oneOf": [{"allOf": [schema_ref("Cart"), {"type": "object", "properties": {
                "customer": {"oneOf": [schema_ref("Customer"), {"type": "null"}]},
                "products": list("Product"),
            }}]}, {"type": "null"}]},
            "billings": list("Billing"),
            "shippings": list("Shipping"),
        }}]}),
    );
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": schema_ref("Error")}},
        })
    };
    json!({
        "schemas": schemas,
        "responses": {
            "400": error("Malformed request: it breaks this document's schema, which states every rule that needs no state"),
            "403": error("A WebSocket opened by a page of another origin"),
            "404": error("The entity to change does not exist"),
            "409": error("The current state refuses the command: a referenced entity does not exist, the amount is not the order's, a field cannot change, out of stock, a locked cart, ..."),
            "413": error("The body is larger than the limit"),
            "426": error("A plain request to the WebSocket's address"),
            "422": error("The Idempotency-Key was already used, within its window, for a different request"),
            "500": error("A bug in a service"),
            "502": error("A service or the infrastructure answered something unusable"),
            "503": error("The event store or the message queue is unavailable, or the gateway has as many requests in progress as it takes (Retry-After)"),
            "408": error("The request was not complete within the gateway's request timeout (its body's upload included)"),
            "429": error("This client made more requests than its rate allows (Retry-After says when to come back)"),
            "504": error("No reply within the call timeout"),
        },
        "parameters": {
            "Limit": {
                "name": "limit",
                "in": "query",
                "required": false,
                "schema": {"type": "integer", "minimum": 1, "maximum": crate::lists::MAX_LIMIT},
                "description": "Answer one page of at most this many entries (and a `next` cursor)",
            },
            "After": {
                "name": "after",
                "in": "query",
                "required": false,
                "schema": {"type": "string", "minLength": 1},
                "description": "The `next` cursor of the previous page: answer the page after it",
            },
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "schema": {"type": "string", "maxLength": 256, "pattern": "^[!-~]*$"},
                "description": "Makes a retried write safe: the same key on the same route is carried out once, \
                    and a retry within the key's window (10 minutes) gets the first attempt's answer. \
                    Reusing a key for a different body is refused with 422. Printable ASCII without spaces; empty means none.",
            },
        },
    })
}
