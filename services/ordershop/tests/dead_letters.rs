//! `ordershop dead-letters` against a real Redis with the event store and
//! the queue: a permanently refused message and event are listed, shown
//! with their reasons, and redriven to a handler that now succeeds.

use std::process::Command;
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU32, Ordering},
};
use std::time::Duration;

use ordershop_client::{Append, HandlerError, ServeOptions, StartPosition, SubscribeOptions};
use ordershop_testkit::{Infra, eventually_async};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `ordershop dead-letters ARGS` against `infra`'s Redis; its stdout.
fn dead_letters(infra: &Infra, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ordershop"))
        .arg("dead-letters")
        .args(["--redis-url", infra.redis.url()])
        .args(args)
        .output()
        .expect("running ordershop dead-letters");
    assert!(
        output.status.success(),
        "dead-letters {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The `DEAD` column of `list` for `name`.
fn dead_count(listing: &str, name: &str) -> u64 {
    listing
        .lines()
        .find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.get(1) == Some(&name)).then(|| cols[2].parse().expect("a count"))
        })
        .unwrap_or_else(|| panic!("{name} is not listed:\n{listing}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_listed_shown_and_redriven() {
    let infra = Infra::start().await;
    let channel = "mail-service.send";
    let fixed = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(AtomicU32::new(0));
    let cancel = CancellationToken::new();
    let (is_fixed, count) = (fixed.clone(), handled.clone());
    let tasks =
        infra
            .queue("worker")
            .serve(ServeOptions::new(channel), cancel.clone(), move |message| {
                let outcome = if is_fixed.load(Ordering::SeqCst) {
                    count.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(message.attempt, 1, "redriven with a fresh count");
                    Ok(None)
                } else {
                    Err(HandlerError::permanent("no such mailbox"))
                };
                std::future::ready(outcome)
            });
    let id = infra
        .queue("sender")
        .send(channel, r#"{"to":"a@b.c"}"#, "")
        .await
        .unwrap();
    eventually_async("the message dead-lettered", DEADLINE, || async {
        (dead_count(&dead_letters(&infra, &["list"]), channel) == 1).then_some(())
    })
    .await;
    let shown = dead_letters(&infra, &["show", channel]);
    assert!(shown.contains(&id), "{shown}");
    assert!(shown.contains("reason: no such mailbox"), "{shown}");
    assert!(shown.contains("after 1 deliveries"), "{shown}");
    assert!(shown.contains(r#"a@b.c"#), "{shown}");

    fixed.store(true, Ordering::SeqCst);
    let redriven = dead_letters(&infra, &["redrive", channel]);
    assert!(redriven.contains("back in the waiting list"), "{redriven}");
    eventually_async("the redriven message handled", DEADLINE, || async {
        (handled.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert_eq!(dead_count(&dead_letters(&infra, &["list"]), channel), 0);
    cancel.cancel();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_redriven_to_its_group_only() {
    let infra = Infra::start().await;
    let store = infra.event_store();
    let fixed = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let cancel = CancellationToken::new();
    let (is_fixed, log) = (fixed.clone(), seen.clone());
    let task = store.subscribe(
        SubscribeOptions {
            topics: vec!["billing".into()],
            group: "shipping-service".into(),
            consumer: "s1".into(),
            start: StartPosition::Beginning,
            heads_of: Vec::new(),
        },
        cancel.clone(),
        move |delivery| {
            let entity = delivery.event.entity_id.clone();
            log.lock().unwrap().push(entity.clone());
            std::future::ready(if entity == "b-bad" && !is_fixed.load(Ordering::SeqCst) {
                Err(HandlerError::permanent("amount unreadable"))
            } else {
                Ok(())
            })
        },
    );
    let billing = |id: &str| Append {
        event_action: "entity_created".into(),
        event_data: format!(r#"{{"entity_id":"{id}"}}"#),
        entity_id: id.into(),
        ..Default::default()
    };
    store
        .publish(
            "billing",
            vec![billing("b-ok"), billing("b-bad"), billing("b-late")],
        )
        .await
        .unwrap();
    eventually_async("the bad billing dead-lettered", DEADLINE, || async {
        (dead_count(&dead_letters(&infra, &["list"]), "billing") == 1
            && seen.lock().unwrap().len() == 3)
            .then_some(())
    })
    .await;
    let shown = dead_letters(&infra, &["show", "billing"]);
    assert!(shown.contains("group shipping-service"), "{shown}");
    assert!(shown.contains("reason: amount unreadable"), "{shown}");

    fixed.store(true, Ordering::SeqCst);
    let redriven = dead_letters(&infra, &["redrive", "billing"]);
    assert!(
        redriven.contains("1 dead letter(s) of billing handed back"),
        "{redriven}"
    );
    // The group is rewound to just before the dead entry: it and the one
    // after it come again (handlers are idempotent), the one before does not.
    eventually_async("the redriven billing handled", DEADLINE, || async {
        let seen = seen.lock().unwrap().clone();
        (seen == ["b-ok", "b-bad", "b-late", "b-bad", "b-late"]).then_some(())
    })
    .await;
    assert_eq!(dead_count(&dead_letters(&infra, &["list"]), "billing"), 0);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn an_unknown_name_is_refused_with_the_topics_it_knows() {
    let infra = Infra::start().await;
    let output = Command::new(env!("CARGO_BIN_EXE_ordershop"))
        .args(["dead-letters", "--redis-url", infra.redis.url()])
        .args(["show", "nosuch.channel"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("neither a topic"), "{stderr}");
    assert!(stderr.contains("billing"), "{stderr}");
}
