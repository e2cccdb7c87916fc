//! The gRPC face of the message queue: translation only.

use std::{sync::Arc, time::Duration};

use ordershop_grpc_auth::{Authenticator, Caller};
use ordershop_proto::queue::v1::{
    self as pb,
    message_queue_server::{MessageQueue, MessageQueueServer},
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming, service::interceptor::InterceptedService};

use ordershop_redis::Refusal;

use crate::{
    Message, QueueStore,
    consume::{self, Session},
    validate,
};

const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_WAIT: Duration = Duration::from_secs(5);
const MAX_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
const MAX_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct MessageQueueService {
    store: Arc<QueueStore>,
    /// Ends the pushing of every open Consume stream, so a graceful server
    /// stop is not held up by consumers that never leave.
    shutdown: CancellationToken,
}

impl MessageQueueService {
    pub fn new(store: Arc<QueueStore>, shutdown: CancellationToken) -> Self {
        Self { store, shutdown }
    }

    /// The service behind `auth`: every call is authenticated first and
    /// then authorised by its handler ([`Caller`]).
    pub fn into_server(
        self,
        auth: Authenticator,
    ) -> InterceptedService<MessageQueueServer<Self>, Authenticator> {
        InterceptedService::new(
            MessageQueueServer::new(self)
                .max_decoding_message_size(4 * 1024 * 1024)
                .max_encoding_message_size(4 * 1024 * 1024),
            auth,
        )
    }
}

/// A zero duration means "the default"; anything above the limit is capped.
fn millis(value: u32, default: Duration, max: Duration) -> Duration {
    match value {
        0 => default,
        ms => Duration::from_millis(ms.into()).min(max),
    }
}

impl From<Message> for pb::Message {
    fn from(m: Message) -> Self {
        pb::Message {
            id: m.id,
            channel: m.channel,
            payload: m.payload,
            attempt: m.attempt,
            idempotency_key: m.idempotency_key,
            enqueued_at_ms: m.enqueued_at_ms,
            traceparent: m.traceparent,
        }
    }
}

#[tonic::async_trait]
impl MessageQueue for MessageQueueService {
    type ConsumeStream = ReceiverStream<consume::Pushed>;

    async fn consume(
        &self,
        request: Request<Streaming<pb::ConsumeRequest>>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        let caller = Caller::of(&request)?;
        let mut inbound = request.into_inner();
        let Some(pb::ConsumeRequest {
            kind: Some(pb::consume_request::Kind::Open(open)),
        }) = inbound.message().await?
        else {
            return Err(Status::invalid_argument(
                "a Consume stream opens with ConsumeOpen",
            ));
        };
        caller.may_serve(&open.channel)?;
        validate::channel(&open.channel)?;
        let session = Session {
            channel: open.channel,
            consumer: open.consumer,
            lease: millis(open.lease_ms, DEFAULT_LEASE, MAX_LEASE),
            wait: millis(open.wait_ms, DEFAULT_WAIT, MAX_WAIT),
            max_in_flight: open.max_in_flight,
        };
        tracing::debug!(channel = %session.channel, consumer = %session.consumer, "consuming");
        let pushed = consume::start(self.store.clone(), session, inbound, &self.shutdown);
        Ok(Response::new(ReceiverStream::new(pushed)))
    }

    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        Caller::of(&request)?.may_send(&request.get_ref().channel)?;
        let req = request.into_inner();
        let sent = self
            .store
            .send(&req.channel, &req.payload, &req.idempotency_key)
            .await?;
        Ok(Response::new(pb::SendResponse {
            message_id: sent.message_id,
            duplicate: sent.duplicate,
        }))
    }

    async fn call(
        &self,
        request: Request<pb::CallRequest>,
    ) -> Result<Response<pb::CallResponse>, Status> {
        Caller::of(&request)?.may_send(&request.get_ref().channel)?;
        let req = request.into_inner();
        let timeout = millis(req.timeout_ms, DEFAULT_CALL_TIMEOUT, MAX_CALL_TIMEOUT);
        let (message_id, payload) = self
            .store
            .call(&req.channel, &req.payload, &req.idempotency_key, timeout)
            .await?;
        Ok(Response::new(pb::CallResponse {
            message_id,
            payload,
        }))
    }

    async fn receive(
        &self,
        request: Request<pb::ReceiveRequest>,
    ) -> Result<Response<pb::ReceiveResponse>, Status> {
        Caller::of(&request)?.may_serve(&request.get_ref().channel)?;
        let req = request.into_inner();
        let wait = millis(req.wait_ms, DEFAULT_WAIT, MAX_WAIT);
        let lease = millis(req.lease_ms, DEFAULT_LEASE, MAX_LEASE);
        let message = self.store.receive(&req.channel, wait, lease).await?;
        if let Some(m) = &message {
            tracing::debug!(channel = %m.channel, id = %m.id, consumer = %req.consumer, attempt = m.attempt, "leased");
        }
        Ok(Response::new(pb::ReceiveResponse {
            message: message.map(Into::into),
        }))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        Caller::of(&request)?.may_serve(&request.get_ref().channel)?;
        let req = request.into_inner();
        self.store.ack(&req.channel, &req.message_id).await?;
        Ok(Response::new(pb::AckResponse {}))
    }

    async fn nack(
        &self,
        request: Request<pb::NackRequest>,
    ) -> Result<Response<pb::NackResponse>, Status> {
        Caller::of(&request)?.may_serve(&request.get_ref().channel)?;
        let req = request.into_inner();
        let dead_lettered = self
            .store
            .nack(
                &req.channel,
                &req.message_id,
                Refusal::from_wire(req.permanent, req.retry_after_ms),
                &req.reason,
            )
            .await?;
        Ok(Response::new(pb::NackResponse { dead_lettered }))
    }

    async fn respond(
        &self,
        request: Request<pb::RespondRequest>,
    ) -> Result<Response<pb::RespondResponse>, Status> {
        Caller::of(&request)?.may_serve(&request.get_ref().channel)?;
        let req = request.into_inner();
        self.store
            .respond(&req.channel, &req.message_id, &req.payload)
            .await?;
        Ok(Response::new(pb::RespondResponse {}))
    }

    async fn await_response(
        &self,
        request: Request<pb::AwaitResponseRequest>,
    ) -> Result<Response<pb::AwaitResponseResponse>, Status> {
        Caller::of(&request)?.may_send(&request.get_ref().channel)?;
        let req = request.into_inner();
        let timeout = millis(req.timeout_ms, DEFAULT_CALL_TIMEOUT, MAX_CALL_TIMEOUT);
        let payload = self
            .store
            .await_response(&req.channel, &req.message_id, timeout)
            .await?;
        Ok(Response::new(pb::AwaitResponseResponse { payload }))
    }

    async fn extend_lease(
        &self,
        request: Request<pb::ExtendLeaseRequest>,
    ) -> Result<Response<pb::ExtendLeaseResponse>, Status> {
        Caller::of(&request)?.may_serve(&request.get_ref().channel)?;
        let req = request.into_inner();
        let lease = millis(req.lease_ms, DEFAULT_LEASE, MAX_LEASE);
        self.store
            .extend_lease(&req.channel, &req.message_id, lease)
            .await?;
        Ok(Response::new(pb::ExtendLeaseResponse {}))
    }
}
