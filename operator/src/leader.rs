//! Leader election on a `coordination.k8s.io` Lease, so two replicas are
//! safe: only the holder reconciles; a standby takes over once the holder's
//! Lease lapses (crash) or is released (graceful shutdown).

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a holder's Lease stays valid after its last renewal.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

/// Participation in the election.
#[derive(Debug)]
pub struct Election {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// How waiting for leadership ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Leading,
    ShutDown,
}

impl Election {
    /// Joins the election (creating the Lease if needed).
    pub async fn join(client: Client, settings: &LeaseSettings) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, settings.name.clone())
            .with_namespace(settings.namespace.clone())
            .with_identity(settings.identity.clone())
            .with_duration(settings.duration.as_secs().max(1))
            .with_grace(settings.grace.as_secs().max(1))
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Self { leading, task })
    }

    /// Waits until this replica leads, or `shutdown` fires.
    pub async fn wait_for_leadership(&mut self, shutdown: &CancellationToken) -> Outcome {
        loop {
            if *self.leading.borrow_and_update() {
                return Outcome::Leading;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Outcome::ShutDown,
                changed = self.leading.changed() => {
                    if changed.is_err() {
                        // The lease task ended (it logs why); no leadership
                        // will come from it.
                        warn!("leader election task ended while waiting");
                        shutdown.cancelled().await;
                        return Outcome::ShutDown;
                    }
                }
            }
        }
    }

    /// A token cancelled when leadership is lost (or `parent` is cancelled).
    pub fn lost_token(&self, parent: &CancellationToken) -> CancellationToken {
        let lost = parent.child_token();
        let mut leading = self.leading.clone();
        let token = lost.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    changed = leading.changed() => {
                        if changed.is_err() || !*leading.borrow_and_update() {
                            warn!("leadership lost");
                            token.cancel();
                            return;
                        }
                    }
                }
            }
        });
        lost
    }

    /// Leaves the election, releasing the Lease if held so a standby takes
    /// over at once instead of after the Lease duration.
    pub async fn resign(self) {
        let Self { leading, task } = self;
        drop(leading);
        match task.await {
            Ok(Ok(_)) => info!("leader Lease released"),
            Ok(Err(error)) => warn!(%error, "could not release the leader Lease"),
            Err(error) => warn!(%error, "leader election task failed"),
        }
    }
}
