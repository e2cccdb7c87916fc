//! The OpenAPI 3.1 document of the gateway, built from the same paths and
//! entity kinds as the router, so a route cannot be added to one and not
//! the other without a test failing.

use std::sync::LazyLock;

use axum::Json;
use ordershop_core::{EntityKind, OrderStatus};
use serde_json::{Map, Value, json};

use crate::{routes, ui};

static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

pub(crate) async fn serve() -> Json<Value> {
    Json(DOCUMENT.clone())
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
        "paths": paths,
        "components": components(),
    })
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

fn one_or_many(kind: EntityKind) -> Value {
    let entity = schema_ref(&schema_name(kind));
    json!({"oneOf": [entity, {"type": "array", "items": entity, "minItems": 1}]})
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
                ok_page(&format!("list_{plural}"), &format!("Every {singular}, or one page"), json!({"type": "array", "items": schema_ref(&name)})),
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
                ok("The new ids, in the order of the input", json!({"type": "array", "items": {"type": "string"}})),
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
        "description": format!("The {singular}'s entity_id"),
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
            "requestBody": write_body(schema_ref(&name), false),
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
/// `total` when one page was asked for.
fn ok_page(operation_id: &str, description: &str, result: Value) -> Value {
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
        "links": {
            "next_page": {
                "operationId": operation_id,
                "parameters": {"after": "$response.body#/next"},
                "description": "The next page",
            },
        },
    })
}

/// A list route of the `query` tag.
fn list_item(summary: &str, result: Value) -> Value {
    let operation_id = summary.to_lowercase().replace([' ', ','], "_");
    let ok = ok_page(&operation_id, summary, result);
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

fn entity_schema(kind: EntityKind) -> Value {
    let id =
        json!({"type": "string", "readOnly": true, "description": "Made by the server (a UUID)"});
    let string = json!({"type": "string"});
    let (properties, required) = match kind {
        EntityKind::Customer => (
            json!({"name": string, "email": string}),
            vec!["name", "email"],
        ),
        EntityKind::Product => (
            json!({"name": string, "price": {"type": "number"}}),
            vec!["name", "price"],
        ),
        EntityKind::Inventory => (
            json!({"product_id": string, "amount": {"type": "integer"}}),
            vec!["product_id", "amount"],
        ),
        EntityKind::Cart => (
            json!({"customer_id": string, "product_ids": {
                "type": "array", "items": string,
                "description": "A product repeated n times means n pieces",
            }}),
            vec!["customer_id", "product_ids"],
        ),
        EntityKind::Order => (
            json!({"cart_id": string, "status": {"$ref": "#/components/schemas/OrderStatus"}}),
            vec!["cart_id"],
        ),
        EntityKind::Billing => (
            json!({"order_id": string, "amount": {
                "type": "number",
                "description": "The sum of the prices of the order's cart products",
            }}),
            vec!["order_id", "amount"],
        ),
        EntityKind::Shipping => (
            json!({"order_id": string, "delivered": {
                "type": "integer",
                "description": "0 until delivered, then a unix timestamp in seconds",
            }}),
            vec!["order_id"],
        ),
    };
    let mut properties = match properties {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    properties.insert("entity_id".into(), id);
    json!({"type": "object", "required": required, "properties": properties})
}

fn components() -> Value {
    let mut schemas = Map::new();
    for kind in EntityKind::ALL {
        schemas.insert(schema_name(kind), entity_schema(kind));
    }
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
            "400": error("Malformed request, or refused as invalid by the domain"),
            "404": error("The entity to change does not exist"),
            "409": error("The current state refuses the command (out of stock, locked cart, ...)"),
            "413": error("The body is larger than the limit"),
            "422": error("The Idempotency-Key was already used, within its window, for a different request"),
            "500": error("A bug in a service"),
            "502": error("A service or the infrastructure answered something unusable"),
            "503": error("The event store or the message queue is unavailable"),
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
                "schema": {"type": "string", "maxLength": 256},
                "description": "Makes a retried write safe: the same key on the same route is carried out once, \
                    and a retry within the key's window (10 minutes) gets the first attempt's answer. \
                    Reusing a key for a different body is refused with 422.",
            },
        },
    })
}
