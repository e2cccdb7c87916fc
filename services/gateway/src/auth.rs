//! Optional bearer-token authentication of the REST API and the live push
//! ([`GatewayConfig::api_tokens`](crate::GatewayConfig); off when empty).
//!
//! A request presents `Authorization: Bearer <token>`. Browsers cannot set
//! headers on a WebSocket, so the live push also takes the token as the
//! second WebSocket subprotocol after [`PROTOCOL`]
//! (`new WebSocket(url, ["ordershop.bearer", token])`), never in the URL,
//! which access logs and proxies keep. The probes, the page and its assets
//! and `/openapi.json` stay open: the page asks for the token itself.

use axum::{
    extract::{Request, State},
    http::{
        HeaderMap,
        header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL},
    },
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{GatewayState, reply::ApiError, routes, ui};

/// The WebSocket subprotocol whose companion entry is the token.
pub(crate) const PROTOCOL: &str = "ordershop.bearer";

pub(crate) async fn require(
    State(state): State<GatewayState>,
    request: Request,
    next: Next,
) -> Response {
    let tokens = &state.config.api_tokens;
    if tokens.is_empty() || is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = bearer(request.headers()).or_else(|| websocket_token(request.headers()));
    match presented {
        Some(token) if tokens.iter().any(|known| same(known, token)) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// The routes that need no token: the probes, the page (which asks for the
/// token itself) and its assets, and the API's description.
pub(crate) const OPEN_PATHS: [&str; 6] = [
    "/",
    ui::SCRIPT_PATH,
    ui::STYLE_PATH,
    routes::HEALTHZ,
    routes::READYZ,
    routes::OPENAPI,
];

fn is_open(path: &str) -> bool {
    OPEN_PATHS.contains(&path)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `Sec-WebSocket-Protocol: ordershop.bearer, <token>`.
fn websocket_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut offered = value.split(',').map(str::trim);
    (offered.next()? == PROTOCOL).then(|| offered.next())?
}

/// Compares in time independent of where the first difference is, so the
/// answer's timing does not reveal a token byte by byte.
fn same(known: &str, presented: &str) -> bool {
    let (a, b) = (known.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_or_the_websocket_protocols() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            "ordershop.bearer, s3cret".parse().unwrap(),
        );
        assert_eq!(websocket_token(&headers), Some("s3cret"));
        headers.insert(SEC_WEBSOCKET_PROTOCOL, "chat, s3cret".parse().unwrap());
        assert_eq!(websocket_token(&headers), None);
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cres"));
        assert!(!same("s3cret", "s3cret2"));
    }
}
