//! The router and its handlers. Handlers only pick the query or command and
//! wrap its result in `{"result": ...}`; [`crate::upstream`] does the calls
//! and [`crate::reply`] the translation to HTTP.

use std::any::Any;

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{Method, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use ordershop_core::{CommandOp, EntityKind};
use serde_json::Value;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

use crate::{
    GatewayState, auth,
    body::{EntityId, IdempotencyKey, JsonBody, OptionalJsonBody, with_entity_id},
    health, limits,
    lists::{self, PageParams},
    metrics, openapi, push,
    reply::{Answer, ApiError, answer},
    ui,
    upstream::Query,
};

pub(crate) const WEBSOCKET: &str = "/ws";
pub(crate) const HEALTHZ: &str = "/healthz";
pub(crate) const READYZ: &str = "/readyz";
pub(crate) const OPENAPI: &str = "/openapi.json";
pub(crate) const UNBILLED_ORDERS: &str = "/orders/unbilled";
pub(crate) const UNSHIPPED_ORDERS: &str = "/orders/unshipped";
pub(crate) const DELIVERED_ORDERS: &str = "/orders/delivered";
pub(crate) const SENT_MAILS: &str = "/mails/sent";
pub(crate) const REPORT: &str = "/report";
pub(crate) const ORDERS_REPORT: &str = "/report/orders";

/// `/customers`: list (GET) and async create (POST).
pub(crate) fn collection_path(kind: EntityKind) -> String {
    format!("/{}", kind.plural())
}

/// `/customer`: sync create (POST).
pub(crate) fn create_path(kind: EntityKind) -> String {
    format!("/{}", kind.singular())
}

/// `/customer/{id}`: read, update, delete. axum's path syntax is also
/// OpenAPI's, so the document uses the same string.
pub(crate) fn entity_path(kind: EntityKind) -> String {
    format!("/{}/{{id}}", kind.singular())
}

/// Every route of the gateway, with its state.
pub fn router(state: GatewayState) -> Router {
    let body_limit = state.config.body_limit;
    let mut router = Router::new()
        .route("/", get(ui::index))
        .route(ui::SCRIPT_PATH, get(ui::script))
        .route(ui::STYLE_PATH, get(ui::style))
        .route(WEBSOCKET, get(push::websocket))
        .route(HEALTHZ, get(health::live))
        .route(READYZ, get(health::ready))
        .route(OPENAPI, get(openapi::serve))
        .route(UNBILLED_ORDERS, get(unbilled_orders))
        .route(UNSHIPPED_ORDERS, get(unshipped_orders))
        .route(DELIVERED_ORDERS, get(delivered_orders))
        .route(SENT_MAILS, get(sent_mails))
        .route(REPORT, get(report))
        .route(ORDERS_REPORT, get(orders_report));
    for kind in EntityKind::ALL {
        router = router.merge(entity_routes(kind));
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        // Before the in-flight bound: a client over its rate takes no slot.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::rate::limit,
        ))
        // Metrics and the access log (one `info` line per request).
        .layer(axum::middleware::from_fn(metrics::track))
        // A span per request, joined to the caller's `traceparent` if any:
        // the root of an order flow's trace. Failed requests are logged
        // once, by `ApiError`, at a level that fits their cause.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(metrics::request_span)
                .on_request(())
                .on_response(())
                .on_failure(()),
        )
        .with_state(state)
}

fn entity_routes(kind: EntityKind) -> Router<GatewayState> {
    Router::new()
        .route(
            &collection_path(kind),
            get(move |state: State<GatewayState>, page: PageParams| {
                list(state, Query::Entities { kind }, page)
            })
            .post(
                move |state: State<GatewayState>, key: IdempotencyKey, body: JsonBody| {
                    create_async(state, kind, key, body)
                },
            ),
        )
        .route(
            &create_path(kind),
            post(
                move |state: State<GatewayState>, key: IdempotencyKey, body: JsonBody| {
                    create(state, kind, key, body)
                },
            ),
        )
        .route(
            &entity_path(kind),
            get(move |state: State<GatewayState>, id: EntityId| get_one(state, kind, id))
                .put(
                    move |state: State<GatewayState>,
                          id: EntityId,
                          key: IdempotencyKey,
                          body: JsonBody| update(state, kind, id, key, body),
                )
                .delete(
                    move |state: State<GatewayState>,
                          id: EntityId,
                          key: IdempotencyKey,
                          body: OptionalJsonBody| {
                        delete(state, kind, id, key, body)
                    },
                ),
        )
}

async fn list(
    State(state): State<GatewayState>,
    query: Query,
    page: PageParams,
) -> Result<Response, ApiError> {
    lists::list(&state.upstream, query, page).await
}

/// `{"result": null}` with 200 for an unknown id: clients rely on it.
async fn get_one(
    State(state): State<GatewayState>,
    kind: EntityKind,
    EntityId(id): EntityId,
) -> Answer {
    answer(state.upstream.query(&Query::Entity { kind, id }).await?)
}

async fn create(
    State(state): State<GatewayState>,
    kind: EntityKind,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Answer {
    answer(
        state
            .upstream
            .command(kind, CommandOp::Create, &body, &key)
            .await?,
    )
}

async fn create_async(
    State(state): State<GatewayState>,
    kind: EntityKind,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Answer {
    let message_id = state.upstream.enqueue_create(kind, &body, &key).await?;
    answer(Value::String(message_id))
}

async fn update(
    State(state): State<GatewayState>,
    kind: EntityKind,
    EntityId(id): EntityId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Answer {
    existing(kind, &id)?;
    let entity = with_entity_id(Some(body), &id)?;
    answer(
        state
            .upstream
            .command(kind, CommandOp::Update, &entity, &key)
            .await?,
    )
}

async fn delete(
    State(state): State<GatewayState>,
    kind: EntityKind,
    EntityId(id): EntityId,
    IdempotencyKey(key): IdempotencyKey,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Answer {
    existing(kind, &id)?;
    let entity = with_entity_id(body, &id)?;
    answer(
        state
            .upstream
            .command(kind, CommandOp::Delete, &entity, &key)
            .await?,
    )
}

/// Ids are never blank, so a blank `{id}` names no entity: 404 like any
/// unknown id, rather than the domain's "entity_id is required" for a body.
fn existing(kind: EntityKind, id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() {
        return Err(ApiError::Refused {
            kind: ordershop_core::ErrorKind::NotFound,
            message: ordershop_core::DomainError::NotFound(kind).to_string(),
        });
    }
    Ok(())
}

async fn unbilled_orders(
    state: State<GatewayState>,
    page: PageParams,
) -> Result<Response, ApiError> {
    list(state, Query::UnbilledOrders, page).await
}

async fn unshipped_orders(
    state: State<GatewayState>,
    page: PageParams,
) -> Result<Response, ApiError> {
    list(state, Query::UnshippedOrders, page).await
}

async fn delivered_orders(
    state: State<GatewayState>,
    page: PageParams,
) -> Result<Response, ApiError> {
    list(state, Query::DeliveredOrders, page).await
}

async fn sent_mails(state: State<GatewayState>, page: PageParams) -> Result<Response, ApiError> {
    list(state, Query::Mails, page).await
}

async fn report(State(state): State<GatewayState>, page: PageParams) -> Result<Response, ApiError> {
    lists::report(&state.upstream, page).await
}

async fn orders_report(state: State<GatewayState>, page: PageParams) -> Result<Response, ApiError> {
    list(state, Query::OrdersReport, page).await
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method,
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method,
        path: uri.path().to_owned(),
    }
}

/// A bug must not answer with an empty reply or a debugger page
/// (reference defect 8): a JSON 500 like every other error.
fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "request handler panicked");
    ApiError::Refused {
        kind: ordershop_core::ErrorKind::Internal,
        message: "internal error".to_owned(),
    }
    .into_response()
}
