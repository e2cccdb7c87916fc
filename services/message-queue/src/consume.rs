//! The streaming consume (`Consume`): one consumer's receives, responses,
//! acks and nacks as messages on one bidirectional stream, instead of a
//! unary call each. Two gRPC calls per message (Receive, then Respond or
//! Ack) cost more CPU than the Redis work they carry; on the stream they
//! are two small frames.
//!
//! A session has two halves. The pusher leases messages and pushes them,
//! at most `max_in_flight` without an outcome; the reader finishes each
//! outcome in Redis and answers it with a `Finished`. Neither half races a
//! Redis call against a stop: a dropped `BLMOVE` could move a message to
//! the in-flight list with nobody holding its lease.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use ordershop_proto::queue::v1::{
    self as pb, consume_request::Kind as In, consume_response::Kind as Out, outcome::Result as Res,
};
use ordershop_redis::Refusal;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};
use tracing::Instrument;

use crate::{QueueError, QueueStore};

/// Messages pushed without an outcome: at most this many per stream.
pub const MAX_IN_FLIGHT: u32 = 256;
/// Waits for a message in Redis at once per stream. One at a time would
/// hand out a burst a message per two round trips, behind the consumer's
/// free handlers; as many as the window, like the receive loops of the
/// unary API, keeps it as fast as before.
const MAX_RECEIVES: usize = 16;

/// What a stream was opened for, with defaults and limits applied.
#[derive(Debug, Clone)]
pub struct Session {
    pub channel: String,
    pub consumer: String,
    pub lease: Duration,
    pub wait: Duration,
    pub max_in_flight: u32,
}

pub type Pushed = Result<pb::ConsumeResponse, Status>;

/// Runs a session until the consumer closes the stream: returns the
/// receiving end of what it pushes. `shutdown` (the server stopping) ends
/// the pushing like a `Stop` does; outcomes are still finished.
pub fn start(
    store: Arc<QueueStore>,
    session: Session,
    inbound: Streaming<pb::ConsumeRequest>,
    shutdown: &CancellationToken,
) -> mpsc::Receiver<Pushed> {
    let window = session.max_in_flight.clamp(1, MAX_IN_FLIGHT) as usize;
    // Room for a full window of messages and of answers, so neither half
    // waits on the other's backlog.
    let (out, rx) = mpsc::channel(window * 2 + 2);
    let shared = Arc::new(Shared {
        store,
        session,
        window: Semaphore::new(window),
        leased: Mutex::default(),
        out,
    });
    let stop = shutdown.child_token();
    tokio::spawn(
        shared
            .clone()
            .push_all(window.min(MAX_RECEIVES), stop.clone()),
    );
    tokio::spawn(shared.read(inbound, stop));
    rx
}

/// Why a pusher ended.
enum Pushing {
    /// A stop: what it leased was pushed.
    Stopped,
    /// The stream is gone or failed: no `Drained` to send.
    Gone,
}

struct Shared {
    store: Arc<QueueStore>,
    session: Session,
    /// One permit per message the consumer may hold without an outcome.
    window: Semaphore,
    /// Ids pushed on this stream and not yet answered: only their outcomes
    /// give a permit back (an outcome for another id is finished all the
    /// same).
    leased: Mutex<HashSet<String>>,
    out: mpsc::Sender<Pushed>,
}

impl Shared {
    /// Runs `receivers` pushers; once a stop ended them all, tells the
    /// consumer nothing follows.
    async fn push_all(self: Arc<Self>, receivers: usize, stop: CancellationToken) {
        let pushers = (0..receivers).map(|_| tokio::spawn(self.clone().push(stop.clone())));
        let mut stopped = true;
        for pusher in futures::future::join_all(pushers).await {
            stopped &= matches!(pusher, Ok(Pushing::Stopped));
        }
        if stopped {
            let drained = pb::ConsumeResponse {
                kind: Some(Out::Drained(pb::Drained {})),
            };
            let _ = self.out.send(Ok(drained)).await;
        }
    }

    async fn push(self: Arc<Self>, stop: CancellationToken) -> Pushing {
        let Session {
            channel,
            consumer,
            lease,
            wait,
            ..
        } = &self.session;
        loop {
            let permit = tokio::select! {
                biased;
                _ = stop.cancelled() => return Pushing::Stopped,
                _ = self.out.closed() => return Pushing::Gone,
                permit = self.window.acquire() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Pushing::Gone,
                },
            };
            if stop.is_cancelled() {
                return Pushing::Stopped;
            }
            let message = match self.store.receive(channel, *wait, *lease).await {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(err) => {
                    // The consumer reconnects with its backoff, as after a
                    // failed Receive.
                    let _ = self.out.send(Err(err.into())).await;
                    return Pushing::Gone;
                }
            };
            tracing::debug!(%channel, id = %message.id, %consumer, attempt = message.attempt, "leased");
            permit.forget();
            self.leased.lock().expect("lock").insert(message.id.clone());
            let pushed = pb::ConsumeResponse {
                kind: Some(Out::Message(message.into())),
            };
            if self.out.send(Ok(pushed)).await.is_err() {
                // The consumer is gone: the lease runs out and the message
                // comes back, as after a Receive whose answer was lost.
                return Pushing::Gone;
            }
        }
    }

    async fn read(
        self: Arc<Self>,
        mut inbound: Streaming<pb::ConsumeRequest>,
        stop: CancellationToken,
    ) {
        loop {
            let request = match inbound.message().await {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(channel = %self.session.channel, error = %status, "consume stream broke");
                    break;
                }
            };
            match request.kind {
                Some(In::Outcome(outcome)) => {
                    tokio::spawn(self.clone().finish(outcome));
                }
                Some(In::Stop(_)) => stop.cancel(),
                Some(In::Open(_)) | None => {
                    let refused = Status::invalid_argument(
                        "a Consume stream sends ConsumeOpen once, first, then outcomes and Stop",
                    );
                    let _ = self.out.send(Err(refused)).await;
                    break;
                }
            }
        }
        // Nobody reads what the pusher would lease from now on.
        stop.cancel();
    }

    /// Finishes one outcome in Redis and answers it.
    async fn finish(self: Arc<Self>, outcome: pb::Outcome) {
        let channel = &self.session.channel;
        let span = finish_span(&outcome);
        let id = outcome.message_id;
        if self.leased.lock().expect("lock").remove(&id) {
            self.window.add_permits(1);
        }
        let store = &self.store;
        let finished = async {
            match outcome.result {
                Some(Res::Response(payload)) => {
                    store.respond(channel, &id, &payload).await.map(|()| false)
                }
                Some(Res::Done(_)) => store.ack(channel, &id).await.map(|()| false),
                Some(Res::Refusal(refusal)) => {
                    let how = Refusal::from_wire(refusal.permanent, refusal.retry_after_ms);
                    store.nack(channel, &id, how, &refusal.reason).await
                }
                None => Err(QueueError::InvalidArgument(format!(
                    "the outcome of {id} says neither response, done nor refusal"
                ))),
            }
        }
        .instrument(span)
        .await;
        let answer = match finished {
            Ok(dead_lettered) => pb::Finished {
                message_id: id,
                code: tonic::Code::Ok as i32,
                error: String::new(),
                dead_lettered,
            },
            Err(err) => {
                let status = Status::from(err);
                pb::Finished {
                    message_id: id,
                    code: status.code() as i32,
                    error: status.message().to_owned(),
                    dead_lettered: false,
                }
            }
        };
        let _ = self
            .out
            .send(Ok(pb::ConsumeResponse {
                kind: Some(Out::Finished(answer)),
            }))
            .await;
    }
}

/// The span of finishing an outcome, named as the unary call's
/// (`MessageQueue/Respond`) and child of the handling that made it; none
/// outside a traced flow, like a call's.
fn finish_span(outcome: &pb::Outcome) -> tracing::Span {
    if outcome.traceparent.is_empty() {
        return tracing::Span::none();
    }
    let name = match outcome.result {
        Some(Res::Response(_)) => "MessageQueue/Respond",
        Some(Res::Done(_)) => "MessageQueue/Ack",
        Some(Res::Refusal(_)) | None => "MessageQueue/Nack",
    };
    let span = tracing::info_span!("grpc", otel.name = name, otel.kind = "server");
    ordershop_trace::set_parent(&span, &outcome.traceparent);
    span
}
