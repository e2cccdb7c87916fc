/// Why the gateway stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
}
