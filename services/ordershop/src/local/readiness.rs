use std::{net::SocketAddr, time::Duration};

use anyhow::bail;
use ordershop_client::{EventStore, Queue};
use ordershop_topology::Role;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::children::Supervisor;

const STARTUP: Duration = Duration::from_secs(60);

/// Waits until the event store and the queue report SERVING.
pub(super) async fn wait_grpc_infra(
    supervisor: &Supervisor,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let store = EventStore::connect(&supervisor.url_of(Role::EventStore))?;
    let queue = Queue::connect(&supervisor.url_of(Role::MessageQueue), "local")?;
    poll("event store and message queue", shutdown, || {
        let (store, queue) = (store.clone(), queue.clone());
        async move { store.healthy().await && queue.healthy().await }
    })
    .await
}

/// Waits until the gateway's `/readyz` answers 200.
pub(super) async fn wait_http(
    addr: SocketAddr,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let target = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    poll("the API gateway", shutdown, || async move {
        http_ok(target).await
    })
    .await
}

/// A minimal HTTP/1.0 probe: no client library needed for one GET.
async fn http_ok(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head.ends_with(b"200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

async fn poll<F, Fut>(what: &str, shutdown: &CancellationToken, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tracing::info!("waiting for {what}");
    let deadline = Instant::now() + STARTUP;
    loop {
        if check().await {
            tracing::info!("{what}: ready");
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what} not ready after {STARTUP:?}; see the log lines above");
        }
        tokio::select! {
            _ = shutdown.cancelled() => bail!("stopped while waiting for {what}"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
