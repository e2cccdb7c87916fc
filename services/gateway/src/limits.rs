//! Bounds on what clients can make the gateway hold: requests in progress
//! ([`GatewayConfig::max_in_flight`](crate::GatewayConfig), 503 beyond) and
//! the time one may take, body upload included (`request_timeout`, 408).

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{GatewayState, reply::ApiError};

pub(crate) async fn guard(
    State(state): State<GatewayState>,
    request: Request,
    next: Next,
) -> Response {
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
