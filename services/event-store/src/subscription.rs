//! The durable delivery loop behind `Subscribe`.
//!
//! Order of work: (1) this consumer's own unacked entries (it restarted, or
//! its previous stream broke), (2) on every claim interval, entries that
//! other consumers left unacked for longer than the claim timeout (they
//! died), (3) new entries, blocking briefly. Redis outages are retried with
//! backoff inside the loop, so a subscriber sees a pause, not an error.

use std::{sync::Arc, time::Duration};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{StartAt, StoreError, StreamStore, store::Delivered, validate};

/// What a subscriber asked for.
#[derive(Debug, Clone)]
pub struct SubscriptionSpec {
    pub topics: Vec<String>,
    pub group: String,
    pub consumer: String,
    pub start: StartAt,
    pub batch: usize,
    /// Topics whose heads go with every delivery.
    pub heads_of: Vec<String>,
}

impl SubscriptionSpec {
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.topics.is_empty() {
            return Err(StoreError::InvalidArgument(
                "no topics to subscribe to".into(),
            ));
        }
        for topic in &self.topics {
            validate::topic(topic)?;
        }
        for topic in &self.heads_of {
            validate::topic(topic)?;
        }
        validate::name("group", &self.group)?;
        validate::name("consumer", &self.consumer)
    }
}

/// Runs until the receiver is dropped (the client went away) or `cancel`
/// fires (shutdown). Entries delivered but not acked stay pending in Redis
/// and are redelivered, so stopping at any point loses nothing.
pub async fn run(
    store: Arc<StreamStore>,
    spec: SubscriptionSpec,
    tx: mpsc::Sender<Delivered>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::default();
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tx.closed() => return,
            r = deliver(&store, &spec, &tx, &cancel) => r,
        };
        match result {
            Ok(()) => return,
            Err(err) => {
                let pause = backoff.next();
                tracing::warn!(group = %spec.group, error = %err, ?pause, "subscription interrupted, retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

async fn deliver(
    store: &StreamStore,
    spec: &SubscriptionSpec,
    tx: &mpsc::Sender<Delivered>,
    cancel: &CancellationToken,
) -> Result<(), StoreError> {
    for topic in &spec.topics {
        store.ensure_group(topic, &spec.group, spec.start).await?;
    }
    for topic in &spec.topics {
        let mut after = "0".to_owned();
        loop {
            let batch = store
                .own_pending(topic, &spec.group, &spec.consumer, &after, spec.batch)
                .await?;
            let Some(last) = batch.last() else { break };
            after = last.event.entry_id.clone();
            let batch = with_heads(store, spec, batch).await?;
            if !send_all(tx, batch).await {
                return Ok(());
            }
        }
    }
    let config = store.config().clone();
    let mut next_claim = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        if Instant::now() >= next_claim {
            for topic in &spec.topics {
                let claimed = store
                    .claim_abandoned(topic, &spec.group, &spec.consumer, spec.batch)
                    .await?;
                let claimed = with_heads(store, spec, claimed).await?;
                if !send_all(tx, claimed).await {
                    return Ok(());
                }
            }
            next_claim = Instant::now() + config.claim_interval;
        }
        let block = config
            .block
            .min(next_claim.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1));
        let fresh = store
            .read_new(
                &spec.topics,
                &spec.group,
                &spec.consumer,
                spec.batch,
                block,
                &spec.heads_of,
            )
            .await?;
        // New entries come with their heads, read in the same round trip.
        if !send_all(tx, fresh).await {
            return Ok(());
        }
    }
}

/// Gives a replayed or claimed batch the heads the subscriber asked for,
/// read now: after the batch was, so they cover everything published before
/// its events.
async fn with_heads(
    store: &StreamStore,
    spec: &SubscriptionSpec,
    mut batch: Vec<Delivered>,
) -> Result<Vec<Delivered>, StoreError> {
    if batch.is_empty() || spec.heads_of.is_empty() {
        return Ok(batch);
    }
    let heads = Arc::new(store.heads(&spec.heads_of).await?);
    for delivery in &mut batch {
        delivery.heads = heads.clone();
    }
    Ok(batch)
}

/// Sends a batch; false when the subscriber is gone.
async fn send_all(tx: &mpsc::Sender<Delivered>, batch: Vec<Delivered>) -> bool {
    for delivery in batch {
        if tx.send(delivery).await.is_err() {
            return false;
        }
    }
    true
}

/// Exponential backoff from 50 ms to 2 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(50))
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
        now
    }
}
