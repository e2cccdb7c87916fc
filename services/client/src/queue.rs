use std::{future::Future, sync::Arc, time::Duration};

use ordershop_proto::queue::v1::{self as pb, message_queue_client::MessageQueueClient};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};
use tracing::Instrument;

use crate::{
    Backoff, ClientError, Credentials, HandlerError, Transport, connect, event_store::retrying,
};

const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Extra time the RPC deadline grants beyond the queue-side wait, so the
/// server's own timeout answers first with a clear status.
const RPC_MARGIN: Duration = Duration::from_secs(2);

/// A request received from a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub payload: String,
    pub attempt: u32,
    pub idempotency_key: String,
    /// W3C trace context of the call that sent it; empty when untraced.
    pub traceparent: String,
}

/// How a channel is served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub channel: String,
    /// Handlers running at once on this channel in this process.
    pub concurrency: usize,
    /// How long a received message stays leased; must exceed the slowest
    /// handler, or the message is redelivered while still being handled.
    pub lease: Duration,
    /// Long-poll time of one receive; bounds how fast a stop is noticed.
    pub wait: Duration,
}

impl ServeOptions {
    pub fn new(channel: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            concurrency: 4,
            lease: Duration::from_secs(10),
            wait: Duration::from_secs(2),
        }
    }
}

/// Client of the message queue.
#[derive(Debug, Clone)]
pub struct Queue {
    pub(crate) client: MessageQueueClient<Transport>,
    channel: Channel,
    pub(crate) consumer: String,
}

impl Queue {
    /// `consumer` names this instance in leases and logs (the pod name).
    pub fn connect(url: &str, consumer: impl Into<String>) -> Result<Self, ClientError> {
        Ok(Self::new(connect(url)?, consumer))
    }

    pub fn new(channel: Channel, consumer: impl Into<String>) -> Self {
        Self::with(channel, consumer.into(), Credentials::none())
    }

    fn with(channel: Channel, consumer: String, credentials: Credentials) -> Self {
        Self {
            channel: channel.clone(),
            client: MessageQueueClient::with_interceptor(channel, credentials),
            consumer,
        }
    }

    /// The same connection, with every call carrying `credentials` (the
    /// role token of this process).
    pub fn with_credentials(self, credentials: Credentials) -> Self {
        Self::with(self.channel, self.consumer, credentials)
    }

    /// The server answers its health check as SERVING (it reaches Redis).
    pub async fn healthy(&self) -> bool {
        crate::health::serving(self.channel.clone()).await
    }

    /// Enqueues a request (async call) and returns its message id. Without
    /// an idempotency key the client makes one, so its own retries after a
    /// lost reply cannot enqueue twice.
    pub async fn send(
        &self,
        channel: &str,
        payload: &str,
        idempotency_key: &str,
    ) -> Result<String, ClientError> {
        let request = pb::SendRequest {
            channel: channel.to_owned(),
            payload: payload.to_owned(),
            idempotency_key: key_or_new(idempotency_key),
        };
        let reply = retrying(CALL_DEADLINE, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.send(request).await }
        })
        .await?;
        Ok(reply.message_id)
    }

    /// Sends a request and waits up to `timeout` for its response (sync
    /// call). Retries are safe: they carry the same idempotency key and so
    /// wait for the same message's response.
    pub async fn call(
        &self,
        channel: &str,
        payload: &str,
        idempotency_key: &str,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        let request = pb::CallRequest {
            channel: channel.to_owned(),
            payload: payload.to_owned(),
            idempotency_key: key_or_new(idempotency_key),
            timeout_ms: timeout.as_millis() as u32,
        };
        let reply = retrying(timeout + RPC_MARGIN, || {
            let mut client = self.client.clone();
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(timeout + RPC_MARGIN);
            async move { client.call(request).await }
        })
        .await?;
        Ok(reply.payload)
    }

    /// Waits for the response to a message sent with [`Queue::send`].
    pub async fn await_response(
        &self,
        channel: &str,
        message_id: &str,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        let request = pb::AwaitResponseRequest {
            channel: channel.to_owned(),
            message_id: message_id.to_owned(),
            timeout_ms: timeout.as_millis() as u32,
        };
        let reply = retrying(timeout + RPC_MARGIN, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.await_response(request).await }
        })
        .await?;
        Ok(reply.payload)
    }

    /// One long-poll receive.
    pub async fn receive(
        &self,
        channel: &str,
        wait: Duration,
        lease: Duration,
    ) -> Result<Option<Message>, ClientError> {
        let request = pb::ReceiveRequest {
            channel: channel.to_owned(),
            consumer: self.consumer.clone(),
            wait_ms: wait.as_millis() as u32,
            lease_ms: lease.as_millis() as u32,
        };
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(request);
        request.set_timeout(wait + RPC_MARGIN);
        let reply = client.receive(request).await?.into_inner();
        Ok(reply.message.map(Message::from))
    }

    pub async fn ack(&self, channel: &str, message_id: &str) -> Result<(), ClientError> {
        let request = pb::AckRequest {
            channel: channel.to_owned(),
            message_id: message_id.to_owned(),
        };
        retrying(CALL_DEADLINE, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.ack(request).await }
        })
        .await
        .map(|_| ())
    }

    pub async fn nack(
        &self,
        channel: &str,
        message_id: &str,
        error: &HandlerError,
    ) -> Result<bool, ClientError> {
        let request = pb::NackRequest {
            channel: channel.to_owned(),
            message_id: message_id.to_owned(),
            retry_after_ms: error.retry_after.as_millis() as u32,
            reason: error.reason.chars().take(512).collect(),
            permanent: error.permanent,
        };
        let reply = retrying(CALL_DEADLINE, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.nack(request).await }
        })
        .await?;
        Ok(reply.dead_lettered)
    }

    pub async fn respond(
        &self,
        channel: &str,
        message_id: &str,
        payload: &str,
    ) -> Result<(), ClientError> {
        let request = pb::RespondRequest {
            channel: channel.to_owned(),
            message_id: message_id.to_owned(),
            payload: payload.to_owned(),
        };
        retrying(CALL_DEADLINE, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.respond(request).await }
        })
        .await
        .map(|_| ())
    }

    /// Serves a channel until `cancel` fires: up to `concurrency` handlers
    /// at once each get a message, run `handler`, then respond
    /// (`Ok(Some(json))`), ack (`Ok(None)`) or nack (`Err`). Messages and
    /// outcomes travel on one streaming consume (see `consume`); a queue
    /// without it is served by `concurrency` receive loops. A stop waits
    /// for handlers in progress; a message received as the stop comes is
    /// still handled.
    pub fn serve<H, Fut>(
        &self,
        options: ServeOptions,
        cancel: CancellationToken,
        handler: H,
    ) -> Vec<JoinHandle<()>>
    where
        H: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<String>, HandlerError>> + Send + 'static,
    {
        let queue = self.clone();
        let task = crate::consume::serve(queue, options, cancel, Arc::new(handler));
        vec![tokio::spawn(task)]
    }

    /// One of the receive loops that serve a queue without a streaming
    /// consume (an earlier release's).
    pub(crate) async fn serve_loop<H, Fut>(
        &self,
        options: ServeOptions,
        cancel: CancellationToken,
        handler: Arc<H>,
    ) where
        H: Fn(Message) -> Fut,
        Fut: Future<Output = Result<Option<String>, HandlerError>>,
    {
        let mut backoff = Backoff::default();
        while !cancel.is_cancelled() {
            // Not raced against `cancel`: dropping a receive in flight could
            // strand a message until its lease ran out. The wait bounds it.
            let message = match self
                .receive(&options.channel, options.wait, options.lease)
                .await
            {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(channel = %options.channel, error = %err, "receive failed; retrying");
                    if !backoff.pause(&cancel).await {
                        return;
                    }
                    continue;
                }
            };
            backoff.reset();
            let (id, attempt) = (message.id.clone(), message.attempt);
            let span = handling_span(&options.channel, &message);
            let outcome = async {
                match handler(message).await {
                    Ok(Some(reply)) => self.respond(&options.channel, &id, &reply).await,
                    Ok(None) => self.ack(&options.channel, &id).await,
                    Err(error) => {
                        let error = error.backed_off(attempt);
                        tracing::warn!(channel = %options.channel, id, attempt, reason = %error.reason, permanent = error.permanent, retry_after = ?error.retry_after, "message handler failed");
                        self.nack(&options.channel, &id, &error).await.map(|_| ())
                    }
                }
            }
            .instrument(span)
            .await;
            log_finish(&options.channel, &id, outcome);
        }
    }
}

/// The span of a message's handling, answer included: it continues the
/// sender's trace.
pub(crate) fn handling_span(channel: &str, message: &Message) -> tracing::Span {
    let span = tracing::info_span!(
        "handle",
        otel.name = %format_args!("handle {channel}"),
        otel.kind = "consumer",
        attempt = message.attempt
    );
    ordershop_trace::set_parent(&span, &message.traceparent);
    span
}

/// What became of a message's outcome, when it went wrong.
pub(crate) fn log_finish(channel: &str, id: &str, finished: Result<(), ClientError>) {
    match finished {
        Ok(()) => {}
        Err(err) if err.code() == Code::NotFound => {
            tracing::debug!(%channel, id, "message finished after its lease ran out");
        }
        Err(err) => {
            tracing::warn!(%channel, id, error = %err, "could not finish message; it will be redelivered");
        }
    }
}

impl From<pb::Message> for Message {
    fn from(m: pb::Message) -> Self {
        Message {
            id: m.id,
            channel: m.channel,
            payload: m.payload,
            attempt: m.attempt,
            idempotency_key: m.idempotency_key,
            traceparent: m.traceparent,
        }
    }
}

/// The caller's key, or one made here. Made keys start with `auto:` so the
/// queue remembers them only as long as a client retries (a minute beyond a
/// sync call's wait), not for the full idempotency window: they exist for
/// retries, nothing else.
fn key_or_new(key: &str) -> String {
    if key.is_empty() {
        format!("auto:{}", uuid::Uuid::new_v4())
    } else {
        key.to_owned()
    }
}
