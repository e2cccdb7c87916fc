//! The event store and queue processes are killed (-9) and restarted while
//! clients run: clients recover by themselves and nothing is lost.

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use ordershop_client::{
    Append, Delivery, EventStore, Queue, ServeOptions, StartPosition, SubscribeOptions,
};
use ordershop_testkit::{RedisServer, eventually_async, free_port};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

fn start(role: &str, port: u16, redis_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ordershop"))
        .arg(role)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", redis_url])
        .args(["--claim-idle-ms", "1000"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("starting an ordershop server")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_recover_when_the_event_store_and_queue_restart() {
    let redis = RedisServer::start();
    let (es_port, mq_port) = (free_port(), free_port());
    let mut event_store = Killed(start("event-store", es_port, redis.url()));
    let mut queue_server = Killed(start("message-queue", mq_port, redis.url()));
    let store = EventStore::connect(&format!("http://127.0.0.1:{es_port}")).unwrap();
    let queue = Queue::connect(&format!("http://127.0.0.1:{mq_port}"), "worker").unwrap();
    let topic = format!("restart{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // A channel of the deployment: the queue serves no other. No mail
    // service runs here, so this worker is the channel's only consumer.
    let channel = "mail-service.send".to_owned();

    // A subscriber and a queue worker that live through the restarts.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = seen.clone();
    let cancel = CancellationToken::new();
    let subscription = store.subscribe(
        SubscribeOptions {
            topics: vec![topic.clone()],
            group: "survivor".into(),
            consumer: "one".into(),
            start: StartPosition::Beginning,
            heads_of: Vec::new(),
        },
        cancel.clone(),
        move |delivery: Delivery| {
            sink.lock().unwrap().push(delivery.event.event_data);
            std::future::ready(Ok(()))
        },
    );
    let workers = queue.serve(
        ServeOptions::new(&channel),
        cancel.clone(),
        |m| async move { Ok(Some(m.payload)) },
    );
    // One event id per round: a retried publish is then stored once.
    let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let publish = |n: u32| {
        let store = store.clone();
        let topic = topic.clone();
        let event_id = ids[n as usize].clone();
        async move {
            let append = Append {
                event_id,
                event_action: "entity_created".into(),
                event_data: format!("{{\"n\":{n}}}"),
                ..Default::default()
            };
            store.publish(&topic, vec![append]).await.ok()
        }
    };

    publish(1).await.expect("first publish");
    let reply = queue
        .call(&channel, "{\"n\":1}", "", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply, "{\"n\":1}");

    for round in 2..=3u32 {
        event_store.0.kill().unwrap();
        queue_server.0.kill().unwrap();
        let _ = event_store.0.wait();
        let _ = queue_server.0.wait();
        event_store = Killed(start("event-store", es_port, redis.url()));
        queue_server = Killed(start("message-queue", mq_port, redis.url()));
        // The same client objects: they reconnect by themselves.
        eventually_async("publishing after the restart", DEADLINE, || publish(round)).await;
        let payload = format!("{{\"n\":{round}}}");
        let reply = eventually_async("a call after the restart", DEADLINE, || {
            let queue = queue.clone();
            let channel = channel.clone();
            let payload = payload.clone();
            async move {
                queue
                    .call(&channel, &payload, "", Duration::from_secs(2))
                    .await
                    .ok()
            }
        })
        .await;
        assert_eq!(reply, payload);
    }

    // The subscription resumed and saw every event exactly once, in order.
    eventually_async("three events delivered", DEADLINE, || {
        let seen = seen.clone();
        async move { (seen.lock().unwrap().len() >= 3).then_some(()) }
    })
    .await;
    cancel.cancel();
    subscription.await.unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_servers_promptly_with_subscribers_and_waiters_attached() {
    let redis = RedisServer::start();
    let (es_port, mq_port) = (free_port(), free_port());
    let mut event_store = Killed(start("event-store", es_port, redis.url()));
    let mut queue_server = Killed(start("message-queue", mq_port, redis.url()));
    let store = EventStore::connect(&format!("http://127.0.0.1:{es_port}")).unwrap();
    let queue = Queue::connect(&format!("http://127.0.0.1:{mq_port}"), "w").unwrap();
    eventually_async("servers up", DEADLINE, || {
        let (store, queue) = (store.clone(), queue.clone());
        async move { (store.healthy().await && queue.healthy().await).then_some(()) }
    })
    .await;
    // Open work on both: a subscription stream and a long-poll receive.
    let cancel = CancellationToken::new();
    let _subscription = store.subscribe(
        SubscribeOptions {
            topics: vec!["sigterm".into()],
            group: "g".into(),
            consumer: "c".into(),
            start: StartPosition::Beginning,
            heads_of: Vec::new(),
        },
        cancel.clone(),
        |_| std::future::ready(Ok(())),
    );
    let _workers = queue.serve(
        ServeOptions::new("mail-service.send"),
        cancel.clone(),
        |_| async { Ok(None) },
    );
    for server in [&event_store, &queue_server] {
        let pid = nix::unistd::Pid::from_raw(server.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    // A long-poll receive may take its full wait (2 s) to finish.
    for server in [&mut event_store, &mut queue_server] {
        let status = eventually_async(
            "the server to exit after SIGTERM",
            Duration::from_secs(8),
            || std::future::ready(server.0.try_wait().ok().flatten()),
        )
        .await;
        assert!(status.success(), "graceful exit: {status}");
    }
    cancel.cancel();
}
