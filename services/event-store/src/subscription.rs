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
            if !send_all(store, spec, tx, batch).await? {
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
                if !send_all(store, spec, tx, claimed).await? {
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
        if !send_all(store, spec, tx, fresh).await? {
            return Ok(());
        }
    }
}

/// Sends a batch with the heads the subscriber asked for: those read with
/// the batch (new entries), else read now. Either way after the batch was,
/// so they cover everything published before its events. False when the
/// subscriber is gone.
async fn send_all(
    store: &StreamStore,
    spec: &SubscriptionSpec,
    tx: &mpsc::Sender<Delivered>,
    batch: Vec<Delivered>,
) -> Result<bool, StoreError> {
    if batch.is_empty() {
        return Ok(true);
    }
    // A batch read with its heads has one per asked topic; the others have
    // none (and nothing to read when none were asked for).
    let heads = if batch[0].heads.len() == spec.heads_of.len() {
        batch[0].heads.clone()
    } else {
        Arc::new(store.heads(&spec.heads_of).await?)
    };
    for mut delivery in batch {
        delivery.heads = heads.clone();
        if tx.send(delivery).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
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
