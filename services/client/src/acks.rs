//! Acknowledgements of subscription deliveries, sent in batches.
//!
//! A consumer used to wait for one `Ack` round trip after every event
//! before taking the next. Now it hands the ack to this process's acker
//! and goes on; the acker sends everything that piled up while its
//! previous call was in flight as one call per topic and group. Under load
//! that is one call for many events; when idle it is one call per event,
//! sent at once (no timer holds acks back).
//!
//! The batches go on one `AckStream` per process, answered in order,
//! instead of an `Ack` call each: a call cost more CPU than the `XACK` it
//! carried. What the stream cannot carry (it broke, it timed out, Redis
//! failed on the event store's side) goes by the call, which retries; an
//! event store without the stream (an earlier release) gets calls only.
//!
//! A subscription that stops cleanly waits for its acks to leave
//! ([`Acker::flush`]). An ack that is lost otherwise (a crash before the
//! batch left, the event store unreachable) only means the entry is
//! delivered again, and every handler is idempotent.

use std::{collections::BTreeMap, time::Duration};

use futures::future::join_all;
use ordershop_proto::eventstore::v1::{self as pb, event_store_client::EventStoreClient};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

use crate::{Transport, consume::CALLS_BEFORE_RETRYING_THE_STREAM, event_store::ack_entries};

/// How long the stream may take to answer a round of batches before they
/// go by calls.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

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
    let mut stream = AckStream {
        client: client.clone(),
        open: None,
        unsupported: None,
    };
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
        let batches: Vec<pb::AckRequest> = batches
            .into_iter()
            .map(|((topic, group), entry_ids)| pb::AckRequest {
                topic,
                group,
                entry_ids,
            })
            .collect();
        let by_calls = stream.ack(batches).await;
        join_all(by_calls.into_iter().map(|batch| {
            let client = client.clone();
            async move {
                let (topic, group) = (batch.topic, batch.group);
                let outcome = ack_entries(&client, &topic, &group, batch.entry_ids).await;
                let error = outcome.as_ref().err().map(ToString::to_string);
                let code = outcome.map_err(|err| err.code());
                report(&topic, &group, code, &error.unwrap_or_default());
            }
        }))
        .await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Logs what became of a batch that was not acknowledged.
fn report(topic: &str, group: &str, outcome: Result<(), Code>, error: &str) {
    match outcome {
        Ok(()) => {}
        // Claimed by another consumer meanwhile: it did or will do the
        // same idempotent work.
        Err(Code::NotFound) => {
            tracing::debug!(%topic, %group, "acks after the entries were claimed elsewhere");
        }
        Err(_) => {
            tracing::warn!(%topic, %group, %error, "acks failed; the entries will be delivered again");
        }
    }
}

/// This process's ack stream: opened on first use and again after it
/// broke.
struct AckStream {
    client: EventStoreClient<Transport>,
    open: Option<Open>,
    /// When the event store was found without `AckStream`: calls only,
    /// until it is tried again (a rolling upgrade may have replaced it).
    unsupported: Option<tokio::time::Instant>,
}

struct Open {
    requests: mpsc::Sender<pb::AckRequest>,
    answers: Streaming<pb::AckStreamResponse>,
}

impl AckStream {
    /// Sends `batches` on the stream and reads their answers; returns the
    /// batches to send by calls instead.
    async fn ack(&mut self, batches: Vec<pb::AckRequest>) -> Vec<pb::AckRequest> {
        let Some(mut open) = self.take_or_open().await else {
            return batches;
        };
        for batch in &batches {
            if open.requests.send(batch.clone()).await.is_err() {
                return batches;
            }
        }
        let mut by_calls = Vec::new();
        for (index, batch) in batches.iter().enumerate() {
            let answer = tokio::time::timeout(ANSWER_DEADLINE, open.answers.message()).await;
            let Ok(Ok(Some(answer))) = answer else {
                // Broke or stuck: this and the rest are sent again by
                // calls (acking twice is harmless), on a new stream next
                // time.
                tracing::debug!(topic = %batch.topic, "ack stream lost; acking by calls");
                by_calls.extend(batches[index..].iter().cloned());
                return by_calls;
            };
            match Code::from(answer.code) {
                Code::Unavailable | Code::Unknown | Code::DeadlineExceeded => {
                    by_calls.push(batch.clone());
                }
                code => report(
                    &batch.topic,
                    &batch.group,
                    if code == Code::Ok { Ok(()) } else { Err(code) },
                    &answer.error,
                ),
            }
        }
        self.open = Some(open);
        by_calls
    }

    async fn take_or_open(&mut self) -> Option<Open> {
        if self
            .unsupported
            .is_some_and(|since| since.elapsed() < CALLS_BEFORE_RETRYING_THE_STREAM)
        {
            return None;
        }
        if let Some(open) = self.open.take() {
            return Some(open);
        }
        let (requests, outgoing) = mpsc::channel(64);
        let mut client = self.client.clone();
        match client.ack_stream(ReceiverStream::new(outgoing)).await {
            Ok(answers) => Some(Open {
                requests,
                answers: answers.into_inner(),
            }),
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::info!("the event store has no ack stream; acking by calls for a while");
                self.unsupported = Some(tokio::time::Instant::now());
                None
            }
            Err(status) => {
                tracing::debug!(error = %status, "cannot open the ack stream; acking by calls");
                None
            }
        }
    }
}
