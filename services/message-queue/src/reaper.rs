//! The background pass that returns abandoned messages to their queue.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::{QueueStore, Reaped};

/// Runs until `cancel` fires. Several queue replicas may reap at once: each
/// step is one atomic script, so they cannot move a message twice.
pub async fn run(store: Arc<QueueStore>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(store.config().reap_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.reap().await {
            Ok(Reaped {
                requeued: 0,
                due: 0,
                ..
            }) => {}
            Ok(Reaped { requeued, due, .. }) => {
                tracing::info!(requeued, due, "returned messages to their queues");
            }
            Err(err) => tracing::warn!(error = %err, "queue housekeeping failed; retrying"),
        }
    }
}
