//! Bounds on what clients can make the gateway hold: requests in progress
//! ([`GatewayConfig::max_in_flight`](crate::GatewayConfig), 503 beyond) and
//! the time one may take, body upload included (`request_timeout`, 408).
//! The probes are exempt.

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{GatewayState, reply::ApiError, routes};

pub(crate) async fn guard(
    State(state): State<GatewayState>,
    request: Request,
    next: Next,
) -> Response {
    // The probes answer whatever the load: a liveness probe refused as busy
    // would have the pod restarted when its upstream is slow.
    if [routes::HEALTHZ, routes::READYZ].contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::Busy.into_response();
    };
    let limit = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Rejected {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!("the request was not complete within {limit:?}"),
        }
        .into_response(),
    }
}
