//! A client pointed at a host name spreads its calls over every address the
//! name resolves to, and follows the name when its addresses change: the
//! event store scaled out behind a headless Service gets calls on every
//! replica, from clients that were connected before.
//!
//! Two event-store servers, each on a Redis of its own, so where each
//! publish landed is counted in the Redis it was written to. The name is
//! known only to the test's resolver.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use ordershop_client::{Connector, EventStore, Resolve};
use ordershop_redis::Redis;
use ordershop_testkit::RedisServer;
use ordershop_topology::StreamKeys;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod support;

const NAME: &str = "http://event-store.balancing.test:50051";
const REFRESH: Duration = Duration::from_millis(50);
const PUBLISHES: usize = 40;

/// Answers what the test says the name resolves to now.
#[derive(Clone)]
struct TestResolver(Arc<Mutex<io::Result<Vec<SocketAddr>>>>);

impl TestResolver {
    fn new(addresses: Vec<SocketAddr>) -> Self {
        Self(Arc::new(Mutex::new(Ok(addresses))))
    }

    fn set(&self, answer: io::Result<Vec<SocketAddr>>) {
        *self.0.lock().unwrap() = answer;
    }
}

impl Resolve for TestResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        assert_eq!(host, "event-store.balancing.test");
        let answer = match &*self.0.lock().unwrap() {
            Ok(addresses) => Ok(addresses.clone()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        Box::pin(async move { answer })
    }
}

/// One event-store server on a loopback port, with a Redis of its own.
struct Server {
    redis: RedisServer,
    address: SocketAddr,
    shutdown: CancellationToken,
}

impl Server {
    async fn start() -> Self {
        let redis = RedisServer::spawn(&[]).unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(ordershop_event_store::server::run(
            listener,
            Redis::open(redis.url()).unwrap(),
            ordershop_event_store::StoreConfig::default(),
            shutdown.clone(),
            ordershop_grpc_auth::Authenticator::open(),
            None,
        ));
        Self {
            redis,
            address,
            shutdown,
        }
    }

    /// How many events of `topic` this server stored.
    async fn stored(&self, topic: &str) -> usize {
        let mut conn = redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("XLEN")
            .arg(StreamKeys::new(topic).stream)
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn publish(store: &EventStore, topic: &str, n: usize) {
    for i in 0..n {
        store
            .publish(
                topic,
                vec![support::event(&format!("e{i}"), json!({ "i": i }))],
            )
            .await
            .unwrap_or_else(|e| panic!("publish {i}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_over_every_resolved_address_and_follow_changes() {
    let a = Server::start().await;
    let b = Server::start().await;
    let resolver = TestResolver::new(vec![a.address, b.address]);
    let connector = Connector::new(resolver.clone(), REFRESH);
    let store = EventStore::new(connector.connect(NAME).unwrap());
    // Until its first resolution the channel connects by the name, which no
    // system resolver knows: let the addresses come in.
    tokio::time::sleep(REFRESH * 4).await;

    let topic = support::unique("spread");
    publish(&store, &topic, PUBLISHES).await;
    let (on_a, on_b) = (a.stored(&topic).await, b.stored(&topic).await);
    assert_eq!(on_a + on_b, PUBLISHES, "each publish stored once");
    assert!(
        on_a > 0 && on_b > 0,
        "calls must reach both servers: {on_a} on a, {on_b} on b"
    );

    // Scaled in to b: new calls go to b only.
    resolver.set(Ok(vec![b.address]));
    tokio::time::sleep(REFRESH * 4).await;
    let topic = support::unique("in");
    publish(&store, &topic, PUBLISHES).await;
    assert_eq!(
        (a.stored(&topic).await, b.stored(&topic).await),
        (0, PUBLISHES)
    );

    // A failing resolver keeps the last addresses, and calls go on.
    resolver.set(Err(io::Error::other("DNS is down")));
    tokio::time::sleep(REFRESH * 4).await;
    let topic = support::unique("dns-down");
    publish(&store, &topic, PUBLISHES / 4).await;
    assert_eq!(b.stored(&topic).await, PUBLISHES / 4);

    // Scaled out again: the existing client reaches the new address too.
    resolver.set(Ok(vec![a.address, b.address]));
    tokio::time::sleep(REFRESH * 4).await;
    let topic = support::unique("out");
    publish(&store, &topic, PUBLISHES).await;
    let (on_a, on_b) = (a.stored(&topic).await, b.stored(&topic).await);
    assert!(
        on_a > 0 && on_b > 0 && on_a + on_b == PUBLISHES,
        "after scale-out: {on_a} on a, {on_b} on b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_before_the_first_resolution_does_not_wait_for_it() {
    /// Answers only after the test is over.
    struct Slow;
    impl Resolve for Slow {
        fn resolve<'a>(&'a self, _: &'a str, _: u16) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Ok(Vec::new())
            })
        }
    }
    let connector = Connector::new(Slow, REFRESH);
    // Meanwhile the channel connects by the name itself, here one that
    // never resolves: the health check (1 s deadline) says no at once
    // instead of waiting for an endpoint.
    let store = EventStore::new(
        connector
            .connect("http://nothing-here.invalid:50051")
            .unwrap(),
    );
    let healthy = tokio::time::timeout(Duration::from_secs(5), store.healthy()).await;
    assert_eq!(healthy.ok(), Some(false));
}
