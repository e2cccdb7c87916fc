//! Heads of the event store shared by concurrent callers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::{ClientError, EventStore};

/// Topic → head entry id, as [`EventStore::heads`] answers.
pub type Heads = Arc<HashMap<String, String>>;

/// The heads of a fixed set of topics, read one request at a time. Each
/// caller gets heads read after it asked; every caller that arrived before
/// a read started shares that read. Under load that is one heads call per
/// wave of callers instead of one per caller, for at most one extra wait.
#[derive(Debug)]
pub struct SharedHeads {
    store: EventStore,
    topics: Vec<String>,
    /// Reads started so far; a read's number is its place in that count.
    started: AtomicU64,
    /// The number and answer of the last completed read.
    last: Mutex<(u64, Heads)>,
}

impl SharedHeads {
    pub fn new(store: EventStore, topics: &[&str]) -> Self {
        Self {
            store,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            started: AtomicU64::new(0),
            last: Mutex::new((0, Heads::default())),
        }
    }

    /// Heads read after this call began.
    pub async fn current(&self) -> Result<Heads, ClientError> {
        let arrived = self.started.load(Ordering::SeqCst);
        let mut last = self.last.lock().await;
        if last.0 > arrived {
            // That read was numbered after we arrived, so it started after
            // we did: its answer is fresh enough for us.
            return Ok(last.1.clone());
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let heads = Arc::new(self.store.heads(&topics).await?);
        *last = (number, heads.clone());
        Ok(heads)
    }
}
