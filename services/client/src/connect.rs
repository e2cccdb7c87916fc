use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::ClientError;

/// A lazily connecting channel: no I/O until the first call, and after a
/// server restart the next call reconnects by itself.
pub fn connect(url: &str) -> Result<Channel, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ClientError::InvalidEndpoint(format!("{url}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        // Keepalives notice a dead server within seconds on long-lived
        // subscription streams, instead of waiting for TCP timeouts.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}
