//! Translation to HTTP: reply envelopes of the domain services and the read
//! model, and failures of the event store and queue clients, become a status
//! and `{"error": "..."}`. Every error the gateway answers goes through
//! [`ApiError`], so no answer is ever HTML or plain text.

use std::{fmt, time::Duration};

use axum::{
    Json,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use ordershop_client::ClientError;
use ordershop_core::ErrorKind;
use serde_json::{Value, json};
use tonic::Code;

/// A successful answer: 200 with `{"result": ...}`.
pub(crate) type Answer = Result<Json<Value>, ApiError>;

pub(crate) fn answer(result: Value) -> Answer {
    Ok(Json(json!({ "result": result })))
}

/// The infrastructure the gateway talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dependency {
    EventStore,
    Queue,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dependency::EventStore => "the event store",
            Dependency::Queue => "the message queue",
        })
    }
}

/// Every way a request can fail. Each variant maps to a status on purpose
/// ([`ApiError::status`]): a new variant must choose one.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A domain service or the read model refused: its `{"error", "kind"}`.
    Refused {
        kind: ErrorKind,
        message: String,
    },
    /// The request is malformed: body, content type, header, path.
    BadRequest(String),
    /// The body is larger than the configured limit.
    PayloadTooLarge(String),
    /// An extractor of axum refused the request with this status (e.g. a
    /// WebSocket handshake that is not one).
    Rejected {
        status: StatusCode,
        message: String,
    },
    NoRoute {
        method: Method,
        path: String,
    },
    MethodNotAllowed {
        method: Method,
        path: String,
    },
    /// No reply from `target` within `after`.
    Timeout {
        target: String,
        after: Duration,
    },
    /// The event store or the queue cannot be reached.
    Unavailable {
        dependency: Dependency,
        detail: String,
    },
    /// A dependency failed or answered something unusable.
    BadGateway {
        upstream: String,
        detail: String,
    },
    /// A plain request to the WebSocket's address.
    UpgradeRequired,
    /// As many requests as configured are being handled already.
    Busy,
    /// No bearer token, or not one the gateway knows.
    Unauthorized,
    /// The client is over its rate; it may come back after `retry_after`.
    RateLimited {
        retry_after: Duration,
    },
    /// As many WebSocket clients as configured are connected already.
    PushFull,
    /// The gateway is stopping and takes no new WebSocket clients.
    ShuttingDown,
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Refused { kind, .. } => StatusCode::from_u16(kind.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Rejected { status, .. } => *status,
            ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable { .. } | ApiError::PushFull | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The text for the client. Details of infrastructure failures stay in
    /// the log; the client learns which part failed.
    fn message(&self) -> String {
        match self {
            ApiError::Refused { message, .. }
            | ApiError::BadRequest(message)
            | ApiError::PayloadTooLarge(message)
            | ApiError::Rejected { message, .. } => message.clone(),
            ApiError::NoRoute { method, path } => format!("no route for {method} {path}"),
            ApiError::MethodNotAllowed { method, path } => {
                format!("method {method} is not allowed on {path}")
            }
            ApiError::Timeout { target, after } => {
                format!("no reply from {target} within {after:?}")
            }
            ApiError::Unavailable { dependency, .. } => format!("{dependency} is unavailable"),
            ApiError::BadGateway { upstream, .. } => format!("{upstream} failed"),
            ApiError::UpgradeRequired => {
                "this is the live push's WebSocket: open it with a WebSocket handshake (Connection: Upgrade, Upgrade: websocket)".to_owned()
            }
            ApiError::PushFull => "too many live-push clients; try again later".to_owned(),
            ApiError::Busy => "too many requests in progress; try again shortly".to_owned(),
            ApiError::RateLimited { retry_after } => format!(
                "too many requests from this client; try again in {} ms",
                retry_after.as_millis().max(1)
            ),
            ApiError::Unauthorized => {
                "this gateway needs a bearer token: Authorization: Bearer <token>".to_owned()
            }
            ApiError::ShuttingDown => "the gateway is shutting down".to_owned(),
        }
    }

    /// Maps a failed call of the event store or queue client. `target` names
    /// what was called (a channel, or the dependency).
    pub(crate) fn from_client(
        dependency: Dependency,
        target: &str,
        timeout: Duration,
        err: &ClientError,
    ) -> ApiError {
        let detail = err.to_string();
        match err.code() {
            Code::DeadlineExceeded => ApiError::Timeout {
                target: target.to_owned(),
                after: timeout,
            },
            Code::Unavailable | Code::Unknown | Code::Cancelled => {
                ApiError::Unavailable { dependency, detail }
            }
            // Redis is full: say so (the server's reason is meant for
            // people), and 503 since it passes once memory is freed.
            Code::ResourceExhausted => ApiError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: match err {
                    ClientError::Rpc(status) => format!("{dependency}: {}", status.message()),
                    ClientError::InvalidEndpoint(_) => detail,
                },
            },
            // The queue checks what the client controls: payload size, the
            // idempotency key.
            Code::InvalidArgument => ApiError::BadRequest(match err {
                ClientError::Rpc(status) => status.message().to_owned(),
                ClientError::InvalidEndpoint(_) => detail,
            }),
            // An Idempotency-Key reused for a different request: 422, as
            // the IETF Idempotency-Key draft specifies.
            Code::AlreadyExists => ApiError::Rejected {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: match err {
                    ClientError::Rpc(status) => status.message().to_owned(),
                    ClientError::InvalidEndpoint(_) => detail,
                },
            },
            _ => ApiError::BadGateway {
                upstream: dependency.to_string(),
                detail,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        // Messages can quote the client (ids from a body): logged with
        // `?`, escaped, so a newline in them cannot forge a log line.
        match &self {
            ApiError::Unavailable { detail, .. } | ApiError::BadGateway { detail, .. } => {
                tracing::warn!(%status, ?message, ?detail, "request failed upstream");
            }
            _ if status.is_server_error() => tracing::warn!(%status, ?message, "request failed"),
            _ => tracing::debug!(%status, ?message, "request refused"),
        }
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        match self {
            // RFC 9110 §15.5.22: a 426 names the protocol to switch to.
            ApiError::UpgradeRequired => {
                response
                    .headers_mut()
                    .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            }
            ApiError::Busy => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited { retry_after } => {
                // Whole seconds (RFC 9110), rounded up so a client that
                // waits as told is let in.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            ApiError::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"ordershop\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// Reads a reply envelope from `channel`: `{"result": ...}` is the result;
/// `{"error": "...", "kind": "..."}` is a refusal whose kind chooses the
/// status (an unknown or missing kind counts as internal). Anything else is
/// a broken reply (502).
pub(crate) fn read_reply(channel: &str, reply: &str) -> Result<Value, ApiError> {
    let broken = |detail: String| ApiError::BadGateway {
        upstream: channel.to_owned(),
        detail,
    };
    let value: Value =
        serde_json::from_str(reply).map_err(|e| broken(format!("reply is not JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(broken(format!("reply is not an object: {reply:.200}")));
    };
    match fields.remove("error") {
        None | Some(Value::Null) => {}
        Some(error) => {
            let message = match error {
                Value::String(text) => text,
                other => other.to_string(),
            };
            let kind = fields
                .get("kind")
                .and_then(Value::as_str)
                .and_then(ErrorKind::from_label)
                .unwrap_or(ErrorKind::Internal);
            return Err(ApiError::Refused { kind, message });
        }
    }
    fields
        .remove("result")
        .ok_or_else(|| broken(format!("reply has neither result nor error: {reply:.200}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(reply: &str) -> (StatusCode, String) {
        let err = read_reply("cart-service.create_carts", reply).unwrap_err();
        (err.status(), err.message())
    }

    #[test]
    fn results_are_unwrapped_and_positions_dropped() {
        let reply = r#"{"result": ["c1"], "positions": {"cart": "1-0"}}"#;
        assert_eq!(read_reply("x.y", reply).unwrap(), json!(["c1"]));
        assert_eq!(
            read_reply("x.y", r#"{"result": null}"#).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn error_kinds_choose_the_status() {
        let cases = [
            ("invalid", StatusCode::BAD_REQUEST),
            ("not_found", StatusCode::NOT_FOUND),
            ("conflict", StatusCode::CONFLICT),
            ("internal", StatusCode::INTERNAL_SERVER_ERROR),
            ("something new", StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (kind, status) in cases {
            let reply = json!({"error": "product p1 is out of stock", "kind": kind}).to_string();
            assert_eq!(
                refused(&reply),
                (status, "product p1 is out of stock".to_owned()),
                "{kind}"
            );
        }
        assert_eq!(
            refused(r#"{"error": "no kind"}"#).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn broken_replies_are_bad_gateway() {
        for reply in ["not json", "[1]", r#"{"positions": {}}"#] {
            assert_eq!(refused(reply).0, StatusCode::BAD_GATEWAY, "{reply}");
        }
    }

    #[test]
    fn client_failures_map_by_code() {
        let status = |code: Code| {
            let err = ClientError::Rpc(tonic::Status::new(code, "boom"));
            ApiError::from_client(Dependency::Queue, "a.b", Duration::from_secs(1), &err).status()
        };
        assert_eq!(status(Code::DeadlineExceeded), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status(Code::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(status(Code::Internal), StatusCode::BAD_GATEWAY);
    }
}
