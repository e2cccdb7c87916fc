//! Serving a channel on the queue's streaming consume: messages arrive
//! pushed on one stream and each outcome goes back on it, so a message
//! costs two small frames instead of a Receive and a Respond call.
//!
//! Handlers outlive a broken stream: an outcome that cannot go on the
//! stream (it broke, or the queue answered that Redis failed) goes by the
//! unary call, which retries. A queue of an earlier release, without
//! `Consume`, is served by the unary receive loops instead.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

use ordershop_proto::queue::v1::{
    self as pb, consume_request::Kind as Out, consume_response::Kind as In, outcome::Result as Res,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tracing::Instrument;

use crate::{Backoff, ClientError, HandlerError, Message, Queue, ServeOptions};

/// How long a client that found a server without one of its streams (an
/// earlier release) uses calls before it tries the stream again: during a
/// rolling upgrade the next connection may reach a server that has it.
pub(crate) const CALLS_BEFORE_RETRYING_THE_STREAM: std::time::Duration =
    std::time::Duration::from_secs(60);

/// A stream that lasted this long was a healthy one: the next reopens
/// after the shortest pause.
const LONG_LIVED: std::time::Duration = std::time::Duration::from_secs(1);

/// Outcomes sent on the stream and waiting for their `Finished`; `None`
/// once the stream ended, so a late outcome goes by a call at once.
type Pending = Arc<Mutex<Option<HashMap<String, oneshot::Sender<pb::Finished>>>>>;

/// How a stream ended.
enum Ended {
    /// This consumer stopped: nothing more to serve.
    Stopped,
    /// The queue ended it (it is stopping): open another.
    ByQueue,
}

/// Serves `options.channel` until `cancel` fires; returns once every
/// handler it started has finished its message.
pub(crate) async fn serve<H, Fut>(
    queue: Queue,
    options: ServeOptions,
    cancel: CancellationToken,
    handler: Arc<H>,
) where
    H: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<String>, HandlerError>> + Send + 'static,
{
    let concurrency = options.concurrency.max(1);
    let running = Arc::new(Semaphore::new(concurrency));
    let mut handlers = JoinSet::new();
    let mut backoff = Backoff::default();
    while !cancel.is_cancelled() {
        let session = Stream {
            queue: &queue,
            options: &options,
            running: &running,
            handler: &handler,
        };
        let opened = tokio::time::Instant::now();
        match session.run(&cancel, &mut handlers).await {
            Ok(Ended::Stopped) => break,
            Ok(Ended::ByQueue) => {
                // A queue that is stopping ends every new stream at once
                // until it stops listening: no tight loop meanwhile.
                if opened.elapsed() > LONG_LIVED {
                    backoff.reset();
                }
                if !backoff.pause(&cancel).await {
                    break;
                }
            }
            Err(err) if err.code() == Code::Unimplemented => {
                tracing::info!(channel = %options.channel, "the queue has no streaming consume; receiving by calls for a while");
                while handlers.join_next().await.is_some() {}
                let spell = cancel.child_token();
                let ends = spell.clone();
                let timer = tokio::spawn(async move {
                    tokio::time::sleep(CALLS_BEFORE_RETRYING_THE_STREAM).await;
                    ends.cancel();
                });
                let loops = (0..concurrency).map(|_| {
                    let (queue, options, spell, handler) = (
                        queue.clone(),
                        options.clone(),
                        spell.clone(),
                        handler.clone(),
                    );
                    async move { queue.serve_loop(options, spell, handler).await }
                });
                futures::future::join_all(loops).await;
                timer.abort();
            }
            Err(err) => {
                tracing::warn!(channel = %options.channel, error = %err, "consume stream failed; reopening");
                if !backoff.pause(&cancel).await {
                    break;
                }
            }
        }
    }
    while handlers.join_next().await.is_some() {}
}

/// One stream's worth of serving.
struct Stream<'a, H> {
    queue: &'a Queue,
    options: &'a ServeOptions,
    /// Handlers running: at most `concurrency`, across streams.
    running: &'a Arc<Semaphore>,
    handler: &'a Arc<H>,
}

impl<H, Fut> Stream<'_, H>
where
    H: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<String>, HandlerError>> + Send + 'static,
{
    async fn run(
        self,
        cancel: &CancellationToken,
        handlers: &mut JoinSet<()>,
    ) -> Result<Ended, ClientError> {
        let options = self.options;
        let window = options.concurrency.max(1);
        let (requests, outgoing) = mpsc::channel(window * 2 + 2);
        let open = pb::ConsumeOpen {
            channel: options.channel.clone(),
            consumer: self.queue.consumer.clone(),
            lease_ms: options.lease.as_millis() as u32,
            max_in_flight: window as u32,
            wait_ms: options.wait.as_millis() as u32,
        };
        send(&requests, Out::Open(open)).await;
        let mut client = self.queue.client.clone();
        let mut incoming = client
            .consume(ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        // Messages pushed on this stream whose `Finished` has not come.
        let mut unfinished = 0usize;
        let (mut stopping, mut drained) = (false, false);
        let ended = loop {
            if drained && unfinished == 0 {
                break Ok(if stopping {
                    Ended::Stopped
                } else {
                    Ended::ByQueue
                });
            }
            let next = tokio::select! {
                _ = cancel.cancelled(), if !stopping => {
                    stopping = true;
                    send(&requests, Out::Stop(pb::Stop {})).await;
                    continue;
                }
                next = incoming.message() => next,
            };
            match next {
                Ok(Some(pb::ConsumeResponse { kind: Some(kind) })) => match kind {
                    In::Message(message) => {
                        unfinished += 1;
                        // Waits only while handlers of a broken stream
                        // still run: the queue pushes no more than a
                        // window.
                        let permit = self
                            .running
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("never closed");
                        let one = One {
                            queue: self.queue.clone(),
                            channel: options.channel.clone(),
                            requests: requests.clone(),
                            pending: pending.clone(),
                        };
                        let handler = self.handler.clone();
                        handlers.spawn(one.handle(message, handler, permit));
                    }
                    In::Finished(finished) => {
                        unfinished = unfinished.saturating_sub(1);
                        let waiter = pending
                            .lock()
                            .expect("lock")
                            .as_mut()
                            .and_then(|waiting| waiting.remove(&finished.message_id));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(finished);
                        }
                    }
                    In::Drained(_) => drained = true,
                },
                Ok(Some(pb::ConsumeResponse { kind: None })) => {}
                Ok(None) => break Ok(Ended::ByQueue),
                Err(status) => break Err(status.into()),
            }
            // Finished handlers' tasks are reaped as they go.
            while handlers.try_join_next().is_some() {}
        };
        // Outcomes still waiting go by calls once their waiters are gone.
        pending.lock().expect("lock").take();
        ended
    }
}

async fn send(requests: &mpsc::Sender<pb::ConsumeRequest>, kind: Out) -> bool {
    requests
        .send(pb::ConsumeRequest { kind: Some(kind) })
        .await
        .is_ok()
}

/// What one pushed message's handling needs.
struct One {
    queue: Queue,
    channel: String,
    requests: mpsc::Sender<pb::ConsumeRequest>,
    pending: Pending,
}

impl One {
    async fn handle<H, Fut>(
        self,
        message: pb::Message,
        handler: Arc<H>,
        permit: OwnedSemaphorePermit,
    ) where
        H: Fn(Message) -> Fut,
        Fut: Future<Output = Result<Option<String>, HandlerError>>,
    {
        let message = Message::from(message);
        let (id, attempt) = (message.id.clone(), message.attempt);
        let span = crate::queue::handling_span(&self.channel, &message);
        async {
            let handled = handler(message).await;
            drop(permit);
            let result = match handled {
                Ok(Some(reply)) => Res::Response(reply),
                Ok(None) => Res::Done(pb::Done {}),
                Err(error) => {
                    let error = error.backed_off(attempt);
                    tracing::warn!(channel = %self.channel, id, attempt, reason = %error.reason, permanent = error.permanent, retry_after = ?error.retry_after, "message handler failed");
                    Res::Refusal(pb::Refusal {
                        retry_after_ms: error.retry_after.as_millis() as u32,
                        reason: error.reason.chars().take(512).collect(),
                        permanent: error.permanent,
                    })
                }
            };
            let finished = self.finish(&id, result).await;
            crate::queue::log_finish(&self.channel, &id, finished);
        }
        .instrument(span)
        .await
    }

    /// On the stream when it carries the outcome through; by a call
    /// otherwise.
    async fn finish(&self, id: &str, result: Res) -> Result<(), ClientError> {
        let (tell, told) = oneshot::channel();
        let waiting = match self.pending.lock().expect("lock").as_mut() {
            Some(waiting) => {
                waiting.insert(id.to_owned(), tell);
                true
            }
            None => false,
        };
        let outcome = pb::Outcome {
            message_id: id.to_owned(),
            result: Some(result.clone()),
            // Called within the handling's span.
            traceparent: ordershop_trace::current_traceparent(),
        };
        if waiting && send(&self.requests, Out::Outcome(outcome)).await {
            match told.await {
                Ok(finished) if finished.code == Code::Ok as i32 => return Ok(()),
                Ok(finished) if finished.code == Code::NotFound as i32 => {
                    return Err(Status::not_found(finished.error).into());
                }
                // Redis failed on the queue's side, or the stream broke:
                // the call retries.
                Ok(_) | Err(_) => {}
            }
        } else if let Some(waiting) = self.pending.lock().expect("lock").as_mut() {
            waiting.remove(id);
        }
        let channel = &self.channel;
        match result {
            Res::Response(reply) => self.queue.respond(channel, id, &reply).await,
            Res::Done(_) => self.queue.ack(channel, id).await,
            Res::Refusal(refusal) => {
                let error = HandlerError {
                    reason: refusal.reason,
                    retry_after: std::time::Duration::from_millis(refusal.retry_after_ms.into()),
                    permanent: refusal.permanent,
                };
                self.queue.nack(channel, id, &error).await.map(|_| ())
            }
        }
    }
}
