//! The queue's streaming consume, spoken directly and through
//! `Queue::serve`, against a real redis-server.

mod support;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use ordershop_client::{Credentials, Queue, ServeOptions};
use ordershop_grpc_auth::{Authenticator, GrpcKey};
use ordershop_message_queue::QueueConfig;
use ordershop_proto::queue::v1::{
    self as pb, consume_request::Kind as Out, consume_response::Kind as In,
    message_queue_client::MessageQueueClient, outcome::Result as Res,
};
use ordershop_redis::Redis;
use ordershop_testkit::{Infra, RedisServer, earlier_release::queue_without, eventually_async};
use ordershop_topology::{QueueKeys, Role};
use redis::AsyncCommands;
use support::unique;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Streaming, transport::Channel};

const DEADLINE: Duration = Duration::from_secs(20);

fn channel() -> String {
    format!("{}.work", unique("svc"))
}

/// A consume stream opened by hand.
struct RawStream {
    requests: mpsc::Sender<pb::ConsumeRequest>,
    pushed: Streaming<pb::ConsumeResponse>,
}

impl RawStream {
    async fn open(
        url: &str,
        credentials: Credentials,
        first: Option<Out>,
    ) -> Result<Self, tonic::Status> {
        let channel = Channel::from_shared(url.to_owned())
            .expect("a valid URL")
            .connect_lazy();
        let mut client = MessageQueueClient::with_interceptor(channel, credentials);
        let (requests, outgoing) = mpsc::channel(16);
        if let Some(first) = first {
            requests
                .send(pb::ConsumeRequest { kind: Some(first) })
                .await
                .expect("the stream takes requests");
        }
        let pushed = client
            .consume(ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        Ok(Self { requests, pushed })
    }

    async fn send(&self, kind: Out) {
        self.requests
            .send(pb::ConsumeRequest { kind: Some(kind) })
            .await
            .expect("the stream takes requests");
    }

    async fn next(&mut self) -> In {
        tokio::time::timeout(DEADLINE, self.pushed.message())
            .await
            .expect("the queue pushes within the deadline")
            .expect("the stream is healthy")
            .expect("the stream is open")
            .kind
            .expect("a push says what it is")
    }
}

fn open(channel: &str, max_in_flight: u32) -> Option<Out> {
    Some(Out::Open(pb::ConsumeOpen {
        channel: channel.to_owned(),
        consumer: "raw".into(),
        lease_ms: 30_000,
        max_in_flight,
        wait_ms: 200,
    }))
}

fn done(id: &str) -> Out {
    Out::Outcome(pb::Outcome {
        message_id: id.to_owned(),
        result: Some(Res::Done(pb::Done {})),
        traceparent: String::new(),
    })
}

async fn waiting(infra: &Infra, channel: &str) -> usize {
    let mut conn = infra.redis_conn().await;
    conn.llen(QueueKeys::new(channel).waiting).await.unwrap()
}

#[tokio::test]
async fn the_queue_pushes_one_window_and_each_outcome_makes_room_for_the_next() {
    let infra = support::infra().await;
    let channel = channel();
    let sender = infra.queue("caller");
    for n in 0..5 {
        sender.send(&channel, &n.to_string(), "").await.unwrap();
    }
    let mut stream = RawStream::open(&infra.queue_url, Credentials::none(), open(&channel, 2))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        match stream.next().await {
            In::Message(m) => ids.push(m.id),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    // The pusher leases only with a free slot of the window: two messages
    // out without outcomes, so the other three are still waiting.
    assert_eq!(waiting(&infra, &channel).await, 3);

    stream.send(done(&ids[0])).await;
    let (mut finished, mut third) = (None, None);
    while finished.is_none() || third.is_none() {
        match stream.next().await {
            In::Finished(f) => finished = Some(f),
            In::Message(m) => third = Some(m.id),
            In::Drained(_) => panic!("drained without a stop"),
        }
    }
    let finished = finished.unwrap();
    assert_eq!(
        (finished.message_id.as_str(), finished.code),
        (ids[0].as_str(), 0)
    );
    assert_eq!(waiting(&infra, &channel).await, 2);

    // A stop pushes nothing more: Drained comes, the leased two stay ours
    // to answer, and the answers are still finished.
    stream.send(Out::Stop(pb::Stop {})).await;
    loop {
        match stream.next().await {
            In::Drained(_) => break,
            In::Message(m) => ids.push(m.id),
            In::Finished(f) => panic!("nothing was answered: {f:?}"),
        }
    }
    stream.send(done(&ids[1])).await;
    match stream.next().await {
        In::Finished(f) => assert_eq!((f.message_id, f.code), (ids[1].clone(), 0)),
        other => panic!("expected the answer to an outcome, got {other:?}"),
    }
    assert_eq!(waiting(&infra, &channel).await, 2);
}

#[tokio::test]
async fn an_outcome_for_a_message_not_in_flight_is_answered_not_found() {
    let infra = support::infra().await;
    let channel = channel();
    let mut stream = RawStream::open(&infra.queue_url, Credentials::none(), open(&channel, 1))
        .await
        .unwrap();
    stream
        .send(Out::Outcome(pb::Outcome {
            message_id: uuid::Uuid::new_v4().to_string(),
            result: Some(Res::Response("{}".into())),
            traceparent: String::new(),
        }))
        .await;
    match stream.next().await {
        In::Finished(f) => {
            assert_eq!(f.code, Code::NotFound as i32, "{f:?}");
            assert!(f.error.contains("not awaiting an answer"), "{f:?}");
        }
        other => panic!("expected the answer to an outcome, got {other:?}"),
    }
    // The stream goes on: a message sent now is pushed.
    infra.queue("caller").send(&channel, "1", "").await.unwrap();
    assert!(matches!(stream.next().await, In::Message(_)));
}

#[tokio::test]
async fn a_stream_must_open_first_and_serve_only_its_roles_channels() {
    let infra = Infra::start_secured().await;
    let mail = infra.credentials(Role::Mail);
    let not_opened = RawStream::open(&infra.queue_url, mail.clone(), Some(Out::Stop(pb::Stop {})))
        .await
        .err()
        .expect("a stream that does not open is refused");
    assert_eq!(not_opened.code(), Code::InvalidArgument, "{not_opened:?}");

    let foreign = RawStream::open(
        &infra.queue_url,
        mail.clone(),
        open("order-service.create_order", 1),
    )
    .await
    .err()
    .expect("the mail service may not serve the order service's channel");
    assert_eq!(foreign.code(), Code::PermissionDenied, "{foreign:?}");

    let anonymous = RawStream::open(
        &infra.queue_url,
        Credentials::none(),
        open("mail-service.send", 1),
    )
    .await
    .err()
    .expect("a stream without a role token is refused");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");

    RawStream::open(&infra.queue_url, mail, open("mail-service.send", 1))
        .await
        .expect("the mail service serves its own channel");
}

/// Serves `count` sync calls with `concurrency` handlers; every call gets
/// its own payload back, and at most `concurrency` handlers ran at once.
async fn serve_and_call(
    queue: Queue,
    caller: Queue,
    channel: &str,
    concurrency: usize,
    count: usize,
) {
    let running = Arc::new(Mutex::new((0usize, 0usize)));
    let gauge = running.clone();
    let cancel = CancellationToken::new();
    let tasks = queue.serve(
        ServeOptions {
            concurrency,
            ..ServeOptions::new(channel)
        },
        cancel.clone(),
        move |m| {
            let gauge = gauge.clone();
            async move {
                {
                    let mut g = gauge.lock().unwrap();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                gauge.lock().unwrap().0 -= 1;
                Ok(Some(m.payload))
            }
        },
    );
    let calls = (0..count).map(|n| {
        let caller = caller.clone();
        let channel = channel.to_owned();
        async move {
            let reply = caller
                .call(&channel, &n.to_string(), "", DEADLINE)
                .await
                .unwrap();
            assert_eq!(reply, n.to_string());
        }
    });
    futures::future::join_all(calls).await;
    cancel.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    let most = running.lock().unwrap().1;
    assert!(
        (1..=concurrency).contains(&most),
        "{most} handlers ran at once, with {concurrency} allowed"
    );
}

#[tokio::test]
async fn serving_on_the_stream_answers_every_call_within_its_concurrency() {
    let infra = support::infra().await;
    let channel = channel();
    serve_and_call(
        infra.queue("worker"),
        infra.queue("caller"),
        &channel,
        3,
        60,
    )
    .await;
    // Nothing is left leased or waiting.
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    let inflight: usize = conn.llen(&keys.inflight).await.unwrap();
    assert_eq!((waiting(&infra, &channel).await, inflight), (0, 0));
}

#[tokio::test]
async fn a_stop_hands_every_pushed_message_to_its_handler_and_strands_none() {
    let infra = support::infra().await;
    let channel = channel();
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let sink = handled.clone();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let tasks = infra.queue("worker").serve(
        ServeOptions {
            concurrency: 4,
            wait: Duration::from_millis(200),
            ..ServeOptions::new(&channel)
        },
        cancel.clone(),
        move |m| {
            let (sink, stop) = (sink.clone(), stop.clone());
            async move {
                // The stop comes while messages are pushed and handled.
                if sink.lock().unwrap().len() == 10 {
                    stop.cancel();
                }
                sink.lock().unwrap().insert(m.payload);
                Ok(None)
            }
        },
    );
    let sender = infra.queue("caller");
    for n in 0..40 {
        sender.send(&channel, &n.to_string(), "").await.unwrap();
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Whatever the stream pushed was handled and acked: nothing is left
    // leased to a consumer that is gone.
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    let inflight: usize = conn.llen(&keys.inflight).await.unwrap();
    assert_eq!(inflight, 0);
    let handled = handled.lock().unwrap().len();
    assert_eq!(handled + waiting(&infra, &channel).await, 40);
}

#[tokio::test]
async fn a_queue_without_the_streaming_consume_is_served_by_receive_calls() {
    let redis = RedisServer::start();
    let shutdown = CancellationToken::new();
    let config = QueueConfig {
        channels: ordershop_message_queue::Channels::Any,
        ..QueueConfig::default()
    };
    let url = queue_without("Consume", redis.url(), config, shutdown.clone()).await;
    let raw = RawStream::open(&url, Credentials::none(), open("svc.work", 1)).await;
    assert_eq!(raw.err().map(|e| e.code()), Some(Code::Unimplemented));

    let channel = channel();
    let queue = Queue::connect(&url, "worker").unwrap();
    let caller = Queue::connect(&url, "caller").unwrap();
    serve_and_call(queue, caller, &channel, 2, 20).await;
    shutdown.cancel();
}

/// A queue server on `addr` until `shutdown`: the address of a queue that
/// just stopped is taken again as soon as the system frees it.
async fn queue_at(
    addr: std::net::SocketAddr,
    redis_url: &str,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<Result<(), ordershop_proto::serving::ServeError>> {
    let listener = eventually_async("the queue's address free again", DEADLINE, || async {
        tokio::net::TcpListener::bind(addr).await.ok()
    })
    .await;
    tokio::spawn(ordershop_message_queue::server::run(
        listener,
        Redis::open(redis_url).unwrap(),
        QueueConfig {
            channels: ordershop_message_queue::Channels::Any,
            ..QueueConfig::default()
        },
        shutdown,
        Authenticator::new(None::<GrpcKey>),
        None,
    ))
}

#[tokio::test]
async fn a_consumer_reopens_its_stream_when_the_queue_restarts_and_loses_nothing() {
    let redis = RedisServer::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    let first = CancellationToken::new();
    let first_server = queue_at(addr, redis.url(), first.clone()).await;
    let channel = channel();
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let sink = handled.clone();
    let cancel = CancellationToken::new();
    let tasks = Queue::connect(&url, "worker").unwrap().serve(
        ServeOptions {
            wait: Duration::from_millis(200),
            ..ServeOptions::new(&channel)
        },
        cancel.clone(),
        move |m| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().insert(m.payload);
                Ok(None)
            }
        },
    );
    let sender = Queue::connect(&url, "caller").unwrap();
    for n in 0..10 {
        sender.send(&channel, &n.to_string(), "").await.unwrap();
    }
    eventually_async("the first ten are handled", DEADLINE, || async {
        (handled.lock().unwrap().len() == 10).then_some(())
    })
    .await;

    // A graceful stop ends the stream's pushing; the consumer opens a new
    // one on the queue that takes over the address.
    first.cancel();
    let _ = first_server.await;
    let second = CancellationToken::new();
    let second_server = queue_at(addr, redis.url(), second.clone()).await;
    for n in 10..20 {
        sender.send(&channel, &n.to_string(), "").await.unwrap();
    }
    eventually_async("all twenty are handled", DEADLINE, || async {
        (handled.lock().unwrap().len() == 20).then_some(())
    })
    .await;
    cancel.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    second.cancel();
    let _ = second_server.await;
}
