//! How the workers run: concurrency, leases, waits, and the readiness flag
//! the binary's health endpoint reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::live_view::ViewSettings;

/// Tunables of [`crate::run`]. `Default` suits production.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Handlers running at once per queue channel in one process.
    pub concurrency: usize,
    /// Per-channel overrides of `concurrency` (`"cart-service.create_carts"`).
    pub channel_concurrency: BTreeMap<String, usize>,
    /// How long a received queue message stays leased to this process.
    /// Must exceed the slowest handler, or the message is handled twice
    /// (harmless: every handler is idempotent, but wasted).
    pub lease: Duration,
    /// Long-poll time of one queue receive; bounds how fast a stop is
    /// noticed by the serving loops.
    pub receive_wait: Duration,
    /// Consumers per saga subscription in one process (`<instance>`,
    /// `<instance>-1`, ...). More than one handles events in parallel,
    /// which the sagas allow: each is idempotent and checks versions. A
    /// consumer handles its events one at a time, so this bounds a saga's
    /// throughput (order flows/s in `examples/order_flows.rs`: 46-55 with
    /// 2, 54 with 4, 73 with 8).
    pub saga_consumers: usize,
    /// Version conflicts a decision may meet before giving up with a
    /// `conflict` error (each one re-reads the store and decides again).
    pub max_conflicts: u32,
    /// How the services' views read the event store.
    pub view: ViewSettings,
    /// How long a read-model query waits for its `after` positions.
    pub read_model_wait: Duration,
    /// How long the read model runs before it removes the cache an older
    /// read model left: long enough for a rolling upgrade to retire the
    /// old replicas, which still read and write that cache meanwhile.
    pub read_model_legacy_grace: Duration,
    /// Set once the role has caught up with the event store at start.
    pub readiness: Readiness,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            channel_concurrency: BTreeMap::new(),
            lease: Duration::from_secs(30),
            receive_wait: Duration::from_secs(2),
            saga_consumers: 8,
            max_conflicts: 8,
            view: ViewSettings::default(),
            read_model_wait: Duration::from_secs(5),
            read_model_legacy_grace: Duration::from_secs(600),
            readiness: Readiness::default(),
        }
    }
}

impl Settings {
    /// Handlers at once on `channel`.
    pub fn concurrency_of(&self, channel: &str) -> usize {
        self.channel_concurrency
            .get(channel)
            .copied()
            .unwrap_or(self.concurrency)
            .max(1)
    }
}

/// A flag shared between [`crate::run`] (which sets it) and whoever
/// reports readiness. Clones share the flag.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<watch::Sender<bool>>);

impl Default for Readiness {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the flag is set.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|ready| *ready).await;
    }

    pub(crate) fn set(&self, ready: bool) {
        self.0.send_replace(ready);
    }
}
