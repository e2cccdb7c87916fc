//! The accept loop: HTTP/1.1 and HTTP/2 with WebSocket upgrades, as
//! `axum::serve` does, plus an HTTP/1 timer so a client must send its
//! request headers within [`GatewayConfig::header_read_timeout`]
//! (`axum::serve` sets none: a client trickling a byte now and then could
//! hold a connection forever, below every other limit).
//!
//! [`GatewayConfig::header_read_timeout`]: crate::GatewayConfig

use std::time::Duration;

use axum::{Router, extract::ConnectInfo};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::GatewayError;

/// Serves `router` until `shutdown` fires; then stops accepting, lets the
/// connections finish their requests, and waits up to `grace` for them.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    grace: Duration,
    shutdown: &CancellationToken,
) -> Result<(), GatewayError> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // HTTP/2 WebSockets use extended CONNECT.
    builder.http2().enable_connect_protocol();
    let connections = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_per_connection(&err) => continue,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather
                    // than spin, as axum::serve does.
                    tracing::warn!(error = %err, "cannot accept a connection; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        // Small replies must not wait for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        // The peer address, as `axum::serve` gives it (rate limits key on it).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "some HTTP connections were still open when the grace time ran out"
        );
    }
    Ok(())
}

/// Errors of one connection that the next accept does not share.
fn is_per_connection(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
