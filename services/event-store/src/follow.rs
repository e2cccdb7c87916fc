//! The fan-out behind `Follow`.
//!
//! Followers (service views, the read model's cache, the gateway's live
//! push) used to long-poll `Read` each, so every new event cost one Redis
//! read and one RPC per follower. Here each topic has at most one shared
//! tail per event-store process: it reads new entries once and broadcasts
//! them as pages to every follower of the topic. A follower first replays
//! what it lacks straight from Redis, then takes the shared pages.
//!
//! Every page says after which entry it starts, so a follower notices any
//! gap between its own position and a page (it replayed less than the tail
//! had already passed, or it lagged and the broadcast dropped pages) and
//! closes it with a direct read. Events reach a follower exactly once and
//! in order, whatever the interleaving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::try_join_all;
use ordershop_topology::EntryId;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Recorded, StoreError, StreamStore, validate};

/// Entries per Redis read, for replays and for the shared tails: the most
/// a read returns, so a shorter page means the replay reached the end.
const PAGE: usize = validate::MAX_PAGE;
/// Pages a slow follower may fall behind before it replays from Redis.
const BACKLOG_PAGES: usize = 256;
/// How long a shared tail blocks in Redis per read; bounds how late it
/// notices that its last follower left.
const TAIL_BLOCK: Duration = Duration::from_secs(1);
/// Pause after a failed Redis read, before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Entries a shared tail read, all after `after`, in stream order.
#[derive(Debug)]
struct Page {
    after: EntryId,
    records: Vec<(EntryId, Recorded)>,
}

type Pages = broadcast::Sender<Arc<Page>>;

/// The shared tails of one event-store process.
#[derive(Debug)]
pub struct Tails {
    store: Arc<StreamStore>,
    topics: Mutex<HashMap<String, Pages>>,
    shutdown: CancellationToken,
}

/// Where one follower starts in one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowFrom {
    pub topic: String,
    /// Exclusive: the follower has everything up to here.
    pub after: EntryId,
}

impl FollowFrom {
    /// Checks a follow request: known-good topic names, each once, and
    /// readable positions (empty = the beginning).
    pub fn parse_all(
        requested: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<FollowFrom>, StoreError> {
        let mut from: Vec<FollowFrom> = Vec::new();
        for (topic, after) in requested {
            validate::topic(&topic)?;
            if !after.is_empty() {
                validate::entry_id(&after)?;
            }
            if from.iter().any(|f| f.topic == topic) {
                return Err(StoreError::InvalidArgument(format!(
                    "topic {topic} is asked for twice"
                )));
            }
            let after = EntryId::parse(&after).ok_or_else(|| {
                StoreError::InvalidArgument(format!("invalid entry id {after:?}"))
            })?;
            from.push(FollowFrom { topic, after });
        }
        if from.is_empty() {
            return Err(StoreError::InvalidArgument("no topics to follow".into()));
        }
        Ok(from)
    }
}

impl Tails {
    /// `shutdown` stops the tails and ends every follower.
    pub fn new(store: Arc<StreamStore>, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            store,
            topics: Mutex::new(HashMap::new()),
            shutdown,
        })
    }

    /// Sends pages of the topics in `from` to `tx` until the receiver is
    /// dropped or the process shuts down.
    pub async fn follow(self: Arc<Self>, from: Vec<FollowFrom>, tx: mpsc::Sender<Vec<Recorded>>) {
        // The first topic to end (its follower gone, or passed by
        // retention) ends them all: the client follows again and learns why.
        let topics = try_join_all(
            from.into_iter()
                .map(|f| self.follow_topic(f.topic, f.after, &tx)),
        );
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tx.closed() => {}
            _ = topics => {}
        }
    }

    /// Returns when the follower is gone, the tail stopped, or retention
    /// passed the follower (it had fallen that far behind).
    async fn follow_topic(
        self: &Arc<Self>,
        topic: String,
        mut cursor: EntryId,
        tx: &mpsc::Sender<Vec<Recorded>>,
    ) -> Result<(), Gone> {
        // Subscribed before the replay, so no page published meanwhile is
        // missed; pages the replay already covered are filtered out.
        let mut pages = self.subscribe(&topic);
        self.replay(&topic, &mut cursor, tx).await?;
        loop {
            let sent = match pages.recv().await {
                Ok(page) if page.after > cursor => self.replay(&topic, &mut cursor, tx).await,
                Ok(page) => {
                    let fresh: Vec<Recorded> = page
                        .records
                        .iter()
                        .filter(|(id, _)| *id > cursor)
                        .map(|(_, record)| record.clone())
                        .collect();
                    send(&mut cursor, fresh, tx).await
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(%topic, missed, "follower lagged; replaying from Redis");
                    self.replay(&topic, &mut cursor, tx).await
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Gone),
            };
            sent?;
        }
    }

    /// Reads from Redis after `cursor` until nothing is left, sending each
    /// page. Redis failures are retried: a follower sees a pause.
    async fn replay(
        &self,
        topic: &str,
        cursor: &mut EntryId,
        tx: &mpsc::Sender<Vec<Recorded>>,
    ) -> Result<(), Gone> {
        loop {
            let page = match self
                .store
                .read(topic, &cursor.cursor(), PAGE, Duration::ZERO)
                .await
            {
                Ok(page) => page,
                Err(err @ StoreError::Trimmed { .. }) => {
                    tracing::warn!(topic, error = %err, "follower passed by retention; ending its follow");
                    return Err(Gone);
                }
                Err(err) => {
                    tracing::warn!(topic, error = %err, "follower replay failed; retrying");
                    self.pause(tx).await?;
                    continue;
                }
            };
            let full = page.len() == PAGE;
            send(cursor, page, tx).await?;
            if !full {
                return Ok(());
            }
        }
    }

    async fn pause(&self, tx: &mpsc::Sender<Vec<Recorded>>) -> Result<(), Gone> {
        tokio::select! {
            _ = tx.closed() => Err(Gone),
            _ = self.shutdown.cancelled() => Err(Gone),
            _ = tokio::time::sleep(RETRY_PAUSE) => Ok(()),
        }
    }

    /// The topic's page broadcast; starts its tail on first use.
    fn subscribe(self: &Arc<Self>, topic: &str) -> broadcast::Receiver<Arc<Page>> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pages) = topics.get(topic) {
            return pages.subscribe();
        }
        let (pages, rx) = broadcast::channel(BACKLOG_PAGES);
        topics.insert(topic.to_owned(), pages.clone());
        tokio::spawn(self.clone().tail(topic.to_owned(), pages));
        rx
    }

    /// The shared tail of one topic: reads new entries and broadcasts them
    /// until its last follower leaves or the process shuts down.
    async fn tail(self: Arc<Self>, topic: String, pages: Pages) {
        let mut cursor: Option<EntryId> = None;
        loop {
            if self.shutdown.is_cancelled() || self.retire_if_unfollowed(&topic, &pages) {
                return;
            }
            let step = async {
                match cursor {
                    // Followers replay history themselves: start at the head.
                    None => self.head(&topic).await.map(|head| (head, Vec::new())),
                    Some(after) => {
                        let records = self
                            .store
                            .read_at_head(&topic, &after.cursor(), PAGE, TAIL_BLOCK)
                            .await?;
                        Ok((after, records))
                    }
                }
            };
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                result = step => result,
            };
            match result {
                Ok((after, records)) => {
                    let records: Vec<(EntryId, Recorded)> = records
                        .into_iter()
                        .filter_map(|r| Some((EntryId::parse(&r.entry_id)?, r)))
                        .collect();
                    cursor = Some(records.last().map_or(after, |(id, _)| *id));
                    if !records.is_empty() {
                        // No receivers is not an error: the next turn retires.
                        let _ = pages.send(Arc::new(Page { after, records }));
                    }
                }
                Err(err) => {
                    tracing::warn!(topic, error = %err, "shared tail read failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                }
            }
        }
    }

    /// Removes the topic's broadcast when nobody follows it any more. Under
    /// the same lock as [`Tails::subscribe`], so a follower arriving now
    /// either finds this tail alive or starts a new one.
    fn retire_if_unfollowed(&self, topic: &str, pages: &Pages) -> bool {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if pages.receiver_count() > 0 {
            return false;
        }
        topics.remove(topic);
        true
    }

    async fn head(&self, topic: &str) -> Result<EntryId, StoreError> {
        let heads = self.store.heads(&[topic.to_owned()]).await?;
        Ok(heads
            .first()
            .and_then(|(_, head)| EntryId::parse(head))
            .unwrap_or(EntryId::ZERO))
    }
}

/// The follower hung up or the process is stopping.
#[derive(Debug)]
struct Gone;

/// Sends a non-empty page and moves the cursor past it.
async fn send(
    cursor: &mut EntryId,
    page: Vec<Recorded>,
    tx: &mpsc::Sender<Vec<Recorded>>,
) -> Result<(), Gone> {
    let Some(last) = page.last().and_then(|r| EntryId::parse(&r.entry_id)) else {
        return Ok(());
    };
    tx.send(page).await.map_err(|_| Gone)?;
    *cursor = last;
    Ok(())
}
