//! Test support: a real redis-server with in-process event store and queue
//! servers on free loopback ports (the pattern of the client's tests), a
//! fake domain that answers queue channels with canned replies, and helpers
//! to send requests through the gateway's router.
#![allow(dead_code, unreachable_pub)]

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode, header::CONTENT_TYPE},
};
use ordershop_client::{Append, Clients, ServeOptions};
use ordershop_gateway::{GatewayConfig, GatewayState, router};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long any single expectation may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub use ordershop_testkit::Infra;

/// What gateway tests do with the infrastructure beyond the shared kit.
pub trait InfraExt {
    /// Appends one entity event and returns its entry id.
    async fn publish(&self, topic: &str, action: &str, data: Value) -> String;
}

impl InfraExt for Infra {
    async fn publish(&self, topic: &str, action: &str, data: Value) -> String {
        let entity_id = data["entity_id"].as_str().unwrap_or_default().to_owned();
        let stored = self
            .event_store()
            .publish(
                topic,
                vec![Append {
                    event_action: action.into(),
                    event_data: data.to_string(),
                    entity_id,
                    ..Default::default()
                }],
            )
            .await
            .unwrap();
        stored[0].entry_id.clone()
    }
}

/// Clients of an event store and a queue that are not there (connection
/// refused): for requests that must never reach them, and for outages.
pub fn absent_clients() -> Clients {
    Clients::connect("http://127.0.0.1:1", "http://127.0.0.1:1", "gateway-test").unwrap()
}

/// A request the fake domain received.
#[derive(Debug, Clone)]
pub struct Received {
    pub channel: String,
    pub payload: Value,
}

/// Serves queue channels like the domain services and the read model would,
/// answering with `reply(channel, payload)` (a whole envelope) and recording
/// every request. Stops on drop.
pub struct FakeDomain {
    received: mpsc::UnboundedReceiver<Received>,
    cancel: CancellationToken,
}

impl FakeDomain {
    pub fn start<F>(infra: &Infra, channels: &[&str], reply: F) -> Self
    where
        F: Fn(&str, &Value) -> Value + Send + Sync + 'static,
    {
        let (sender, received) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let reply = Arc::new(reply);
        let queue = infra.queue("fake-domain");
        for channel in channels {
            let options = ServeOptions {
                concurrency: 2,
                wait: Duration::from_millis(300),
                ..ServeOptions::new(*channel)
            };
            let sender = sender.clone();
            let reply = reply.clone();
            queue.serve(options, cancel.clone(), move |message| {
                let sender = sender.clone();
                let reply = reply.clone();
                async move {
                    let payload: Value = serde_json::from_str(&message.payload).unwrap();
                    let answer = reply(&message.channel, &payload);
                    let _ = sender.send(Received {
                        channel: message.channel,
                        payload,
                    });
                    Ok(Some(answer.to_string()))
                }
            });
        }
        Self { received, cancel }
    }

    /// The next request received, or a failure after the deadline.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(DEADLINE, self.received.recv())
            .await
            .expect("the fake domain received no request in time")
            .expect("the fake domain stopped")
    }
}

impl Drop for FakeDomain {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A gateway router over `clients`, with `config`.
pub fn gateway(clients: Clients, config: GatewayConfig) -> Router {
    router(GatewayState::new(clients, config, CancellationToken::new()))
}

/// Sends `request` through the router; the status and the JSON body (which
/// every answer but the UI assets must have).
pub async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(content_type, "application/json", "{status}: {body}");
    (status, body)
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

pub fn json_request(method: &str, path: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}
