use std::time::Duration;

use crate::rate::RateLimit;

/// How the gateway behaves. `Default` is what production runs with; tests
/// shorten the timeouts. `Debug` shows how many API tokens, never them.
#[derive(Clone)]
pub struct GatewayConfig {
    /// How long a sync command or a query waits for its reply before the
    /// client gets 504. Creates are idempotent per message, so a caller that
    /// retries after a 504 with the same `Idempotency-Key` waits for the
    /// same message instead of creating twice.
    pub call_timeout: Duration,
    /// Largest request body accepted (413 beyond). The queue refuses
    /// payloads over 1 MiB anyway.
    pub body_limit: usize,
    /// How long `/readyz` waits for the event store and for the queue.
    pub ready_timeout: Duration,
    /// Events a WebSocket client may fall behind by before it is dropped.
    pub push_buffer: usize,
    /// WebSocket clients served at once; more get 503.
    pub max_push_clients: usize,
    /// How long sending one message to a browser may take; a browser that
    /// does not read is dropped after that instead of holding memory.
    pub push_send_timeout: Duration,
    /// How long a stop waits for WebSocket clients to take their close frame.
    pub shutdown_grace: Duration,
    /// Origins (`https://shop.example.com`, or `*`) whose pages may open the
    /// live push's WebSocket besides the gateway's own pages.
    pub allowed_origins: Vec<String>,
    /// Requests handled at once; more are answered 503 with `Retry-After`
    /// at once instead of queueing without bound.
    pub max_in_flight: usize,
    /// How long a request may take to be answered, its body's upload
    /// included (408 beyond): a client that sends slowly cannot hold a
    /// handler. Above `call_timeout`, so a slow reply is still a 504.
    pub request_timeout: Duration,
    /// How long a client may take to send a request's headers, and to
    /// start the next request on a kept-alive connection: a client that
    /// trickles bytes (slowloris) cannot hold a connection longer.
    pub header_read_timeout: Duration,
    /// Bearer tokens that may use the REST API and the live push; empty:
    /// no authentication (the probes, the page and `/openapi.json` are
    /// always open).
    pub api_tokens: Vec<String>,
    /// Requests each client may make per second, and at once; `None`: no
    /// limit per client (the in-flight bound still holds).
    pub rate_limit: Option<RateLimit>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            body_limit: 1024 * 1024,
            ready_timeout: Duration::from_secs(2),
            push_buffer: 1024,
            max_push_clients: 1024,
            push_send_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            max_in_flight: 4096,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            api_tokens: Vec::new(),
            rate_limit: None,
        }
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("call_timeout", &self.call_timeout)
            .field("body_limit", &self.body_limit)
            .field("ready_timeout", &self.ready_timeout)
            .field("push_buffer", &self.push_buffer)
            .field("max_push_clients", &self.max_push_clients)
            .field("push_send_timeout", &self.push_send_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_in_flight", &self.max_in_flight)
            .field("rate_limit", &self.rate_limit)
            .field("request_timeout", &self.request_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("api_tokens", &self.api_tokens.len())
            .finish()
    }
}
