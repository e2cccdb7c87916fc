//! A [`View`] kept current from the event store, and brought up to the
//! store's heads before every decision.
//!
//! - At start every topic is replayed whole ([`LiveView::load`]).
//! - Then (with [`ViewSettings::follow`], the default) one follow stream
//!   for all its topics folds new events as the store pushes them, so the
//!   view is usually current already when a decision needs it.
//! - [`LiveView::catch_up`] asks the store for its heads (one round trip)
//!   and waits for the view to reach them; what the stream has not brought
//!   within [`ViewSettings::follow_grace`] (or everything, without follow)
//!   it reads itself. Concurrent callers share heads requests
//!   ([`SharedHeads`]): a caller is satisfied by any request that *started
//!   after it arrived*, so under load the number of heads calls stays at
//!   one per round trip, however many handlers wait.
//!
//! Snapshots ([`ViewSettings::snapshot_every`]): once enough events were
//! folded since the last one, the view is stored in the event store under
//! the role's service name; a (re)start loads it and replays only what came
//! after its positions, so start-up does not replay the whole history. A
//! snapshot whose last events the store no longer holds (Redis lost its
//! last writes) or of another layout is ignored: the view is replayed from
//! the start and the next snapshot replaces it.
//!
//! Events are folded strictly in stream order: a page is folded only past
//! the topic's cursor, so the stream and a direct read racing over the same
//! range fold every event once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::try_join_all;
use ordershop_client::{ClientError, EventStore, Recorded, SharedHeads};
use ordershop_core::{Topic, View};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::codec::decode;
use crate::view_snapshot;
use ordershop_topology::EntryId;

/// Tunables of a live view.
#[derive(Debug, Clone)]
pub struct ViewSettings {
    /// Keep the view current between decisions with a follow stream, so a
    /// catch-up usually needs only the heads. Without it every catch-up
    /// reads what it lacks itself: one more round trip per decision, and
    /// one read per topic that moved.
    pub follow: bool,
    /// Events per direct read.
    pub page: u32,
    /// How long a catch-up waits for the follow stream before reading by
    /// itself. Only a broken or badly delayed stream runs into it.
    pub follow_grace: Duration,
    /// How long the read model's cache folds wait between checks that the
    /// cache was not flushed under them, when no events come.
    pub idle_check: Duration,
    /// Store a snapshot of the view once this many events, and at least a
    /// quarter as many as the view holds entries ([`View::entries`]), were folded
    /// since the last one; 0 turns snapshots off (a start replays every
    /// topic whole). A restart replays at most about that many events plus
    /// what arrives in one [`Self::snapshot_check`].
    pub snapshot_every: u64,
    /// How often the snapshot task looks at that count.
    pub snapshot_check: Duration,
    /// At shutdown, how long storing a last snapshot (of what was folded
    /// since the one before) may take; beyond it the role stops without.
    /// Under Kubernetes' default 30 s grace, so a pod never gets killed
    /// for it.
    pub shutdown_snapshot_budget: Duration,
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self {
            follow: true,
            page: 1000,
            follow_grace: Duration::from_millis(500),
            idle_check: Duration::from_secs(1),
            snapshot_every: 20_000,
            snapshot_check: Duration::from_secs(5),
            shutdown_snapshot_budget: Duration::from_secs(15),
        }
    }
}

/// A snapshot is due after at least a quarter as many events as the view
/// holds entries: writing snapshots then costs a few serialized entries
/// per event folded, and a restart replays at most that quarter.
const ENTRIES_PER_EVENT_DUE: u64 = 4;

struct Folded {
    view: View,
    cursors: BTreeMap<Topic, EntryId>,
}

/// How current a view must be before a decision.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Freshness<'a> {
    /// Everything published until now: costs one heads call (shared by
    /// concurrent callers). What a command needs: its client may have
    /// seen any write that completed before it sent the command.
    Now,
    /// Everything up to these heads: those a subscription delivery came
    /// with, read after its event, so they cover everything published
    /// before the event. What a saga needs, without a call of its own.
    Heads(&'a HashMap<String, String>),
}

/// A view of some topics, shared by every handler of a service.
pub(crate) struct LiveView {
    store: EventStore,
    /// The role's service name: whose snapshot this view stores and loads.
    name: String,
    topics: Vec<Topic>,
    settings: ViewSettings,
    folded: RwLock<Folded>,
    /// Mirrors `folded.cursors` for waiters.
    positions: HashMap<Topic, watch::Sender<EntryId>>,
    /// The heads of `topics`, one request shared by concurrent callers.
    heads: SharedHeads,
    /// Fired when the store turned out to be behind this view: it lost
    /// events the view had folded (Redis restarted without its last
    /// writes). The view cannot unfold them; the role restarts instead and
    /// replays the store as it is now. Also fired when retention trimmed
    /// events this view had not folded yet: a restart starts from the
    /// snapshot that let retention go that far.
    behind_store: CancellationToken,
    /// Events folded since the view of the last snapshot; changed under
    /// the `folded` lock, so a snapshot knows exactly what it covers.
    since_snapshot: AtomicU64,
    /// The stored snapshot turned out unusable: the next one replaces it
    /// even though its positions are behind.
    replace_snapshot: AtomicBool,
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl LiveView {
    /// An empty view of `topics` (duplicates ignored).
    pub(crate) fn new(
        store: EventStore,
        name: &str,
        topics: &[Topic],
        settings: ViewSettings,
    ) -> Arc<LiveView> {
        let mut topics = topics.to_vec();
        topics.sort();
        topics.dedup();
        let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
        Arc::new(LiveView {
            heads: SharedHeads::new(store.clone(), &names),
            behind_store: CancellationToken::new(),
            since_snapshot: AtomicU64::new(0),
            replace_snapshot: AtomicBool::new(false),
            name: name.to_owned(),
            store,
            folded: RwLock::new(Folded {
                view: View::new(&topics),
                cursors: topics.iter().map(|t| (*t, EntryId::ZERO)).collect(),
            }),
            positions: topics
                .iter()
                .map(|t| (*t, watch::Sender::new(EntryId::ZERO)))
                .collect(),
            topics,
            settings,
        })
    }

    pub(crate) fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// Loads the stored snapshot when there is a usable one, then replays
    /// every topic after it (all topics at once); without one, from the
    /// beginning. Returns the number of events replayed.
    pub(crate) async fn load(&self) -> Result<usize, ClientError> {
        self.restore().await?;
        let pages = try_join_all(self.topics.iter().map(|topic| async move {
            let after = self.cursor(*topic).cursor();
            let (records, _) = self.store.read_all(topic.name(), &after).await?;
            Ok::<_, ClientError>((*topic, records))
        }))
        .await?;
        let mut events = 0;
        for (topic, records) in pages {
            events += records.len();
            self.fold_page(topic, records);
        }
        Ok(events)
    }

    /// Starts the follow task (when enabled); it stops when `cancel`
    /// fires. Call after [`LiveView::load`]: it continues from the cursors.
    pub(crate) fn spawn_follow(
        self: &Arc<Self>,
        cancel: &CancellationToken,
    ) -> Option<JoinHandle<()>> {
        if !self.settings.follow {
            return None;
        }
        let view = self.clone();
        let cancel = cancel.clone();
        Some(tokio::spawn(async move {
            let topics: Vec<&str> = view.topics.iter().map(|t| t.name()).collect();
            view.store
                .follow_forever(
                    &topics,
                    |name| {
                        Topic::from_name(name)
                            .map(|topic| view.cursor(topic).cursor())
                            .unwrap_or_default()
                    },
                    |page| view.fold_record_page(page),
                    &cancel,
                )
                .await;
        }))
    }

    /// Brings the view up to `freshness`.
    pub(crate) async fn refresh(&self, freshness: Freshness<'_>) -> Result<(), ClientError> {
        let Freshness::Heads(heads) = freshness else {
            return self.catch_up().await;
        };
        let mut targets = Vec::with_capacity(self.topics.len());
        for topic in &self.topics {
            match heads.get(topic.name()).and_then(|h| EntryId::parse(h)) {
                Some(head) => targets.push((*topic, head)),
                // The delivery did not bring this topic's head (a producer
                // that asked for other topics): ask the store.
                None => return self.catch_up().await,
            }
        }
        try_join_all(
            targets
                .into_iter()
                .map(|(topic, head)| self.reach(topic, head)),
        )
        .await?;
        Ok(())
    }

    /// Brings the view up to the store's current heads.
    pub(crate) async fn catch_up(&self) -> Result<(), ClientError> {
        // Heads read after this point cannot be older than what was folded
        // before it, unless the store lost events.
        let folded: Vec<(Topic, EntryId)> =
            self.topics.iter().map(|t| (*t, self.cursor(*t))).collect();
        let heads = self.heads.current().await?;
        let targets: Vec<(Topic, EntryId, EntryId)> = folded
            .into_iter()
            .map(|(topic, cursor)| {
                let head = heads
                    .get(topic.name())
                    .and_then(|h| EntryId::parse(h))
                    .unwrap_or(EntryId::ZERO);
                (topic, head, cursor)
            })
            .collect();
        if let Some((topic, head, cursor)) = targets.iter().find(|(_, head, cursor)| head < cursor)
        {
            tracing::error!(%topic, %head, %cursor, "the event store is behind this view: it lost events the view folded; restarting to replay it");
            self.behind_store.cancel();
            return Err(ClientError::Rpc(tonic::Status::unavailable(format!(
                "the event store lost {topic} events after {head}; the service restarts"
            ))));
        }
        try_join_all(
            targets
                .into_iter()
                .map(|(topic, head, _)| self.reach(topic, head)),
        )
        .await?;
        Ok(())
    }

    /// Waits for the follow stream to fold up to `head`, then reads what is
    /// still missing by itself.
    async fn reach(&self, topic: Topic, head: EntryId) -> Result<(), ClientError> {
        if self.settings.follow {
            let mut position = self.positions[&topic].subscribe();
            let reached = tokio::time::timeout(self.settings.follow_grace, async {
                position.wait_for(|p| *p >= head).await.is_ok()
            })
            .await
            .unwrap_or(false);
            if reached {
                return Ok(());
            }
            tracing::debug!(%topic, %head, cursor = %self.cursor(topic), "follow stream lags; reading directly");
        }
        while self.cursor(topic) < head {
            let after = self.cursor(topic).cursor();
            let read = self
                .store
                .read(topic.name(), &after, self.settings.page, Duration::ZERO)
                .await;
            let (records, _) = match read {
                Ok(page) => page,
                // Retention trimmed past this view: it fell behind the
                // snapshot another replica stored. It cannot catch up by
                // reading, but a restart can, from that snapshot.
                Err(err) if err.code() == tonic::Code::FailedPrecondition => {
                    tracing::error!(%topic, error = %err, "retention passed this view; restarting from the newest snapshot");
                    self.behind_store.cancel();
                    return Err(err);
                }
                Err(err) => return Err(err),
            };
            if records.is_empty() {
                // Nothing past the cursor although the head is further:
                // the stream was trimmed or replaced. Nothing to wait for.
                tracing::warn!(%topic, %head, cursor = %self.cursor(topic), "head is beyond the last readable event");
                break;
            }
            self.fold_page(topic, records);
        }
        Ok(())
    }

    /// Starts from the stored snapshot if it is usable: of this layout and
    /// these topics, and its last event of every topic still in the store.
    async fn restore(&self) -> Result<(), ClientError> {
        if self.settings.snapshot_every == 0 {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let snapshot = match self.store.get_snapshot(&self.name).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Ok(()),
            // Worth another try: the caller retries the whole load.
            Err(err) if err.is_transient() || err.code() == tonic::Code::DeadlineExceeded => {
                return Err(err);
            }
            // An event store without snapshots (an older one, mid-upgrade)
            // or one that refuses: the replay still works.
            Err(err) => {
                tracing::warn!(name = %self.name, error = %err, "cannot load the snapshot; replaying every topic");
                return Ok(());
            }
        };
        let bytes = snapshot.data.len();
        let topics = self.topics.clone();
        let decoded =
            tokio::task::spawn_blocking(move || view_snapshot::decode(&snapshot, &topics))
                .await
                .map_err(internal)?;
        let (view, cursors) = match decoded {
            Ok(decoded) => decoded,
            Err(err) => {
                tracing::warn!(name = %self.name, error = %err, "snapshot unusable; replaying every topic");
                self.replace_snapshot.store(true, Ordering::Relaxed);
                return Ok(());
            }
        };
        for (topic, cursor) in &cursors {
            if *cursor == EntryId::ZERO {
                continue;
            }
            let after = cursor.predecessor().cursor();
            let (page, _) = self
                .store
                .read(topic.name(), &after, 1, Duration::ZERO)
                .await?;
            if page.first().and_then(|r| EntryId::parse(&r.entry_id)) != Some(*cursor) {
                tracing::warn!(name = %self.name, %topic, %cursor, "the store no longer holds the last event the snapshot folded (Redis lost its last writes); replaying every topic");
                self.replace_snapshot.store(true, Ordering::Relaxed);
                return Ok(());
            }
        }
        let mut folded = self.folded.write().unwrap_or_else(|e| e.into_inner());
        folded.view = view;
        folded.cursors = cursors.clone();
        drop(folded);
        for (topic, cursor) in cursors {
            self.positions[&topic].send_replace(cursor);
        }
        tracing::info!(name = %self.name, bytes, elapsed = ?started.elapsed(), "view restored from its snapshot");
        Ok(())
    }

    /// Starts the task that stores a snapshot whenever one is due (see
    /// [`ViewSettings::snapshot_every`]); `None` when snapshots are off.
    pub(crate) fn spawn_snapshots(
        self: &Arc<Self>,
        cancel: &CancellationToken,
    ) -> Option<JoinHandle<()>> {
        if self.settings.snapshot_every == 0 {
            return None;
        }
        let view = self.clone();
        let cancel = cancel.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => {
                        view.snapshot_at_shutdown().await;
                        return;
                    }
                    _ = tokio::time::sleep(view.settings.snapshot_check) => {}
                }
                // A snapshot costs about what serializing every entry does;
                // waiting for events in proportion to the entries keeps
                // that cost per event folded bounded however large the
                // view grows (a fixed count would make it grow with the
                // view: quadratic over the shop's life). An event adds up
                // to three entries (record, creation, causation).
                let entries = view.read(|v| v.entries()) as u64;
                let due = view
                    .settings
                    .snapshot_every
                    .max(entries / ENTRIES_PER_EVENT_DUE);
                if view.since_snapshot.load(Ordering::Relaxed) < due {
                    continue;
                }
                // A failed one is tried again once the next one is due.
                if let Err(err) = view.snapshot().await {
                    tracing::warn!(name = %view.name, error = %err, "storing a snapshot failed");
                }
            }
        }))
    }

    /// A last snapshot of what was folded since the one before, so the
    /// next start (a rolling update, a scale-down and up again) replays
    /// nothing. None when nothing was folded since, or when the view was
    /// found ahead of the store (Redis lost writes, or retention passed
    /// it): then this view is what must not be kept.
    async fn snapshot_at_shutdown(self: &Arc<Self>) {
        if self.since_snapshot.load(Ordering::Relaxed) == 0 || self.behind_store.is_cancelled() {
            return;
        }
        match tokio::time::timeout(self.settings.shutdown_snapshot_budget, self.snapshot()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(name = %self.name, error = %err, "storing a snapshot at shutdown failed; the next start replays what came after the last one");
            }
            Err(_) => {
                tracing::warn!(name = %self.name, budget = ?self.settings.shutdown_snapshot_budget, "storing a snapshot at shutdown took too long; the next start replays what came after the last one");
            }
        }
    }

    /// Stores a snapshot of the view as it is now. The view is locked only
    /// while it is serialized (reads go on, folds wait, and so does a
    /// decision that must catch up first); compression and the transfer
    /// run after.
    async fn snapshot(self: &Arc<Self>) -> Result<bool, ClientError> {
        let started = std::time::Instant::now();
        let view = self.clone();
        let (encoded, covered, locked) = tokio::task::spawn_blocking(move || {
            let folded = view.folded.read().unwrap_or_else(|e| e.into_inner());
            let locked = std::time::Instant::now();
            let covered = view.since_snapshot.load(Ordering::Relaxed);
            let encoded = view_snapshot::encode(&folded.view, &folded.cursors);
            drop(folded);
            let locked = locked.elapsed();
            (
                encoded.map(view_snapshot::Encoded::compress),
                covered,
                locked,
            )
        })
        .await
        .map_err(internal)?;
        let mut snapshot = encoded.map_err(internal)?;
        snapshot.replace_newer = self.replace_snapshot.load(Ordering::Relaxed);
        let bytes = snapshot.data.len();
        // Only what this snapshot covers is off the count, and off it even
        // if storing fails: a refused one (a replica stored a newer one)
        // covers it just as well, and a failing store (Redis full) must not
        // have the view serialized again at every check.
        self.since_snapshot.fetch_sub(covered, Ordering::Relaxed);
        let stored = self.store.put_snapshot(&self.name, snapshot).await?;
        self.replace_snapshot.store(false, Ordering::Relaxed);
        tracing::info!(name = %self.name, bytes, events = covered, stored, elapsed = ?started.elapsed(), ?locked, "snapshot of the view");
        Ok(stored)
    }

    /// Fires when the store is found behind this view ([`Self::catch_up`]).
    pub(crate) fn behind_store(&self) -> &CancellationToken {
        &self.behind_store
    }

    /// Notifies of every fold into `topic` from now on.
    pub(crate) fn watch(&self, topic: Topic) -> Option<watch::Receiver<EntryId>> {
        Some(self.positions.get(&topic)?.subscribe())
    }

    /// Runs `f` on the current view. Keep it short and synchronous: every
    /// fold waits for it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        let folded = self.folded.read().unwrap_or_else(|e| e.into_inner());
        f(&folded.view)
    }

    /// The last entry folded for `topic`.
    pub(crate) fn cursor(&self, topic: Topic) -> EntryId {
        let folded = self.folded.read().unwrap_or_else(|e| e.into_inner());
        folded.cursors.get(&topic).copied().unwrap_or(EntryId::ZERO)
    }

    /// Folds a pushed page (all of one topic).
    fn fold_record_page(&self, page: Vec<Recorded>) {
        let Some(topic) = page.first().and_then(|r| Topic::from_name(&r.topic)) else {
            return;
        };
        self.fold_page(topic, page);
    }

    /// Folds the events of a page that lie past the topic's cursor.
    fn fold_page(&self, topic: Topic, records: Vec<Recorded>) {
        if records.is_empty() {
            return;
        }
        // Decode outside the lock: handlers read the view meanwhile.
        let decoded: Vec<(EntryId, Option<_>)> = records
            .iter()
            .filter_map(|record| {
                let Some(entry) = EntryId::parse(&record.entry_id) else {
                    tracing::error!(%topic, entry = %record.entry_id, "event with an unreadable entry id skipped");
                    return None;
                };
                let event = decode(record)
                    .inspect_err(|err| tracing::error!(%topic, error = %err, "unreadable event skipped"))
                    .ok();
                Some((entry, event))
            })
            .collect();
        let mut folded = self.folded.write().unwrap_or_else(|e| e.into_inner());
        let Folded { view, cursors } = &mut *folded;
        let Some(cursor) = cursors.get_mut(&topic) else {
            return;
        };
        let mut applied = 0usize;
        for (entry, event) in decoded {
            if entry <= *cursor {
                continue;
            }
            *cursor = entry;
            self.since_snapshot.fetch_add(1, Ordering::Relaxed);
            if let Some(event) = event {
                applied += 1;
                if let Err(err) = view.apply(&event) {
                    tracing::error!(%topic, error = %err, "event folded without its data");
                }
            }
        }
        let now = *cursor;
        drop(folded);
        if applied > 0 {
            tracing::trace!(%topic, applied, position = %now, "folded");
        }
        // Two folds may finish in either order; the mirror only moves on.
        self.positions[&topic].send_if_modified(|p| {
            let moved = now > *p;
            if moved {
                *p = now;
            }
            moved
        });
    }
}

/// A failure inside this process (a task that panicked, a view that would
/// not serialize), reported like the store's own internal errors.
fn internal(err: impl std::fmt::Display) -> ClientError {
    ClientError::Rpc(tonic::Status::internal(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, entry: &str, id: &str, version: u64) -> Recorded {
        Recorded {
            topic: topic.into(),
            entry_id: entry.into(),
            version,
            event_id: format!("ev-{entry}"),
            event_action: if version == 1 {
                "entity_created"
            } else {
                "entity_updated"
            }
            .into(),
            event_data: serde_json::json!({"entity_id": id, "name": format!("n{version}"), "email": "a@b.c"})
                .to_string(),
            entity_id: id.into(),
            causation_id: String::new(),
            traceparent: String::new(),
        }
    }

    fn view() -> Arc<LiveView> {
        // The store is never called in these tests: connecting is lazy.
        let store = EventStore::connect("http://127.0.0.1:1").expect("lazy endpoint");
        LiveView::new(store, "test", &[Topic::Customer], ViewSettings::default())
    }

    #[tokio::test]
    async fn overlapping_pages_fold_each_event_once() {
        let view = view();
        view.fold_page(
            Topic::Customer,
            vec![
                record("customer", "1-0", "c1", 1),
                record("customer", "2-0", "c1", 2),
            ],
        );
        // A second reader that started earlier delivers an overlapping page.
        view.fold_page(
            Topic::Customer,
            vec![
                record("customer", "2-0", "c1", 2),
                record("customer", "3-0", "c1", 3),
            ],
        );
        assert_eq!(view.cursor(Topic::Customer), "3-0".parse().unwrap());
        assert_eq!(view.read(|v| v.version(Topic::Customer, "c1")), 3);
    }

    #[tokio::test]
    async fn unreadable_events_still_move_the_cursor() {
        let view = view();
        let mut bad = record("customer", "9-0", "c1", 1);
        bad.event_data = "not json".into();
        view.fold_page(Topic::Customer, vec![bad]);
        assert_eq!(view.cursor(Topic::Customer), "9-0".parse().unwrap());
        assert_eq!(view.read(|v| v.version(Topic::Customer, "c1")), 0);
    }
}
