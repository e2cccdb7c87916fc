//! The gRPC face of the event store: translation only.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use ordershop_grpc_auth::{Authenticator, Caller};
use ordershop_proto::eventstore::v1::{
    self as pb,
    event_store_server::{EventStore, EventStoreServer},
};
use ordershop_proto::snapshot_transfer;
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, service::interceptor::InterceptedService};

use crate::{
    MAX_SNAPSHOT_BYTES, NewEvent, Recorded, Refusal, Snapshot, StartAt, StreamStore,
    follow::{FollowFrom, Tails},
    subscription::{self, SubscriptionSpec},
};

/// Default deliveries per read.
const DEFAULT_BATCH: usize = 64;
/// Longest wait a tailing `Read` may ask for.
const MAX_READ_WAIT: Duration = Duration::from_secs(30);
/// Pages a follower's stream buffers before the follower waits for the
/// client to read.
const FOLLOW_BUFFER: usize = 16;

#[derive(Debug, Clone)]
pub struct EventStoreService {
    store: Arc<StreamStore>,
    tails: Arc<Tails>,
    shutdown: CancellationToken,
}

impl EventStoreService {
    /// `shutdown` ends every open subscription, so a graceful server stop
    /// does not wait for streams that never end by themselves.
    pub fn new(store: Arc<StreamStore>, shutdown: CancellationToken) -> Self {
        Self {
            tails: Tails::new(store.clone(), shutdown.clone()),
            store,
            shutdown,
        }
    }

    /// The service behind `auth`: every call is authenticated first and
    /// then authorised by its handler ([`Caller`]).
    pub fn into_server(
        self,
        auth: Authenticator,
    ) -> InterceptedService<EventStoreServer<Self>, Authenticator> {
        InterceptedService::new(
            EventStoreServer::new(self)
                .max_decoding_message_size(8 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
            auth,
        )
    }
}

impl From<Recorded> for pb::RecordedEvent {
    fn from(r: Recorded) -> Self {
        pb::RecordedEvent {
            topic: r.topic,
            entry_id: r.entry_id,
            version: r.version,
            event: Some(pb::Event {
                event_id: r.event_id,
                event_action: r.event_action,
                event_data: r.event_data,
                entity_id: r.entity_id,
                causation_id: r.causation_id,
                traceparent: r.traceparent,
            }),
        }
    }
}

/// The event to store. Its trace context is the publisher's if that is a
/// well-formed W3C `traceparent`, else this call's span (a malformed one is
/// dropped, as the W3C says, rather than refused).
fn new_event(append: pb::Append) -> NewEvent {
    let event = append.event.unwrap_or_default();
    let traceparent = if ordershop_trace::is_valid(&event.traceparent) {
        event.traceparent
    } else {
        ordershop_trace::current_traceparent()
    };
    NewEvent {
        event_id: event.event_id,
        event_action: event.event_action,
        event_data: event.event_data,
        entity_id: event.entity_id,
        causation_id: event.causation_id,
        expected_version: append.expected_version,
        traceparent,
    }
}

type DeliveryStream = Pin<Box<dyn Stream<Item = Result<pb::Delivery, Status>> + Send>>;
type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;
type PageStream = Pin<Box<dyn Stream<Item = Result<pb::FollowPage, Status>> + Send>>;
type AckAnswers = Pin<Box<dyn Stream<Item = Result<pb::AckStreamResponse, Status>> + Send>>;
/// Batches of one ack stream finished at once; answers still go out in
/// order.
const ACKS_AT_ONCE: usize = 16;

#[tonic::async_trait]
impl EventStore for EventStoreService {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.may_publish(&request.get_ref().topic)?;
        let req = request.into_inner();
        let events = req.events.into_iter().map(new_event).collect();
        let stored = self.store.publish(&req.topic, events).await?;
        Ok(Response::new(pb::PublishResponse {
            stored: stored
                .into_iter()
                .map(|s| pb::Stored {
                    entry_id: s.entry_id,
                    version: s.version,
                    duplicate: s.duplicate,
                })
                .collect(),
        }))
    }

    type SubscribeStream = DeliveryStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::of(&request)?;
        let asked = request.get_ref();
        caller.may_consume(&asked.group, asked.topics.iter().map(String::as_str))?;
        let req = request.into_inner();
        let start = match req.start() {
            pb::StartPosition::End => StartAt::End,
            pb::StartPosition::Beginning | pb::StartPosition::Unspecified => StartAt::Beginning,
        };
        let spec = SubscriptionSpec {
            topics: req.topics,
            group: req.group,
            consumer: req.consumer,
            start,
            batch: match req.batch_size {
                0 => DEFAULT_BATCH,
                n => (n as usize).min(1000),
            },
            heads_of: req.heads_of,
        };
        spec.validate()?;
        tracing::info!(group = %spec.group, consumer = %spec.consumer, topics = ?spec.topics, "subscribed");
        let (tx, rx) = mpsc::channel(spec.batch * 2);
        tokio::spawn(subscription::run(
            self.store.clone(),
            spec,
            tx,
            self.shutdown.child_token(),
        ));
        let stream = ReceiverStream::new(rx).map(|d| {
            Ok(pb::Delivery {
                event: Some(d.event.into()),
                delivery_count: d.delivery_count,
                heads: d.heads.iter().cloned().collect(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let caller = Caller::of(&request)?;
        let asked = request.get_ref();
        caller.may_consume(&asked.group, [asked.topic.as_str()])?;
        let req = request.into_inner();
        let acknowledged = self
            .store
            .ack(&req.topic, &req.group, &req.entry_ids)
            .await?;
        Ok(Response::new(pb::AckResponse {
            acknowledged: acknowledged as u32,
        }))
    }

    type AckStreamStream = AckAnswers;

    /// An `Ack` call per batch cost more CPU than the `XACK` it carries;
    /// a subscriber's acks go on one stream instead.
    async fn ack_stream(
        &self,
        request: Request<tonic::Streaming<pb::AckRequest>>,
    ) -> Result<Response<Self::AckStreamStream>, Status> {
        let caller = Caller::of(&request)?;
        let store = self.store.clone();
        let answers = request
            .into_inner()
            // A broken stream ends the answers: the subscriber acks what
            // is left by calls.
            .map_while(Result::ok)
            .map(move |req| {
                let store = store.clone();
                async move {
                    let acked = match caller.may_consume(&req.group, [req.topic.as_str()]) {
                        Ok(()) => store
                            .ack(&req.topic, &req.group, &req.entry_ids)
                            .await
                            .map_err(Status::from),
                        Err(refused) => Err(refused),
                    };
                    Ok(match acked {
                        Ok(acknowledged) => pb::AckStreamResponse {
                            acknowledged: acknowledged as u32,
                            code: Code::Ok as i32,
                            error: String::new(),
                        },
                        Err(status) => pb::AckStreamResponse {
                            acknowledged: 0,
                            code: status.code() as i32,
                            error: status.message().to_owned(),
                        },
                    })
                }
            });
        Ok(Response::new(Box::pin(futures::StreamExt::buffered(
            answers,
            ACKS_AT_ONCE,
        ))))
    }

    async fn nack(
        &self,
        request: Request<pb::NackRequest>,
    ) -> Result<Response<pb::NackResponse>, Status> {
        let caller = Caller::of(&request)?;
        let asked = request.get_ref();
        caller.may_consume(&asked.group, [asked.topic.as_str()])?;
        let req = request.into_inner();
        let dead_lettered = self
            .store
            .nack(
                &req.topic,
                &req.group,
                &req.consumer,
                &req.entry_id,
                Refusal::from_wire(req.permanent, req.retry_after_ms),
                &req.reason,
            )
            .await?;
        Ok(Response::new(pb::NackResponse { dead_lettered }))
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        Caller::of(&request)?.may_read([request.get_ref().topic.as_str()])?;
        let req = request.into_inner();
        let limit = match req.limit {
            0 => 100,
            n => n as usize,
        };
        let wait = Duration::from_millis(req.wait_ms.into()).min(MAX_READ_WAIT);
        let events = self.store.read(&req.topic, &req.after, limit, wait).await?;
        let next_after = events
            .last()
            .map(|e| e.entry_id.clone())
            .unwrap_or(req.after);
        Ok(Response::new(pb::ReadResponse {
            events: events.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }

    async fn heads(
        &self,
        request: Request<pb::HeadsRequest>,
    ) -> Result<Response<pb::HeadsResponse>, Status> {
        // Heads are entry ids only: any caller of the shop may ask.
        Caller::of(&request)?;
        let heads = self.store.heads(&request.into_inner().topics).await?;
        Ok(Response::new(pb::HeadsResponse {
            heads: heads.into_iter().collect(),
        }))
    }

    type FollowStream = PageStream;

    async fn follow(
        &self,
        request: Request<pb::FollowRequest>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        let caller = Caller::of(&request)?;
        caller.may_read(request.get_ref().topics.iter().map(|f| f.topic.as_str()))?;
        let from = FollowFrom::parse_all(
            request
                .into_inner()
                .topics
                .into_iter()
                .map(|f| (f.topic, f.after)),
        )?;
        let positions: Vec<(&str, String)> = from
            .iter()
            .map(|f| (f.topic.as_str(), f.after.cursor()))
            .collect();
        self.store.check_retained(&positions).await?;
        tracing::debug!(topics = from.len(), "follower attached");
        let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
        tokio::spawn(self.tails.clone().follow(from, tx));
        let stream = ReceiverStream::new(rx).map(|page| {
            Ok(pb::FollowPage {
                events: page.into_iter().map(Into::into).collect(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn put_snapshot(
        &self,
        request: Request<tonic::Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::PutSnapshotResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut chunks = request.into_inner();
        let header = snapshot_transfer::receive_header(&mut chunks, Code::InvalidArgument).await?;
        caller.may_snapshot(&header.name)?;
        caller.may_read(header.positions.keys().map(String::as_str))?;
        if header.size > MAX_SNAPSHOT_BYTES {
            return Err(Status::invalid_argument(format!(
                "snapshot of {} bytes exceeds the limit of {MAX_SNAPSHOT_BYTES}",
                header.size
            )));
        }
        let data = snapshot_transfer::receive_data(&mut chunks, header.size, Code::InvalidArgument)
            .await?;
        let snapshot = Snapshot {
            name: header.name,
            format: header.format,
            positions: header.positions.into_iter().collect(),
            data,
            replace_newer: header.replace_newer,
        };
        let stored = self.store.put_snapshot(&snapshot).await?;
        tracing::info!(name = %snapshot.name, bytes = snapshot.data.len(), stored, "snapshot");
        Ok(Response::new(pb::PutSnapshotResponse { stored }))
    }

    type GetSnapshotStream = SnapshotStream;

    async fn get_snapshot(
        &self,
        request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<Self::GetSnapshotStream>, Status> {
        let caller = Caller::of(&request)?;
        let name = request.into_inner().name;
        caller.may_snapshot(&name)?;
        let Some(snapshot) = self.store.get_snapshot(&name).await? else {
            return Err(Status::not_found(format!("no snapshot of {name}")));
        };
        let header = pb::SnapshotHeader {
            name: snapshot.name,
            format: snapshot.format,
            positions: snapshot.positions.into_iter().collect(),
            size: snapshot.data.len() as u64,
            replace_newer: false,
        };
        let stream = tokio_stream::iter(snapshot_transfer::parts(header, snapshot.data).map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }
}
