//! TLS on a role's gRPC port, beside plaintext for probes and scrapes.
//!
//! The kubelet's gRPC probes and most Prometheus set-ups speak plaintext,
//! so one port takes both: the first byte a client sends tells a TLS
//! handshake (0x16) from anything else. Over TLS every route is served;
//! over plaintext, while TLS is on, only health and `/metrics` are, and
//! every API call is refused as `Unauthenticated` ([`plaintext_guard`]).
//! Without TLS configured, everything is plaintext as before.

use std::{
    io,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// First byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;
/// How long a new connection may take to send its first byte and, for
/// TLS, to finish its handshake: a silent peer is dropped, not waited for.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handed over but not yet taken by the server.
const BACKLOG: usize = 128;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("no certificate in the server certificate PEM")]
    NoCertificate,
    #[error("the server key PEM holds no usable private key: {0}")]
    Key(rustls::pki_types::pem::Error),
    #[error("the server certificate PEM: {0}")]
    Certificate(rustls::pki_types::pem::Error),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server side of the gRPC TLS: certificate, key, protocols.
#[derive(Clone)]
pub struct ServerTls(TlsAcceptor);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::Certificate)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::Key)?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        // gRPC needs h2; HTTP/1.1 serves `/metrics` to a scraper over TLS.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self(TlsAcceptor::from(Arc::new(config))))
    }

    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Self::from_pem(&read(cert)?, &read(key)?)
    }
}

/// What the server knows of a connection (in every request's extensions).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub remote: Option<SocketAddr>,
    /// The connection is TLS.
    pub secure: bool,
    /// The server offers TLS, so plaintext is for probes and scrapes only.
    pub tls_offered: bool,
}

/// One accepted connection, plaintext or TLS.
#[derive(Debug)]
pub struct Connection {
    io: tokio_util::either::Either<TcpStream, TlsStream<TcpStream>>,
    info: ConnectionInfo,
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The connections of `listener`, TLS ones decrypted. Accepting stops
/// when the server drops the stream.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Option<ServerTls>,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = tx.closed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of descriptors and the like: pause, do not spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Without TCP_NODELAY small replies wait for the client's
            // delayed ACK (~40 ms per call).
            let _ = stream.set_nodelay(true);
            let tx = tx.clone();
            let tls = tls.clone();
            // Per connection, so a slow handshake holds up no other.
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(stream, remote, tls)).await {
                    Ok(Ok(connection)) => {
                        let _ = tx.send(Ok(connection)).await;
                    }
                    Ok(Err(err)) => tracing::debug!(%remote, error = %err, "connection dropped"),
                    Err(_) => tracing::debug!(%remote, "connection dropped: no handshake in time"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn open(
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<ServerTls>,
) -> io::Result<Connection> {
    let plain = |stream, tls_offered| Connection {
        io: tokio_util::either::Either::Left(stream),
        info: ConnectionInfo {
            remote: Some(remote),
            secure: false,
            tls_offered,
        },
    };
    let Some(ServerTls(acceptor)) = tls else {
        return Ok(plain(stream, false));
    };
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 || first[0] != TLS_HANDSHAKE {
        return Ok(plain(stream, true));
    }
    let stream = acceptor.accept(stream).await?;
    Ok(Connection {
        io: tokio_util::either::Either::Right(stream),
        info: ConnectionInfo {
            remote: Some(remote),
            secure: true,
            tls_offered: true,
        },
    })
}

/// Paths served over plaintext while TLS is on: health (probes) and
/// metrics (scrapes). Everything else, reflection included, needs TLS.
fn open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path == "/metrics"
}

/// Refuses API calls that came over plaintext on a server that offers TLS.
pub(crate) async fn plaintext_guard(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let insecure = request
        .extensions()
        .get::<ConnectionInfo>()
        .is_some_and(|c| c.tls_offered && !c.secure);
    if insecure && !open_path(request.uri().path()) {
        return tonic::Status::unauthenticated(
            "this server takes API calls over TLS only (use https:// and its CA)",
        )
        .into_http();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_health_and_metrics_are_open_over_plaintext() {
        assert!(open_path("/grpc.health.v1.Health/Check"));
        assert!(open_path("/metrics"));
        assert!(!open_path("/ordershop.eventstore.v1.EventStore/Publish"));
        assert!(!open_path(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!open_path("/metrics/../x"));
    }
}
