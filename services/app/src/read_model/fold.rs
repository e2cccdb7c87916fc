//! One fold task per topic: follows the topic from the cache's checkpoint
//! and writes each pushed page into the cache (see [`super::script`]).
//!
//! The task publishes the checkpoint it last saw in Redis, so queries can
//! wait for their `after` positions without polling Redis. It notices a
//! flushed cache (checkpoint gone or behind its cursor) when the script
//! refuses a page, when no page came for a while, and when a query pokes
//! it ([`FoldHandle::recheck`]), and then rebuilds from the checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ordershop_client::{Backoff, EventStore, Recorded, retry_until_cancelled};
use ordershop_core::Topic;
use ordershop_redis::Redis;
use ordershop_topology::ReadModelKeys;
use redis::{AsyncCommands, Script};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::read_model::script::{apply, fold_ops, fold_script};
use ordershop_topology::EntryId;

/// What queries need of a fold task.
#[derive(Debug, Clone)]
pub(crate) struct FoldHandle {
    /// The cache's checkpoint of the topic as the task last saw it.
    pub(crate) checkpoint: watch::Receiver<EntryId>,
    recheck: Arc<Notify>,
}

impl FoldHandle {
    /// Asks the task to compare its cursor with the cache now (a query
    /// found the cache behind what the task believed).
    pub(crate) fn recheck(&self) {
        self.recheck.notify_one();
    }
}

/// The fold task of one topic.
#[derive(Debug)]
pub(crate) struct Folder {
    topic: Topic,
    keys: ReadModelKeys,
    redis: Redis,
    store: EventStore,
    script: Script,
    idle_check: Duration,
    checkpoint: watch::Sender<EntryId>,
    recheck: Arc<Notify>,
    started: Instant,
    legacy_grace: Duration,
    legacy_removed: AtomicBool,
}

impl Folder {
    pub(crate) fn new(
        topic: Topic,
        redis: Redis,
        store: EventStore,
        idle_check: Duration,
        legacy_grace: Duration,
    ) -> (Folder, FoldHandle) {
        let (checkpoint, rx) = watch::channel(EntryId::ZERO);
        let recheck = Arc::new(Notify::new());
        let handle = FoldHandle {
            checkpoint: rx,
            recheck: recheck.clone(),
        };
        let folder = Folder {
            topic,
            keys: ReadModelKeys::new(topic.name()),
            redis,
            store,
            script: fold_script(),
            idle_check,
            checkpoint,
            recheck,
            started: Instant::now(),
            legacy_grace,
            legacy_removed: AtomicBool::new(false),
        };
        (folder, handle)
    }

    pub(crate) async fn run(self, cancel: CancellationToken) {
        let topic = self.topic;
        let what = format!("reading the {topic} checkpoint");
        let Some(mut cursor) =
            retry_until_cancelled(&cancel, &what, || self.stored_checkpoint()).await
        else {
            return;
        };
        tracing::info!(%topic, checkpoint = %cursor, "read model folding");
        self.checkpoint.send_replace(cursor);
        let mut backoff = Backoff::default();
        while !cancel.is_cancelled() {
            match self.follow(&mut cursor, &cancel).await {
                Ok(()) => backoff.reset(),
                Err(err) => {
                    tracing::warn!(%topic, error = %err, "folding failed; retrying");
                    if !backoff.pause(&cancel).await {
                        return;
                    }
                }
            }
        }
    }

    /// Folds pages pushed after `cursor` until cancelled, or until the
    /// cache turns out to be behind the cursor (then the cursor is moved
    /// back to the cache's checkpoint and the caller follows again from
    /// there).
    async fn follow(
        &self,
        cursor: &mut EntryId,
        cancel: &CancellationToken,
    ) -> Result<(), FoldError> {
        let mut pages = self
            .store
            .follow(&[(self.topic.name(), cursor.cursor())])
            .await?;
        loop {
            // Dropping a pending page read loses nothing: nothing applied it.
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = self.recheck.notified() => self.verify(*cursor).await?,
                _ = tokio::time::sleep(self.idle_check) => self.verify(*cursor).await?,
                page = pages.next_page() => match page? {
                    Some(records) => self.apply(*cursor, records).await?,
                    None => return Err(FoldError::Ended),
                },
            };
            let rebuild = next < *cursor;
            *cursor = next;
            if rebuild {
                return Ok(());
            }
        }
    }

    /// Applies one page after `cursor`; returns the new cursor (behind the
    /// old one when the cache was flushed). The script is one Redis call:
    /// the page is applied whole or not at all.
    async fn apply(&self, cursor: EntryId, records: Vec<Recorded>) -> Result<EntryId, FoldError> {
        let ops = fold_ops(self.topic, &records);
        let last = ops.last().map_or(cursor, |op| op.entry);
        let mut conn = self.redis.conn();
        let (applied, stored) = apply(
            &self.script,
            &mut conn,
            self.topic,
            &self.keys,
            cursor,
            &ops,
        )
        .await?;
        self.checkpoint.send_replace(stored);
        if !applied {
            tracing::warn!(topic = %self.topic, %cursor, checkpoint = %stored, "cache behind the fold (flushed?); rebuilding from its checkpoint");
            return Ok(stored);
        }
        if let Some(newest) = records.last() {
            crate::metrics::events_applied(self.topic.name(), &newest.entry_id, records.len());
        }
        tracing::trace!(topic = %self.topic, events = ops.len(), checkpoint = %stored, "page folded");
        // Another replica may be ahead: continue after whichever is further.
        Ok(last.max(stored))
    }

    /// Compares the cursor with the cache's checkpoint; a cache behind it
    /// was flushed, so the fold restarts from the cache's checkpoint.
    async fn verify(&self, cursor: EntryId) -> Result<EntryId, FoldError> {
        if !self.legacy_removed.load(Ordering::Relaxed)
            && self.started.elapsed() >= self.legacy_grace
        {
            self.remove_first_layout().await?;
            self.legacy_removed.store(true, Ordering::Relaxed);
        }
        let stored = self.stored_checkpoint().await?;
        self.checkpoint.send_replace(stored);
        if stored < cursor {
            tracing::warn!(topic = %self.topic, %cursor, checkpoint = %stored, "cache behind the fold (flushed?); rebuilding from its checkpoint");
            return Ok(stored);
        }
        Ok(cursor.max(stored))
    }

    async fn stored_checkpoint(&self) -> redis::RedisResult<EntryId> {
        let mut conn = self.redis.conn();
        let stored: Option<String> = conn.get(&self.keys.checkpoint).await?;
        Ok(stored
            .as_deref()
            .and_then(EntryId::parse)
            .unwrap_or(EntryId::ZERO))
    }

    /// Removes this topic's cache of the first layout, left by an older
    /// read model; once, at the first idle check after the grace period
    /// (before that, old replicas of a rolling upgrade may still use it).
    async fn remove_first_layout(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let removed: usize = redis::cmd("UNLINK")
            .arg(&ReadModelKeys::first_layout(self.topic.name()))
            .query_async(&mut conn)
            .await?;
        if removed > 0 {
            tracing::info!(topic = %self.topic, "removed the cache of the first layout");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum FoldError {
    #[error("event store: {0}")]
    Store(#[from] ordershop_client::ClientError),
    #[error("cache: {0}")]
    Cache(#[from] redis::RedisError),
    #[error("the event store ended the follow stream")]
    Ended,
}
