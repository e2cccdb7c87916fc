//! Acknowledgements of subscription deliveries, sent in batches.
//!
//! A consumer used to wait for one `Ack` round trip after every event
//! before taking the next. Now it hands the ack to this process's acker
//! and goes on; the acker sends everything that piled up while its
//! previous call was in flight as one call per topic and group. Under load
//! that is one call for many events; when idle it is one call per event,
//! sent at once (no timer holds acks back).
//!
//! A subscription that stops cleanly waits for its acks to leave
//! ([`Acker::flush`]). An ack that is lost otherwise (a crash before the
//! batch left, the event store unreachable) only means the entry is
//! delivered again, and every handler is idempotent.

use std::collections::BTreeMap;

use futures::future::join_all;
use ordershop_proto::eventstore::v1::event_store_client::EventStoreClient;
use tokio::sync::{mpsc, oneshot};
use tonic::Code;

use crate::{Transport, event_store::ack_entries};

/// Entries per call at most: a bound on the request size.
const MAX_BATCH: usize = 1000;

#[derive(Debug)]
enum Pending {
    Ack {
        topic: String,
        group: String,
        entry_id: String,
    },
    /// Answered once every ack queued before it has been sent.
    Flush(oneshot::Sender<()>),
}

/// Hands acks to the background task; cheap to clone. The task ends when
/// every clone is dropped and the last batch has been sent.
#[derive(Debug, Clone)]
pub(crate) struct Acker {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Acker {
    /// Must be called inside a Tokio runtime.
    pub(crate) fn spawn(client: EventStoreClient<Transport>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(client, rx));
        Self { tx }
    }

    pub(crate) fn ack(&self, topic: &str, group: &str, entry_id: &str) {
        let pending = Pending::Ack {
            topic: topic.to_owned(),
            group: group.to_owned(),
            entry_id: entry_id.to_owned(),
        };
        if self.tx.send(pending).is_err() {
            // Only after the runtime began shutting down; redelivery covers it.
            tracing::debug!(%topic, entry = %entry_id, "ack dropped: acker stopped");
        }
    }

    /// Waits until every ack queued so far has been sent (or given up).
    pub(crate) async fn flush(&self) {
        let (done, sent) = oneshot::channel();
        if self.tx.send(Pending::Flush(done)).is_ok() {
            // An error means the acker is gone: nothing left to wait for.
            let _ = sent.await;
        }
    }
}

async fn send_batches(
    client: EventStoreClient<Transport>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = rx.recv().await {
        let mut batches: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        // Answered after this batch is sent: it holds every ack before them.
        let mut flushes = Vec::new();
        let mut add = |p: Pending| match p {
            Pending::Ack {
                topic,
                group,
                entry_id,
            } => batches.entry((topic, group)).or_default().push(entry_id),
            Pending::Flush(done) => flushes.push(done),
        };
        add(first);
        let mut taken = 1;
        while taken < MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            add(next);
            taken += 1;
        }
        join_all(batches.into_iter().map(|((topic, group), ids)| {
            let client = client.clone();
            async move {
                match ack_entries(&client, &topic, &group, ids).await {
                    Ok(()) => {}
                    // Claimed by another consumer meanwhile: it did or
                    // will do the same idempotent work.
                    Err(err) if err.code() == Code::NotFound => {
                        tracing::debug!(%topic, %group, "acks after the entries were claimed elsewhere");
                    }
                    Err(err) => {
                        tracing::warn!(%topic, %group, error = %err, "acks failed; the entries will be delivered again");
                    }
                }
            }
        }))
        .await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}
