//! The read model: every topic folded, in order, into a Redis cache that
//! answers the queries of the wire contract.
//!
//! Cache layout (key names in `ordershop_topology::ReadModelKeys`, the
//! layout's number in them): per topic a hash entity id -> entity JSON
//! (mails: sort key -> mail entry), the index of those keys in byte order
//! (lists are read in pages after a cursor, [`pages`]), a hash entity id ->
//! version, the tags of billings and shippings both ways, and the
//! checkpoint (last entry applied), written together by one script per
//! page. So:
//! - a restart resumes after the checkpoint;
//! - a flushed cache (checkpoints gone) is rebuilt from the beginning;
//! - deleted entities stay deleted (their version stays);
//! - two replicas can fold into the same cache: each write is guarded by
//!   the version and the checkpoint, so it happens once;
//! - one fold task per topic, whatever the number of queries;
//! - a cache of the first layout is removed, and this one built beside it.

mod fold;
mod pages;
mod queries;
mod script;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use ordershop_client::{Clients, Message, ServeOptions, retry_until_cancelled};
use ordershop_core::Topic;
use ordershop_redis::Redis;
use ordershop_topology::{Role, channel_name};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use fold::{FoldHandle, Folder};
use ordershop_topology::EntryId;
use queries::Queries;

/// Runs the read model until `shutdown` fires.
pub(crate) async fn run(
    clients: Clients,
    redis: Redis,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut folds = HashMap::new();
    for topic in Topic::ALL {
        let (folder, handle) = Folder::new(
            topic,
            redis.clone(),
            clients.event_store.clone(),
            settings.view.idle_check,
            settings.read_model_legacy_grace,
        );
        folds.insert(topic, handle);
        tasks.push(tokio::spawn(folder.run(shutdown.clone())));
    }
    tasks.push(tokio::spawn(report_ready(
        clients.clone(),
        folds.clone(),
        settings.clone(),
        shutdown.clone(),
    )));
    let queries = Arc::new(Queries::new(redis, folds, settings.read_model_wait));
    for function in Role::ReadModel.functions() {
        let channel = channel_name(Role::ReadModel.service_name(), function);
        let options = ServeOptions {
            concurrency: settings.concurrency_of(&channel),
            lease: settings.lease,
            wait: settings.receive_wait,
            ..ServeOptions::new(channel)
        };
        let queries = queries.clone();
        tasks.extend(
            clients
                .queue
                .serve(options, shutdown.clone(), move |message: Message| {
                    let queries = queries.clone();
                    async move { queries.handle(function, &message).await }
                }),
        );
    }
    join_all(tasks).await;
}

/// Sets the readiness flag once the cache has caught up with the heads the
/// event store had when the read model started.
async fn report_ready(
    clients: Clients,
    folds: HashMap<Topic, FoldHandle>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let names: Vec<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
    let Some(heads) =
        retry_until_cancelled(&shutdown, "asking the event store for its heads", || {
            clients.event_store.heads(&names)
        })
        .await
    else {
        return;
    };
    let caught_up = join_all(folds.iter().map(|(topic, fold)| {
        let head = heads
            .get(topic.name())
            .and_then(|h| EntryId::parse(h))
            .unwrap_or(EntryId::ZERO);
        let mut checkpoint = fold.checkpoint.clone();
        async move {
            let _ = checkpoint.wait_for(|c| *c >= head).await;
        }
    }));
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = caught_up => {
            tracing::info!("read model caught up with the event store");
            settings.readiness.set(true);
        }
    }
}
