use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use ordershop_proto::eventstore::v1::{self as pb, event_store_client::EventStoreClient};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};
use tracing::Instrument;

use crate::{Credentials, Transport};

use crate::{Backoff, ClientError, HandlerError, StartPosition, acks::Acker, connect};

/// Deadline for unary calls, retries included.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// An event to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Append {
    /// UUID; leave empty to let the client make one. Make it deterministic
    /// for work that may be repeated (redelivered commands, sagas).
    pub event_id: String,
    pub event_action: String,
    pub event_data: String,
    pub entity_id: String,
    pub causation_id: String,
    pub expected_version: Option<u64>,
}

/// Where a published event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub entry_id: String,
    pub version: u64,
    pub duplicate: bool,
}

/// An event read back from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub topic: String,
    pub entry_id: String,
    pub version: u64,
    pub event_id: String,
    pub event_action: String,
    pub event_data: String,
    pub entity_id: String,
    pub causation_id: String,
    /// W3C trace context of the flow that published it; empty when untraced.
    pub traceparent: String,
}

impl From<pb::RecordedEvent> for Recorded {
    fn from(r: pb::RecordedEvent) -> Self {
        let event = r.event.unwrap_or_default();
        Self {
            topic: r.topic,
            entry_id: r.entry_id,
            version: r.version,
            event_id: event.event_id,
            event_action: event.event_action,
            event_data: event.event_data,
            entity_id: event.entity_id,
            causation_id: event.causation_id,
            traceparent: event.traceparent,
        }
    }
}

/// A durable subscription through a consumer group.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    pub topics: Vec<String>,
    /// The consumer group: the subscribing service's name.
    pub group: String,
    /// The instance inside the group (pod name).
    pub consumer: String,
    pub start: StartPosition,
    /// Topics whose heads come with every delivery ([`Delivery::heads`]),
    /// usually those of the handler's view.
    pub heads_of: Vec<String>,
}

/// One delivery of a subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Recorded,
    /// 1 on first delivery, incremented on every redelivery.
    pub count: u32,
    /// Last entry id of each topic of [`SubscribeOptions::heads_of`], read
    /// after the event was: a view that reaches them has seen everything
    /// published before the event, without a `heads` call of its own.
    pub heads: HashMap<String, String>,
}

/// Client of the event store.
#[derive(Debug, Clone)]
pub struct EventStore {
    client: EventStoreClient<Transport>,
    channel: Channel,
    /// Shared by every subscription of this client, so acks of all its
    /// consumers batch together; started by the first subscription.
    acker: Arc<OnceLock<Acker>>,
}

impl EventStore {
    pub fn connect(url: &str) -> Result<Self, ClientError> {
        Ok(Self::new(connect(url)?))
    }

    pub fn new(channel: Channel) -> Self {
        Self::with(channel, Credentials::none())
    }

    fn with(channel: Channel, credentials: Credentials) -> Self {
        Self {
            acker: Arc::default(),
            channel: channel.clone(),
            client: EventStoreClient::with_interceptor(channel, credentials)
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(8 * 1024 * 1024),
        }
    }

    /// The same connection, with every call carrying `credentials` (the
    /// role token of this process).
    pub fn with_credentials(self, credentials: Credentials) -> Self {
        Self::with(self.channel, credentials)
    }

    pub(crate) fn client(&self) -> EventStoreClient<Transport> {
        self.client.clone()
    }

    /// The server answers its health check as SERVING (it reaches Redis).
    pub async fn healthy(&self) -> bool {
        crate::health::serving(self.channel.clone()).await
    }

    /// Appends events to one topic atomically. A version conflict comes back
    /// as `Aborted`; the caller re-reads and decides again.
    pub async fn publish(
        &self,
        topic: &str,
        events: Vec<Append>,
    ) -> Result<Vec<Stored>, ClientError> {
        let request = pb::PublishRequest {
            topic: topic.to_owned(),
            events: events
                .into_iter()
                .map(|a| pb::Append {
                    event: Some(pb::Event {
                        // Fixed before the first try, so a retry after a lost
                        // reply is recognised as the same event.
                        event_id: if a.event_id.is_empty() {
                            uuid::Uuid::new_v4().to_string()
                        } else {
                            a.event_id
                        },
                        event_action: a.event_action,
                        event_data: a.event_data,
                        entity_id: a.entity_id,
                        causation_id: a.causation_id,
                        // The store stores its own call's span, a child of
                        // this one.
                        traceparent: String::new(),
                    }),
                    expected_version: a.expected_version,
                })
                .collect(),
        };
        let reply = retrying(CALL_DEADLINE, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.publish(request).await }
        })
        .await?;
        Ok(reply
            .stored
            .into_iter()
            .map(|s| Stored {
                entry_id: s.entry_id,
                version: s.version,
                duplicate: s.duplicate,
            })
            .collect())
    }

    /// One page after `after` (exclusive, "" = from the start); returns the
    /// events and the cursor for the next page. With `wait` > 0, waits that
    /// long for new events when there are none.
    pub async fn read(
        &self,
        topic: &str,
        after: &str,
        limit: u32,
        wait: Duration,
    ) -> Result<(Vec<Recorded>, String), ClientError> {
        let request = pb::ReadRequest {
            topic: topic.to_owned(),
            after: after.to_owned(),
            limit,
            wait_ms: wait.as_millis() as u32,
        };
        let reply = retrying(CALL_DEADLINE + wait, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.read(request).await }
        })
        .await?;
        Ok((
            reply.events.into_iter().map(Into::into).collect(),
            reply.next_after,
        ))
    }

    /// Everything after `after`, all pages.
    pub async fn read_all(
        &self,
        topic: &str,
        after: &str,
    ) -> Result<(Vec<Recorded>, String), ClientError> {
        let mut cursor = after.to_owned();
        let mut all = Vec::new();
        loop {
            let (page, next) = self.read(topic, &cursor, 1000, Duration::ZERO).await?;
            let full = page.len() == 1000;
            all.extend(page);
            cursor = next;
            if !full {
                return Ok((all, cursor));
            }
        }
    }

    /// Last entry id of each topic ("0-0" when empty).
    pub async fn heads(&self, topics: &[&str]) -> Result<HashMap<String, String>, ClientError> {
        let request = pb::HeadsRequest {
            topics: topics.iter().map(|t| t.to_string()).collect(),
        };
        let reply = retrying(CALL_DEADLINE, || {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.heads(request).await }
        })
        .await?;
        Ok(reply.heads)
    }

    pub async fn ack(&self, topic: &str, group: &str, entry_id: &str) -> Result<(), ClientError> {
        ack_entries(&self.client, topic, group, vec![entry_id.to_owned()]).await
    }

    pub async fn nack(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        entry_id: &str,
        error: &HandlerError,
    ) -> Result<bool, ClientError> {
        let request = pb::NackRequest {
            topic: topic.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            entry_id: entry_id.to_owned(),
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

    /// Runs `handler` for every delivery of the subscription, one at a time
    /// and in order, acking after success (batched, see `acks`) and nacking
    /// after failure, until
    /// `cancel` fires. A broken stream (event store restarted, network) is
    /// reopened with backoff; nothing is lost because unacked entries stay
    /// pending in the group and come back.
    pub fn subscribe<H, Fut>(
        &self,
        options: SubscribeOptions,
        cancel: CancellationToken,
        handler: H,
    ) -> JoinHandle<()>
    where
        H: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send,
    {
        let store = self.clone();
        let handler = Arc::new(handler);
        tokio::spawn(async move {
            let acker = store
                .acker
                .get_or_init(|| Acker::spawn(store.client.clone()))
                .clone();
            let mut backoff = Backoff::default();
            while !cancel.is_cancelled() {
                match store
                    .pump(&options, &cancel, &acker, handler.as_ref())
                    .await
                {
                    Ok(()) => backoff.reset(),
                    Err(err) => {
                        tracing::warn!(group = %options.group, error = %err, "subscription broke; resubscribing");
                        if !backoff.pause(&cancel).await {
                            break;
                        }
                    }
                }
            }
            // A clean stop sends the acks of what was handled, so a
            // restarted consumer does not handle it again.
            acker.flush().await;
        })
    }

    async fn pump<H, Fut>(
        &self,
        options: &SubscribeOptions,
        cancel: &CancellationToken,
        acker: &Acker,
        handler: &H,
    ) -> Result<(), ClientError>
    where
        H: Fn(Delivery) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        let request = pb::SubscribeRequest {
            topics: options.topics.clone(),
            group: options.group.clone(),
            consumer: options.consumer.clone(),
            start: options.start as i32,
            batch_size: 0,
            heads_of: options.heads_of.clone(),
        };
        let mut client = self.client.clone();
        let mut stream = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            s = client.subscribe(request) => s?.into_inner(),
        };
        loop {
            let delivery = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                d = stream.message() => d?,
            };
            let Some(delivery) = delivery else {
                // The server ended the stream (it is shutting down).
                return Err(ClientError::Rpc(tonic::Status::unavailable(
                    "subscription ended by the server",
                )));
            };
            let count = delivery.delivery_count;
            let Some(event) = delivery.event else {
                continue;
            };
            let event = Recorded::from(event);
            // The handling continues the publisher's trace.
            let span = tracing::info_span!(
                "handle",
                otel.name = %format_args!("handle {} {}", event.topic, event.event_action),
                otel.kind = "consumer",
                attempt = count
            );
            ordershop_trace::set_parent(&span, &event.traceparent);
            // Finish the event in hand even when cancelled: a handler
            // stopped halfway is what redelivery exists for, but there is no
            // need to cause it.
            let outcome = handler(Delivery {
                event: event.clone(),
                count,
                heads: delivery.heads,
            })
            .instrument(span)
            .await;
            match outcome {
                Ok(()) => acker.ack(&event.topic, &options.group, &event.entry_id),
                Err(error) => {
                    let error = error.backed_off(count);
                    tracing::warn!(topic = %event.topic, entry = %event.entry_id, attempt = count, reason = %error.reason, permanent = error.permanent, retry_after = ?error.retry_after, "event handler failed");
                    match self
                        .nack(
                            &event.topic,
                            &options.group,
                            &options.consumer,
                            &event.entry_id,
                            &error,
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(err) if err.code() == Code::NotFound => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }
}

/// Acknowledges entries of one topic for `group`.
pub(crate) async fn ack_entries(
    client: &EventStoreClient<Transport>,
    topic: &str,
    group: &str,
    entry_ids: Vec<String>,
) -> Result<(), ClientError> {
    let request = pb::AckRequest {
        topic: topic.to_owned(),
        group: group.to_owned(),
        entry_ids,
    };
    retrying(CALL_DEADLINE, || {
        let mut client = client.clone();
        let request = request.clone();
        async move { client.ack(request).await }
    })
    .await
    .map(|_| ())
}

/// Repeats a call on transient failures, with backoff, until `deadline`.
pub(crate) async fn retrying<T, F, Fut>(deadline: Duration, mut call: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let until = Instant::now() + deadline;
    let mut backoff = Backoff::default();
    loop {
        let attempt = tokio::time::timeout_at(until, call()).await;
        let status = match attempt {
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(status)) => status,
            Err(_) => tonic::Status::deadline_exceeded(format!("no answer within {deadline:?}")),
        };
        let err = ClientError::from(status);
        let pause = backoff.next_delay();
        if !err.is_transient() || Instant::now() + pause >= until {
            return Err(err);
        }
        tracing::debug!(error = %err, ?pause, "transient failure; retrying");
        tokio::time::sleep(pause).await;
    }
}
