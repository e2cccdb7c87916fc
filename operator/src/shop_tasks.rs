//! One background task per OrderShop (the autoscaler's scalers, the
//! dead-letter watches): started when an OrderShop in the controller's cache
//! wants one, left to end by itself, all awaited after `stop`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use kube::runtime::reflector::{ObjectRef, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::crd::OrderShop;

/// Every `scan`, starts `start(key)` for each OrderShop of `shops` that
/// `wants` one and has none running; after `stop`, waits for them all (each
/// task watches `stop` itself and finishes its round).
///
/// It does not wait for the cache with `Store::wait_until_ready`: in
/// kube-runtime 5 that future keeps only the waker of its latest poller (a
/// `futures` oneshot), so a second waiter on the same store can leave the
/// controller's own waiters asleep. Reading a cache before its first list
/// only finds nothing yet.
pub async fn run_per_shop<F, T>(
    shops: &Store<OrderShop>,
    scan: Duration,
    stop: &CancellationToken,
    wants: impl Fn(&OrderShop) -> bool,
    mut start: F,
) where
    F: FnMut(ObjectRef<OrderShop>) -> T,
    T: Future<Output = ()> + Send + 'static,
{
    let mut tasks: HashMap<ObjectRef<OrderShop>, JoinHandle<()>> = HashMap::new();
    loop {
        tasks.retain(|_, task| !task.is_finished());
        for shop in shops.state() {
            let key = ObjectRef::from_obj(&*shop);
            if tasks.contains_key(&key) || !wants(&shop) {
                continue;
            }
            tasks.insert(key.clone(), tokio::spawn(start(key)));
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(scan) => {}
        }
    }
    for (_, task) in tasks {
        let _ = task.await;
    }
}
