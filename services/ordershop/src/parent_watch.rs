use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Children of `ordershop local` stop when their supervisor is gone, even
/// if it was killed with SIGKILL and could not tell them: no orphans.
pub(crate) fn stop_when_parent_dies(parent: u32, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if nix::unistd::getppid().as_raw() as u32 != parent {
                tracing::warn!(parent, "supervisor is gone; shutting down");
                shutdown.cancel();
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
}
