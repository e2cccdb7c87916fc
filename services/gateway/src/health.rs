//! Probes: `/healthz` says the process serves HTTP; `/readyz` says the
//! event store and the queue answer, so a load balancer sends requests only
//! to a gateway that can carry them out.

use axum::extract::State;
use serde_json::json;

use crate::{
    GatewayState,
    reply::{Answer, answer},
};

pub(crate) async fn live() -> Answer {
    answer(json!("ok"))
}

pub(crate) async fn ready(State(state): State<GatewayState>) -> Answer {
    let within = state.config.ready_timeout;
    let (event_store, queue) = tokio::join!(
        state.upstream.probe_event_store(within),
        state.upstream.probe_queue(within),
    );
    event_store?;
    queue?;
    answer(json!({ "event_store": "ok", "queue": "ok" }))
}
