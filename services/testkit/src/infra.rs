//! A real redis-server plus the event store and the queue served in this
//! process on free loopback ports: the infrastructure every service test
//! talks to, stopped when dropped.

use ordershop_client::{Clients, Credentials, EventStore, Queue};
use ordershop_event_store::StoreConfig;
use ordershop_grpc_auth::{Authenticator, GrpcKey};
use ordershop_message_queue::{Channels, QueueConfig};
use ordershop_redis::Redis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::RedisServer;

#[derive(Debug)]
pub struct Infra {
    pub redis: RedisServer,
    pub event_store_url: String,
    pub queue_url: String,
    pub shutdown: CancellationToken,
    /// The key the servers check tokens against; `None`: open servers.
    pub key: Option<GrpcKey>,
}

impl Infra {
    /// Production defaults, but the queue serves any channel name: tests
    /// use channels of their own beside the deployment's.
    pub async fn start() -> Self {
        let queue = QueueConfig {
            channels: Channels::Any,
            ..QueueConfig::default()
        };
        Self::start_with(StoreConfig::default(), queue).await
    }

    /// Production settings throughout: servers that refuse callers without
    /// a role token and allow each role only its part of the topology.
    pub async fn start_secured() -> Self {
        Self::start_secured_with(StoreConfig::default(), QueueConfig::default()).await
    }

    /// [`Infra::start_secured`] with tuned timeouts.
    pub async fn start_secured_with(store: StoreConfig, queue: QueueConfig) -> Self {
        Self::serve(store, queue, Some(GrpcKey::generate())).await
    }

    /// With tuned timeouts (tests shorten claim and lease times so
    /// redelivery happens within a test's patience).
    ///
    /// Always on a private redis-server, whatever `REDIS_URL` says: the
    /// services use the contract's fixed topic and channel names, so tests
    /// running at once must not share a server.
    pub async fn start_with(store: StoreConfig, queue: QueueConfig) -> Self {
        Self::serve(store, queue, None).await
    }

    async fn serve(store: StoreConfig, queue: QueueConfig, key: Option<GrpcKey>) -> Self {
        let redis = RedisServer::spawn(&[]).unwrap_or_else(|e| panic!("{e}"));
        let shutdown = CancellationToken::new();
        let es = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let mq = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let event_store_url = format!("http://{}", es.local_addr().expect("address"));
        let queue_url = format!("http://{}", mq.local_addr().expect("address"));
        let conn = Redis::open(redis.url()).expect("a valid Redis URL");
        tokio::spawn(ordershop_event_store::server::run(
            es,
            conn.clone(),
            store,
            shutdown.clone(),
            Authenticator::new(key.clone()),
            None,
        ));
        tokio::spawn(ordershop_message_queue::server::run(
            mq,
            conn,
            queue,
            shutdown.clone(),
            Authenticator::new(key.clone()),
            None,
        ));
        Self {
            redis,
            event_store_url,
            queue_url,
            shutdown,
            key,
        }
    }

    pub fn clients(&self, instance: &str) -> Clients {
        Clients::connect(&self.event_store_url, &self.queue_url, instance).expect("valid URLs")
    }

    /// Clients that present `role`'s token (none on open servers).
    pub fn clients_as(&self, role: ordershop_topology::Role, instance: &str) -> Clients {
        self.clients(instance)
            .with_credentials(self.credentials(role))
    }

    /// `role`'s credentials for these servers.
    pub fn credentials(&self, role: ordershop_topology::Role) -> Credentials {
        self.key.as_ref().map_or_else(Credentials::none, |key| {
            Credentials::token(&key.token(role)).expect("a token is ASCII")
        })
    }

    /// An event store client with the credentials of the role that owns
    /// `topic` (the one that may publish to it).
    pub fn publisher_of(&self, topic: &str) -> EventStore {
        let owner = ordershop_topology::Role::ALL
            .into_iter()
            .find(|role| role.publishes_to(topic))
            .unwrap_or_else(|| panic!("no role publishes to {topic}"));
        self.event_store().with_credentials(self.credentials(owner))
    }

    pub fn event_store(&self) -> EventStore {
        EventStore::connect(&self.event_store_url).expect("a valid URL")
    }

    pub fn queue(&self, consumer: &str) -> Queue {
        Queue::connect(&self.queue_url, consumer).expect("a valid URL")
    }

    /// A plain connection for checking Redis state directly.
    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .expect("a valid Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers")
    }

    /// Runs an administrative command that answers OK, such as
    /// `CONFIG RESETSTAT` or `SCRIPT FLUSH`.
    pub async fn redis_admin(&self, args: &[&str]) {
        let mut conn = self.redis_conn().await;
        let () = redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }

    /// `INFO <section>`, as text.
    pub async fn redis_info(&self, section: &str) -> String {
        let mut conn = self.redis_conn().await;
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("INFO {section}: {e}"))
    }
}

impl Drop for Infra {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
