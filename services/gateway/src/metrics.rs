//! Counts and times every HTTP request by route template (`/customer/{id}`,
//! never the raw path), method and status, for Prometheus
//! ([`ordershop_metrics::families`]; served on the role's gRPC port), and
//! writes the access log: one `info` event per request, target
//! `ordershop::access` (`RUST_LOG=ordershop::access=warn` silences it).
//! A traced request's answer names its trace (`traceresponse`), so a
//! client can look the flow up (`ordershop trace <trace id>`).

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method},
    middleware::Next,
    response::Response,
};
use ordershop_metrics::families::{HTTP_REQUESTS, HTTP_SECONDS, RouteLabels, RouteStatusLabels};

pub(crate) async fn track(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = method_label(request.method());
    let uri = request.uri().clone();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let took = started.elapsed();
    let traceparent = ordershop_trace::current_traceparent();
    if let Ok(value) = HeaderValue::try_from(traceparent)
        && !value.is_empty()
    {
        response
            .headers_mut()
            .insert(ordershop_trace::TRACERESPONSE, value);
    }
    // The URI is the client's: logged with `?`, escaped.
    tracing::info!(
        target: "ordershop::access",
        method = %method,
        uri = ?uri,
        status = response.status().as_u16(),
        latency_ms = took.as_secs_f64() * 1000.0,
        "request"
    );
    HTTP_SECONDS
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(took.as_secs_f64());
    HTTP_REQUESTS
        .get_or_create(&RouteStatusLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The span of one request, named by method and path, child of the span
/// the request's `traceparent` names (if any): where a flow's trace starts.
/// Probes get none, so they fill no trace store.
pub(crate) fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    if path == crate::routes::HEALTHZ || path == crate::routes::READYZ {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{} {path}", method_label(request.method())),
        otel.kind = "server"
    );
    if let Some(traceparent) = ordershop_trace::traceparent_header(request.headers()) {
        ordershop_trace::set_parent(&span, traceparent);
    }
    span
}

/// The standard methods by name; a made-up one is `other`.
fn method_label(method: &Method) -> String {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    if STANDARD.contains(method) {
        method.as_str().to_owned()
    } else {
        "other".to_owned()
    }
}
