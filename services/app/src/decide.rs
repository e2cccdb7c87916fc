//! The loop every writer runs ([`Writer::decide`]): bring the view up to
//! date, decide, append with expected versions; on a version conflict catch
//! up with the store's heads and decide again.

use std::sync::Arc;
use std::time::Duration;

use ordershop_client::{ClientError, EventStore};
use ordershop_core::{Decision, DomainError, NewEvent, Topic, View};
use tonic::Code;

use crate::codec::encode;
use crate::envelope::Positions;
use crate::live_view::{Freshness, LiveView};
use ordershop_topology::EntryId;

/// What a decision led to once its events are stored.
#[derive(Debug, Clone)]
pub(crate) struct Outcome<R> {
    pub(crate) reply: R,
    /// Where the appended events landed (empty when nothing was appended).
    pub(crate) positions: Positions,
}

/// Why a decision was not carried out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecideError {
    /// The decider refused; the text is for the client.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Others kept changing the same entities.
    #[error("gave up after {0} version conflicts; try again")]
    Conflict(u32),
    /// The event store could not be reached; worth retrying later.
    #[error("event store: {0}")]
    Store(#[from] ClientError),
}

/// What every writer shares: its view, the store it appends to, and how
/// many version conflicts a decision may meet before giving up.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    view: Arc<LiveView>,
    store: EventStore,
    max_conflicts: u32,
}

impl Writer {
    pub(crate) fn new(view: Arc<LiveView>, store: EventStore, max_conflicts: u32) -> Self {
        Self {
            view,
            store,
            max_conflicts,
        }
    }

    pub(crate) fn view(&self) -> &LiveView {
        &self.view
    }

    /// Decides on a view at least as current as `freshness` and appends
    /// the decision, retrying on version conflicts at most `max_conflicts`
    /// times (each retry on a view caught up with the store's current
    /// heads).
    pub(crate) async fn decide<R>(
        &self,
        freshness: Freshness<'_>,
        decide: impl Fn(&View) -> Result<Decision<R>, DomainError>,
    ) -> Result<Outcome<R>, DecideError> {
        let mut conflicts = 0;
        loop {
            if conflicts == 0 {
                self.view.refresh(freshness).await?;
            } else {
                self.view.catch_up().await?;
            }
            let decision = self.view.read(&decide)?;
            if decision.events.is_empty() {
                return Ok(Outcome {
                    reply: decision.reply,
                    positions: Positions::new(),
                });
            }
            match append(&self.store, &decision.events).await {
                Ok(positions) => {
                    return Ok(Outcome {
                        reply: decision.reply,
                        positions,
                    });
                }
                Err(err) if err.code() == Code::Aborted => {
                    conflicts += 1;
                    tracing::debug!(conflicts, reason = %err, "version conflict; deciding again");
                    if conflicts > self.max_conflicts {
                        return Err(DecideError::Conflict(conflicts));
                    }
                    tokio::time::sleep(jitter(conflicts)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Appends events, one atomic batch per topic, in the order given. Every
/// decider of the core writes to a single topic, so a decision is atomic.
pub(crate) async fn append(
    store: &EventStore,
    events: &[NewEvent],
) -> Result<Positions, ClientError> {
    let mut batches: Vec<(Topic, Vec<&NewEvent>)> = Vec::new();
    for event in events {
        match batches.iter_mut().find(|(t, _)| *t == event.topic) {
            Some((_, batch)) => batch.push(event),
            None => batches.push((event.topic, vec![event])),
        }
    }
    let mut positions = Positions::new();
    for (topic, batch) in batches {
        let stored = store
            .publish(topic.name(), batch.into_iter().map(encode).collect())
            .await?;
        // A duplicate reports its original entry, which may be older.
        let last = stored
            .iter()
            .filter_map(|s| Some((EntryId::parse(&s.entry_id)?, &s.entry_id)))
            .max_by_key(|(id, _)| *id);
        if let Some((_, entry)) = last {
            positions.insert(topic.name().to_string(), entry.clone());
        }
    }
    Ok(positions)
}

/// A random pause before deciding again after the `conflicts`-th conflict:
/// writers that lost to each other must not retry in lockstep, or the same
/// one keeps losing. Up to 1, 2, 4, ... ms, at most 32.
fn jitter(conflicts: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let ceiling_ms = 1u64 << conflicts.clamp(1, 6).saturating_sub(1);
    // A fresh RandomState is randomly keyed: enough randomness for a pause.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_micros(random % (ceiling_ms * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_with_conflicts_and_stay_small() {
        for conflicts in 1..20 {
            let pause = jitter(conflicts);
            let ceiling = Duration::from_millis(1 << (conflicts.min(6) - 1));
            assert!(pause < ceiling, "{conflicts}: {pause:?}");
        }
        let pauses: std::collections::HashSet<Duration> = (0..20).map(|_| jitter(6)).collect();
        assert!(pauses.len() > 1, "pauses are random");
    }
}
