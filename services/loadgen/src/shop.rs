//! The OrderShop REST API as the load generator uses it: sync creates, one
//! entity, a list. Every call is timed and counted in a [`Recorder`] under
//! its route template, whether it succeeds or not.

use std::time::{Duration, Instant};

use ordershop_core::EntityKind;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use crate::stats::{Recorder, status_class};

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Not a `#[source]`: the message already carries the whole chain
    /// (reqwest's top level alone hides "connection refused"), and flows
    /// keep only messages.
    #[error("{route}: {}", chain(cause))]
    Transport {
        route: String,
        cause: reqwest::Error,
    },
    #[error("{route}: HTTP {status}: {message}")]
    Status {
        route: String,
        status: u16,
        message: String,
    },
    /// HTTP 200 with an `error` key: the reference's way, which clients
    /// still treat as a failure.
    #[error("{route}: error in a 200 answer: {message}")]
    ErrorBody { route: String, message: String },
    #[error("{route}: unexpected answer: {reason}")]
    Malformed { route: String, reason: String },
}

impl CallError {
    /// The class [`Recorder`] counts this failure under.
    fn class(&self) -> String {
        match self {
            CallError::Transport { cause, .. } if cause.is_timeout() => "timeout".to_owned(),
            CallError::Transport { .. } => "transport".to_owned(),
            CallError::Status { status, .. } => status_class(*status),
            CallError::ErrorBody { .. } => "error body".to_owned(),
            CallError::Malformed { .. } => "malformed".to_owned(),
        }
    }

    /// The server's message, when it refused the request.
    pub(crate) fn refusal(&self) -> Option<&str> {
        match self {
            CallError::Status { message, .. } | CallError::ErrorBody { message, .. } => {
                Some(message)
            }
            _ => None,
        }
    }
}

/// An error and its sources, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An HTTP client for one OrderShop; cheap to clone (connections are pooled
/// and reused across clones).
#[derive(Debug, Clone)]
pub(crate) struct Shop {
    http: Client,
    base: String,
    /// How long a failed call is retried (0: never).
    retry_for: Duration,
}

/// The gateway's header for a write that may be sent more than once.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Pauses between tries of a call, doubling up to the last.
const RETRY_PAUSES: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

impl CallError {
    /// Whether trying again may succeed: the shop (or the path to it) was
    /// away, not the request wrong.
    fn is_transient(&self) -> bool {
        match self {
            CallError::Transport { .. } => true,
            CallError::Status { status, .. } => matches!(status, 502..=504),
            CallError::ErrorBody { .. } | CallError::Malformed { .. } => false,
        }
    }
}

impl Shop {
    pub(crate) fn new(
        base_url: &str,
        request_timeout: Duration,
        retry_for: Duration,
    ) -> Result<Shop, reqwest::Error> {
        let http = Client::builder()
            .timeout(request_timeout)
            .tcp_nodelay(true)
            // A benchmark through a proxy measures the proxy.
            .no_proxy()
            .build()?;
        Ok(Shop {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            retry_for,
        })
    }

    /// `POST /<singular>` (sync create) with one object or a list: the new ids.
    pub(crate) async fn create(
        &self,
        recorder: &mut Recorder,
        kind: EntityKind,
        body: &Value,
    ) -> Result<Vec<String>, CallError> {
        let path = format!("/{}", kind.singular());
        let route = format!("POST {path}");
        let result = self
            .call(recorder, Method::POST, &route, &path, Some(body))
            .await?;
        let ids = result
            .as_array()
            .map(|ids| {
                ids.iter()
                    .map(|id| id.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .unwrap_or_default();
        ids.ok_or_else(|| CallError::Malformed {
            route,
            reason: format!("expected a list of ids, got {result}"),
        })
    }

    /// `GET /<singular>/<id>`: the entity, or `None` when it is unknown.
    pub(crate) async fn get(
        &self,
        recorder: &mut Recorder,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<Value>, CallError> {
        let route = format!("GET /{}/{{id}}", kind.singular());
        let path = format!("/{}/{id}", kind.singular());
        let result = self
            .call(recorder, Method::GET, &route, &path, None)
            .await?;
        Ok((!result.is_null()).then_some(result))
    }

    /// `GET /<plural>`: every entity of the kind.
    pub(crate) async fn list(
        &self,
        recorder: &mut Recorder,
        kind: EntityKind,
    ) -> Result<Vec<Value>, CallError> {
        let path = format!("/{}", kind.plural());
        let route = format!("GET {path}");
        match self
            .call(recorder, Method::GET, &route, &path, None)
            .await?
        {
            Value::Array(entities) => Ok(entities),
            other => Err(CallError::Malformed {
                route,
                reason: format!("expected a list, got {other}"),
            }),
        }
    }

    async fn call(
        &self,
        recorder: &mut Recorder,
        method: Method,
        route: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let started = Instant::now();
        // One key for every try of a write: the queue enqueues it once and
        // a retry gets the first try's answer.
        let key = (self.retry_for > Duration::ZERO && method != Method::GET)
            .then(|| uuid::Uuid::new_v4().to_string());
        let mut tries = 0;
        let outcome = loop {
            let outcome = self
                .exchange(method.clone(), route, path, body, key.as_deref())
                .await;
            match outcome {
                Err(error) if error.is_transient() && started.elapsed() < self.retry_for => {
                    tracing::debug!(%error, tries, "retrying");
                    recorder.record_retry(error.class());
                    tokio::time::sleep(RETRY_PAUSES[tries.min(RETRY_PAUSES.len() - 1)]).await;
                    tries += 1;
                }
                outcome => break outcome,
            }
        };
        recorder.record(
            route,
            started.elapsed(),
            outcome.as_ref().err().map(CallError::class),
        );
        outcome
    }

    /// One request and its whole body; the envelope checked as clients do.
    async fn exchange(
        &self,
        method: Method,
        route: &str,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, CallError> {
        let transport = |cause| CallError::Transport {
            route: route.to_owned(),
            cause,
        };
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        let envelope: Option<Value> = serde_json::from_slice(&bytes).ok();
        let error_message = envelope
            .as_ref()
            .and_then(|e| e.get("error"))
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned));
        if status != StatusCode::OK {
            return Err(CallError::Status {
                route: route.to_owned(),
                status: status.as_u16(),
                message: error_message
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
            });
        }
        if let Some(message) = error_message {
            return Err(CallError::ErrorBody {
                route: route.to_owned(),
                message,
            });
        }
        match envelope {
            Some(Value::Object(mut map)) if map.contains_key("result") => {
                Ok(map.remove("result").unwrap_or(Value::Null))
            }
            _ => Err(CallError::Malformed {
                route: route.to_owned(),
                reason: format!(
                    "expected {{\"result\": ...}}, got {}",
                    String::from_utf8_lossy(&bytes)
                ),
            }),
        }
    }
}
