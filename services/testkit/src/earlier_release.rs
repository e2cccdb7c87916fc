//! The event store and the queue as an earlier release serves them: one
//! method missing (answered `Unimplemented`, as by a server that never had
//! it), for tests of the clients' fallbacks during a rolling upgrade.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use ordershop_event_store::{StoreConfig, StreamStore, grpc::EventStoreService};
use ordershop_grpc_auth::{Authenticator, GrpcKey};
use ordershop_message_queue::{QueueConfig, QueueStore, grpc::MessageQueueService};
use ordershop_redis::Redis;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{
    body::Body,
    codegen::{Bytes, Service, StdError, http},
    server::NamedService,
};

/// A gRPC service without `method` (its last path segment, `"Consume"`).
#[derive(Clone)]
struct WithoutMethod<S> {
    inner: S,
    method: &'static str,
}

impl<S: NamedService> NamedService for WithoutMethod<S> {
    const NAME: &'static str = S::NAME;
}

type Answer = http::Response<Body>;

impl<S, B> Service<http::Request<Body>> for WithoutMethod<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError>,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path.rsplit('/').next() == Some(self.method) {
            return Box::pin(async {
                Ok(tonic::Status::unimplemented("no such method").into_http())
            });
        }
        let answer = self.inner.call(request);
        Box::pin(async move { Ok(answer.await?.map(Body::new)) })
    }
}

/// A server of one service on a loopback port until `shutdown`: its URL.
async fn serve<S>(service: S, shutdown: CancellationToken) -> String
where
    S: Service<http::Request<Body>, Response = Answer, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.cancelled_owned(),
            ),
    );
    url
}

/// An open event store on `redis_url` without `method`: its URL.
pub async fn event_store_without(
    method: &'static str,
    redis_url: &str,
    config: StoreConfig,
    shutdown: CancellationToken,
) -> String {
    let store = Arc::new(StreamStore::new(redis(redis_url), config));
    let inner = EventStoreService::new(store, shutdown.clone()).into_server(open());
    serve(WithoutMethod { inner, method }, shutdown).await
}

/// An open queue on `redis_url` without `method`: its URL.
pub async fn queue_without(
    method: &'static str,
    redis_url: &str,
    config: QueueConfig,
    shutdown: CancellationToken,
) -> String {
    let store = Arc::new(QueueStore::new(redis(redis_url), config));
    let inner = MessageQueueService::new(store, shutdown.clone()).into_server(open());
    serve(WithoutMethod { inner, method }, shutdown).await
}

fn redis(url: &str) -> Redis {
    Redis::open(url).expect("a valid Redis URL")
}

/// No role tokens checked.
fn open() -> Authenticator {
    Authenticator::new(None::<GrpcKey>)
}
