/// Why the gateway stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    #[error("HTTP server: {0}")]
    Serve(#[source] std::io::Error),
}
