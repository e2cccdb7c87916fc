//! The message queue through its gRPC API, against a real redis-server.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use ordershop_client::{HandlerError, ServeOptions};
use ordershop_testkit::eventually_async;
use ordershop_topology::QueueKeys;
use redis::AsyncCommands;
use support::unique;
use tokio_util::sync::CancellationToken;
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(20);

/// A worker that answers every message of a channel with its payload.
struct Echo {
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Echo {
    fn start(infra: &support::Infra, channel: &str) -> Self {
        let cancel = CancellationToken::new();
        let tasks = infra.queue("worker").serve(
            ServeOptions::new(channel),
            cancel.clone(),
            |m| async move { Ok(Some(m.payload)) },
        );
        Self { cancel, tasks }
    }

    async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

fn channel() -> String {
    format!("{}.work", unique("svc"))
}

#[tokio::test]
async fn a_sync_call_gets_its_handlers_response() {
    let infra = support::infra().await;
    let queue = infra.queue("worker");
    let channel = channel();
    let cancel = CancellationToken::new();
    let tasks = queue.serve(
        ServeOptions::new(&channel),
        cancel.clone(),
        |m| async move {
            let n: i64 = serde_json::from_str(&m.payload).unwrap();
            Ok(Some(serde_json::json!({ "result": n * 2 }).to_string()))
        },
    );
    let caller = infra.queue("caller");
    for n in 0..20 {
        let reply = caller
            .call(&channel, &n.to_string(), "", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply, serde_json::json!({ "result": n * 2 }).to_string());
    }
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn an_async_send_returns_at_once_and_the_response_can_be_awaited() {
    let infra = support::infra().await;
    let queue = infra.queue("c");
    let channel = channel();
    let id = queue.send(&channel, "{\"x\":1}", "").await.unwrap();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    let message = queue
        .receive(&channel, Duration::from_secs(2), Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(message.id, id);
    assert_eq!(message.attempt, 1);
    queue.respond(&channel, &id, "{\"ok\":true}").await.unwrap();
    let reply = queue
        .await_response(&channel, &id, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(reply, "{\"ok\":true}");
    // A second waiter (a retried caller) sees the same response.
    let again = queue
        .await_response(&channel, &id, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(again, reply);
}

/// During a rolling upgrade a waiter may be answered by an earlier
/// release, which stored the response under the reply key and pushed `1`
/// onto the signal list: the waiter still reads it there.
#[tokio::test]
async fn a_response_an_earlier_release_stored_is_still_read() {
    let infra = support::infra().await;
    let queue = infra.queue("c");
    let channel = channel();
    let id = queue.send(&channel, "{}", "").await.unwrap();
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    let () = redis::pipe()
        .set_ex(format!("{}{id}", keys.reply_prefix), "{\"old\":true}", 60)
        .ignore()
        .rpush(format!("{}{id}", keys.signal_prefix), "1")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let reply = queue
        .await_response(&channel, &id, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(reply, "{\"old\":true}");
}

/// A message an earlier release sent is awaited by that release, which
/// reads the reply key: it is answered there too.
#[tokio::test]
async fn a_message_an_earlier_release_sent_is_answered_the_way_it_waits() {
    let infra = support::infra().await;
    let channel = channel();
    let keys = QueueKeys::new(&channel);
    let id = uuid::Uuid::new_v4().to_string();
    let mut conn = infra.redis_conn().await;
    let () = redis::pipe()
        .hset(
            &keys.messages,
            &id,
            r#"{"payload":"{\"old\":1}","idempotency_key":"","enqueued_at_ms":1}"#,
        )
        .ignore()
        .lpush(&keys.waiting, &id)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let echo = Echo::start(&infra, &channel);
    let reply = infra
        .queue("caller")
        .await_response(&channel, &id, DEADLINE)
        .await
        .unwrap();
    echo.stop().await;
    assert_eq!(reply, r#"{"old":1}"#);
    let stored: Option<String> = conn
        .get(format!("{}{id}", keys.reply_prefix))
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(r#"{"old":1}"#));
    let signal: Vec<String> = conn
        .lrange(format!("{}{id}", keys.signal_prefix), 0, -1)
        .await
        .unwrap();
    assert_eq!(signal, ["1"]);
}

#[tokio::test]
async fn a_consumer_that_dies_mid_message_loses_nothing_and_the_key_prevents_a_second_run() {
    let infra = support::infra().await;
    let channel = channel();
    let sender = infra.queue("sender");
    let first = sender
        .send(&channel, "{\"order\":1}", "order-1")
        .await
        .unwrap();
    // A retried send with the same key enqueues nothing.
    let retry = sender
        .send(&channel, "{\"order\":1}", "order-1")
        .await
        .unwrap();
    assert_eq!(first, retry);

    // Consumer A leases it for a short time and "dies" (never acks).
    let a = infra.queue("a");
    let taken = a
        .receive(&channel, Duration::from_secs(2), Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, first);

    // Consumer B serves the channel and counts executions.
    let runs = Arc::new(AtomicU32::new(0));
    let cancel = CancellationToken::new();
    let counter = runs.clone();
    let b = infra.queue("b");
    let tasks = b.serve(ServeOptions::new(&channel), cancel.clone(), move |m| {
        let counter = counter.clone();
        async move {
            assert_eq!(m.attempt, 2, "redelivered after the lease ran out");
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
    });
    eventually_async("redelivery to b", DEADLINE, || {
        let runs = runs.clone();
        async move { (runs.load(Ordering::SeqCst) == 1).then_some(()) }
    })
    .await;
    // A late ack from A finds nothing to finish.
    let late = a.ack(&channel, &first).await.unwrap_err();
    assert_eq!(late.code(), Code::NotFound);
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    let waiting: usize = conn.llen(&keys.waiting).await.unwrap();
    let inflight: usize = conn.llen(&keys.inflight).await.unwrap();
    assert_eq!((waiting, inflight), (0, 0));
}

/// A refused message comes back, with a growing attempt number, for as
/// long as it takes — well past the poison limit — and is never
/// dead-lettered; a permanent refusal is dead-lettered at once.
#[tokio::test]
async fn a_refused_message_is_retried_until_it_succeeds_and_only_a_permanent_one_is_dead_lettered()
{
    let infra = support::infra().await;
    let channel = channel();
    let queue = infra.queue("w");
    let refusals = support::MAX_DELIVERIES + 2;
    queue
        .send(&channel, r#"{"kind":"late"}"#, "")
        .await
        .unwrap();
    queue
        .send(&channel, r#"{"kind":"invalid"}"#, "")
        .await
        .unwrap();
    let seen: Arc<std::sync::Mutex<Vec<(String, u32)>>> = Arc::default();
    let log = seen.clone();
    let cancel = CancellationToken::new();
    let tasks = queue.serve(ServeOptions::new(&channel), cancel.clone(), move |m| {
        log.lock().unwrap().push((m.payload.clone(), m.attempt));
        std::future::ready(if m.payload.contains("invalid") {
            Err(HandlerError::permanent("never valid"))
        } else if m.attempt <= refusals {
            Err(HandlerError::retry_after(
                "not yet",
                Duration::from_millis(20),
            ))
        } else {
            Ok(None)
        })
    });
    let keys = QueueKeys::new(&channel);
    let conn = infra.redis_conn().await;
    eventually_async("the late message handled", DEADLINE, || {
        let seen = seen.clone();
        async move {
            let late = seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p.contains("late"))
                .count();
            (late as u32 == refusals + 1).then_some(())
        }
    })
    .await;
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let late: Vec<u32> = seen
        .iter()
        .filter(|(p, _)| p.contains("late"))
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(late, (1..=refusals + 1).collect::<Vec<_>>());
    let invalid = seen.iter().filter(|(p, _)| p.contains("invalid")).count();
    assert_eq!(invalid, 1, "a permanent refusal is not retried");
    let mut conn = conn.clone();
    let dead: Vec<String> = conn.lrange(&keys.dead, 0, -1).await.unwrap();
    assert_eq!(
        dead.len(),
        1,
        "only the invalid message is dead-lettered: {dead:?}"
    );
    let waiting: usize = conn.llen(&keys.waiting).await.unwrap();
    let delayed: usize = conn.zcard(&keys.delayed).await.unwrap();
    assert_eq!((waiting, delayed), (0, 0));
}

/// A message whose consumer dies every time it holds it (its lease runs
/// out with no answer) is poison: dead-lettered after the limit, so it
/// cannot hold a channel up for good.
#[tokio::test]
async fn a_message_leased_too_often_without_an_answer_is_dead_lettered() {
    let infra = support::infra().await;
    let channel = channel();
    infra.queue("s").send(&channel, "{}", "").await.unwrap();
    let crashing = infra.queue("crashing");
    for attempt in 1..=support::MAX_DELIVERIES {
        let message = crashing
            .receive(&channel, DEADLINE, Duration::from_millis(100))
            .await
            .unwrap()
            .expect("the expired lease puts the message back");
        assert_eq!(message.attempt, attempt);
    }
    // The next lease would be one more without an answer: the queue
    // dead-letters the message instead of handing it out.
    let conn = infra.redis_conn().await;
    let dead_key = QueueKeys::new(&channel).dead;
    eventually_async("the poison message dead-lettered", DEADLINE, || {
        let (crashing, channel) = (&crashing, &channel);
        let (mut conn, dead_key) = (conn.clone(), dead_key.clone());
        async move {
            let next = crashing
                .receive(
                    channel,
                    Duration::from_millis(300),
                    Duration::from_millis(100),
                )
                .await
                .unwrap();
            assert!(
                next.is_none(),
                "a poison message was delivered again: {next:?}"
            );
            (conn.llen::<_, usize>(&dead_key).await.unwrap() == 1).then_some(())
        }
    })
    .await;
}

/// A message answered at its first delivery writes no delivery counter,
/// and answering it leaves nothing of it but its response: the cheap path
/// every message of a healthy shop takes.
#[tokio::test]
async fn an_answered_message_leaves_only_its_response() {
    let infra = support::infra().await;
    let channel = channel();
    let echo = Echo::start(&infra, &channel);
    let reply = infra
        .queue("caller")
        .call(&channel, "{\"n\":1}", "", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply, "{\"n\":1}");
    echo.stop().await;
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    for key in [
        &keys.messages,
        &keys.attempts,
        &keys.waiting,
        &keys.inflight,
        &keys.leases,
    ] {
        let exists: bool = conn.exists(key).await.unwrap();
        assert!(!exists, "{key} is left behind");
    }
}

/// Earlier releases counted deliveries in a hash of their own; the queue's
/// housekeeping removes what is left there once the message is gone, and
/// keeps the count of a message still pending.
#[tokio::test]
async fn housekeeping_empties_the_earlier_releases_attempts_hash() {
    let infra = support::infra().await;
    let channel = channel();
    let pending = infra.queue("s").send(&channel, "{}", "").await.unwrap();
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    let gone = uuid::Uuid::new_v4().to_string();
    let () = conn
        .hset_multiple(&keys.attempts, &[(&gone, 2), (&pending, 1)])
        .await
        .unwrap();
    eventually_async("the finished message's count removed", DEADLINE, || {
        let mut conn = conn.clone();
        let (attempts, gone) = (keys.attempts.clone(), gone.clone());
        async move {
            let left: bool = conn.hexists(&attempts, &gone).await.ok()?;
            (!left).then_some(())
        }
    })
    .await;
    let kept: bool = conn.hexists(&keys.attempts, &pending).await.unwrap();
    assert!(kept, "a pending message's count was removed");
}

#[tokio::test]
async fn a_call_nobody_answers_times_out_with_deadline_exceeded() {
    let infra = support::infra().await;
    let queue = infra.queue("c");
    let err = queue
        .call(&channel(), "{}", "", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
}

#[tokio::test]
async fn bad_input_is_refused_and_unknown_ids_are_not_found() {
    let infra = support::infra().await;
    let queue = infra.queue("c");
    for bad_channel in ["", "nodot", "Upper.case", "a.b c", ".x"] {
        let err = queue.send(bad_channel, "{}", "").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad_channel:?}");
    }
    let channel = channel();
    let err = queue.send(&channel, "{oops", "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let huge = format!("\"{}\"", "x".repeat(1024 * 1024));
    let err = queue.send(&channel, &huge, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    let waiting: usize = conn.llen(&keys.waiting).await.unwrap();
    assert_eq!(waiting, 0, "refused sends wrote nothing");

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        queue.ack(&channel, &unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    let nack = queue
        .nack(&channel, &unknown, &HandlerError::retry("x"))
        .await
        .unwrap_err();
    assert_eq!(nack.code(), Code::NotFound);
    assert_eq!(
        queue.ack(&channel, "not-a-uuid").await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn the_key_made_for_a_long_sync_call_outlives_its_retries() {
    let infra = support::infra().await;
    let channel = channel();
    let echo = Echo::start(&infra, &channel);
    // The client retries a call for as long as it waits (here four
    // minutes): a key forgotten after one minute would let a retry after a
    // lost connection enqueue the request a second time.
    let wait = Duration::from_secs(240);
    infra
        .queue("caller")
        .call(&channel, "{}", "", wait)
        .await
        .unwrap();
    echo.stop().await;
    let mut conn = infra.redis_conn().await;
    let prefix = QueueKeys::new(&channel).idempotency_prefix;
    let keys: Vec<String> = conn.keys(format!("{prefix}auto:*")).await.unwrap();
    assert_eq!(keys.len(), 1, "one made key per call: {keys:?}");
    let ttl_ms: i64 = conn.pttl(&keys[0]).await.unwrap();
    assert!(
        ttl_ms > wait.as_millis() as i64,
        "the made key expires in {ttl_ms} ms, before the call's {wait:?} of retries"
    );
}

#[tokio::test]
async fn expired_leases_come_back_after_redis_forgets_the_scripts() {
    let infra = support::infra().await;
    let channel = channel();
    let id = infra.queue("s").send(&channel, "{}", "").await.unwrap();
    let dead = infra.queue("dead");
    dead.receive(&channel, Duration::from_secs(2), Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    // As after a Redis restart: the housekeeping pass must load its script
    // again rather than fail on every pass from now on.
    infra.redis_admin(&["SCRIPT", "FLUSH"]).await;
    let again = infra
        .queue("alive")
        .receive(&channel, Duration::from_secs(10), Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the expired lease was put back");
    assert_eq!((again.id, again.attempt), (id, 2));
}

#[tokio::test]
async fn a_retried_call_gets_the_first_answer_without_a_second_run() {
    let infra = support::infra().await;
    let channel = channel();
    let runs = Arc::new(AtomicU32::new(0));
    let cancel = CancellationToken::new();
    let counter = runs.clone();
    let tasks =
        infra
            .queue("worker")
            .serve(ServeOptions::new(&channel), cancel.clone(), move |_| {
                let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Ok(Some(format!("{{\"run\":{run}}}"))) }
            });
    let caller = infra.queue("caller");
    let wait = Duration::from_secs(5);
    let first = caller.call(&channel, "{}", "order-7", wait).await.unwrap();
    // As after a lost reply: the same key again, answered long ago.
    let again = caller.call(&channel, "{}", "order-7", wait).await.unwrap();
    assert_eq!(
        (first.as_str(), again.as_str()),
        ("{\"run\":1}", "{\"run\":1}")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_the_first_stands() {
    let infra = support::infra().await;
    let channel = channel();
    let sender = infra.queue("sender");
    let first = sender
        .send(&channel, r#"{"amount":1000}"#, "pay-9")
        .await
        .unwrap();
    // The same request again is the retry the key exists for.
    let retry = sender
        .send(&channel, r#"{"amount":1000}"#, "pay-9")
        .await
        .unwrap();
    assert_eq!(retry, first);
    // Another request under the same key is a client's mistake: refused
    // with the reason, not silently answered with the first message.
    let err = sender
        .send(&channel, r#"{"amount":1}"#, "pay-9")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    assert!(err.to_string().contains("pay-9"), "{err}");
    let waiting: i64 = infra
        .redis_conn()
        .await
        .llen(QueueKeys::new(&channel).waiting)
        .await
        .unwrap();
    assert_eq!(waiting, 1, "only the first request is queued");
}

#[tokio::test]
async fn a_reply_is_kept_as_long_as_its_idempotency_key() {
    let infra = support::infra().await;
    let channel = channel();
    let echo = Echo::start(&infra, &channel);
    let id = infra
        .queue("caller")
        .send(&channel, "{}", "keep-me")
        .await
        .unwrap();
    let keys = QueueKeys::new(&channel);
    let mut conn = infra.redis_conn().await;
    let reply_list = format!("{}{id}", keys.signal_prefix);
    eventually_async("the reply", DEADLINE, || {
        let mut conn = conn.clone();
        let reply_list = reply_list.clone();
        async move {
            let exists: bool = conn.exists(&reply_list).await.ok()?;
            exists.then_some(())
        }
    })
    .await;
    let key_ttl: i64 = conn
        .pttl(format!("{}keep-me", keys.idempotency_prefix))
        .await
        .unwrap();
    let reply_ttl: i64 = conn.pttl(&reply_list).await.unwrap();
    // A retry just before the key expires must still find the reply, or it
    // gets the first message's id and then waits for a reply that is gone.
    assert!(
        reply_ttl >= key_ttl - 1_000,
        "the reply expires in {reply_ttl} ms, its key in {key_ttl} ms"
    );
    echo.stop().await;
}

/// A handler slower than its lease still refuses: its refusal counts even
/// though the message was put back meanwhile, so it is retried, not taken
/// for poison.
#[tokio::test]
async fn a_refusal_after_the_lease_ran_out_still_counts() {
    let infra = support::infra().await;
    let channel = channel();
    infra.queue("s").send(&channel, "{}", "").await.unwrap();
    let slow = infra.queue("slow");
    let keys = QueueKeys::new(&channel);
    let conn = infra.redis_conn().await;
    for attempt in 1..=support::MAX_DELIVERIES + 2 {
        let message = slow
            .receive(&channel, DEADLINE, Duration::from_millis(100))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("delivery {attempt} did not come"));
        // The handler outlives its lease: the message goes back first.
        eventually_async("the expired lease put back", DEADLINE, || {
            let (mut conn, waiting) = (conn.clone(), keys.waiting.clone());
            async move { (conn.llen::<_, usize>(&waiting).await.ok()? == 1).then_some(()) }
        })
        .await;
        let late = slow
            .nack(&channel, &message.id, &HandlerError::retry("not yet"))
            .await;
        assert_eq!(late.unwrap_err().code(), Code::NotFound);
    }
    let mut conn = conn.clone();
    let dead: usize = conn.llen(&keys.dead).await.unwrap();
    assert_eq!(dead, 0, "a refused message was taken for poison");
}

/// The queue of a deployment serves only the channels of the topology, and
/// holds at most `max_waiting` messages on one channel; a duplicate of a
/// keyed send is answered even then, since it adds nothing.
#[tokio::test]
async fn a_deployment_serves_only_its_channels_each_with_bounded_waiting() {
    let queue_config = ordershop_message_queue::QueueConfig {
        max_waiting: 3,
        ..ordershop_message_queue::QueueConfig::default()
    };
    let infra =
        support::Infra::start_with(ordershop_event_store::StoreConfig::default(), queue_config)
            .await;
    let queue = infra.queue("sender");
    let refused = queue.send("made-up.channel", "{}", "").await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    assert!(refused.to_string().contains("made-up.channel"), "{refused}");

    let channel = "mail-service.send";
    let first = queue.send(channel, "{\"n\":0}", "key-0").await.unwrap();
    for n in 1..3 {
        queue
            .send(channel, &format!("{{\"n\":{n}}}"), "")
            .await
            .unwrap();
    }
    let full = queue.send(channel, "{\"n\":3}", "").await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full}");
    assert!(full.to_string().contains("limit"), "{full}");
    assert_eq!(
        queue.send(channel, "{\"n\":0}", "key-0").await.unwrap(),
        first
    );

    // Taking one makes room for one.
    let taken = queue
        .receive(channel, Duration::from_secs(1), Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a waiting message");
    queue.ack(channel, &taken.id).await.unwrap();
    queue.send(channel, "{\"n\":3}", "").await.unwrap();
}
