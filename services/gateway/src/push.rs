//! The live push: one follow stream of every topic feeds a broadcast channel, and
//! each browser's WebSocket takes from it. Each domain event goes out as
//! `{action, data, ts}` ([`ordershop_core::RecordedEvent::to_push_message`]).
//!
//! Unlike the reference (defect 8), no client can affect another: the
//! socket ignores what a client sends (beyond pings and close), a client
//! that falls `push_buffer` events behind or does not take a message within
//! `push_send_timeout` is dropped alone, and the feed never waits for any
//! client.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{
        State, WebSocketUpgrade,
        ws::{
            CloseFrame, Message, Utf8Bytes, WebSocket, close_code,
            rejection::WebSocketUpgradeRejection,
        },
    },
    http::{
        HeaderMap, StatusCode,
        header::{HOST, ORIGIN},
    },
    response::Response,
};
use ordershop_client::{EventStore, Recorded, retry_until_cancelled};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, broadcast::error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::{GatewayState, reply::ApiError};

/// Browsers only ever send pings and close frames; anything big is abuse.
const CLIENT_MESSAGE_LIMIT: usize = 4 * 1024;
/// A ping this often finds connections that died silently (no FIN), which
/// would otherwise be noticed only at the next event.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// The broadcast side of the push, and the count of connected clients.
#[derive(Debug, Clone)]
pub(crate) struct PushHub {
    events: broadcast::Sender<Utf8Bytes>,
    clients: Arc<Semaphore>,
    max_clients: u32,
}

impl PushHub {
    pub(crate) fn new(buffer: usize, max_clients: usize) -> Self {
        let max_clients = u32::try_from(max_clients.max(1)).unwrap_or(u32::MAX);
        Self {
            events: broadcast::channel(buffer.max(1)).0,
            clients: Arc::new(Semaphore::new(max_clients as usize)),
            max_clients,
        }
    }

    /// Sends one push message to every connected client.
    fn publish(&self, message: Utf8Bytes) {
        // An error only means nobody is connected.
        let _ = self.events.send(message);
    }

    /// Waits until no client is connected, up to `grace`.
    pub(crate) async fn drained(&self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.clients.acquire_many(self.max_clients))
            .await
            .is_ok()
    }
}

/// The push message of a recorded event; `None` for an event this gateway
/// cannot read (logged: a newer writer than this gateway).
fn push_message(event: &Recorded) -> Option<Utf8Bytes> {
    match ordershop_app::decode_event(event) {
        Ok(recorded) => Some(recorded.to_push_message().to_string().into()),
        Err(err) => {
            tracing::debug!(error = %err, "not pushing an event this gateway cannot read");
            None
        }
    }
}

/// Follows every topic from its head at start (browsers want what happens
/// from now on) and publishes each event, until `shutdown` fires.
pub(crate) async fn follow_all(store: EventStore, hub: PushHub, shutdown: CancellationToken) {
    let topics = ordershop_topology::TOPICS;
    let Some(heads) = retry_until_cancelled(&shutdown, "live push: reading the heads", || {
        store.heads(topics)
    })
    .await
    else {
        return;
    };
    // The last entry pushed per topic: where a broken stream resumes.
    let positions = Mutex::new(heads);
    store
        .follow_forever(
            topics,
            |topic| {
                let positions = positions.lock().unwrap_or_else(|e| e.into_inner());
                positions.get(topic).cloned().unwrap_or_default()
            },
            |page| {
                let Some(last) = page.last() else { return };
                positions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(last.topic.clone(), last.entry_id.clone());
                for event in &page {
                    if let Some(message) = push_message(event) {
                        hub.publish(message);
                    }
                }
            },
            &shutdown,
        )
        .await;
}

/// `GET /ws`: the WebSocket of the live push.
pub(crate) async fn websocket(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Before the handshake's own checks: a page of another site learns
    // nothing from how its request would fail.
    check_origin(&headers, &state.config.allowed_origins)?;
    let upgrade = upgrade.map_err(|rejection| match rejection {
        // A plain GET: this address only speaks WebSocket (RFC 9110 426).
        WebSocketUpgradeRejection::InvalidConnectionHeader(_)
        | WebSocketUpgradeRejection::InvalidUpgradeHeader(_) => ApiError::UpgradeRequired,
        other => ApiError::Rejected {
            status: other.status(),
            message: other.body_text(),
        },
    })?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let permit = state
        .push
        .clients
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::PushFull)?;
    // Subscribed before the handshake answers, so a client sees every event
    // published after its connection was accepted.
    let client = PushClient {
        events: state.push.events.subscribe(),
        send_timeout: state.config.push_send_timeout,
        shutdown: state.shutdown.clone(),
        _permit: permit,
    };
    Ok(upgrade
        // The token rode in as a subprotocol (see `auth`); the handshake
        // must name the protocol it accepts.
        .protocols([crate::auth::PROTOCOL])
        .max_message_size(CLIENT_MESSAGE_LIMIT)
        .max_frame_size(CLIENT_MESSAGE_LIMIT)
        .on_failed_upgrade(|err| tracing::debug!(error = %err, "WebSocket handshake failed"))
        .on_upgrade(move |socket| client.serve(socket)))
}

/// Refuses a browser's WebSocket opened by a page of another site
/// (cross-site WebSocket hijacking: browsers do not apply the same-origin
/// policy to WebSockets, but they do send the page's `Origin`). A client
/// without `Origin` is not a browser and is let in; a browser is let in when
/// its page came from this gateway (the Origin's host is the `Host` it
/// connected to) or from an origin in `allowed`.
pub(crate) fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let same_host = origin
        .split_once("://")
        .map(|(_, authority)| authority)
        .zip(headers.get(HOST).and_then(|host| host.to_str().ok()))
        .is_some_and(|(authority, host)| authority.eq_ignore_ascii_case(host));
    let listed = allowed
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin));
    if same_host || listed {
        Ok(())
    } else {
        Err(ApiError::Rejected {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "a WebSocket from origin {origin:?} is refused: only pages of this gateway, or of an allowed origin (--allowed-origin), may open one"
            ),
        })
    }
}

/// One connected browser.
struct PushClient {
    events: broadcast::Receiver<Utf8Bytes>,
    send_timeout: Duration,
    shutdown: CancellationToken,
    /// Counts this client among the connected ones until it ends.
    _permit: OwnedSemaphorePermit,
}

impl PushClient {
    async fn serve(mut self, mut socket: WebSocket) {
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        let close = loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    break Some((close_code::AWAY, "the server is shutting down"));
                }
                event = self.events.recv() => match event {
                    Ok(text) => {
                        if !self.send(&mut socket, Message::Text(text)).await {
                            break None;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "dropping a WebSocket client that fell behind");
                        break Some((close_code::AGAIN, "fell behind the event stream; reconnect"));
                    }
                    Err(RecvError::Closed) => break Some((close_code::AWAY, "the push stopped")),
                },
                _ = heartbeat.tick() => {
                    if !self.send(&mut socket, Message::Ping(Bytes::new())).await {
                        break None;
                    }
                }
                incoming = socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                    // Pongs to client pings are sent by the socket itself;
                    // anything else a client says changes nothing.
                    Some(Ok(_)) => {}
                },
            }
        };
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = self.send(&mut socket, Message::Close(Some(frame))).await;
        }
    }

    /// Sends within the timeout; `false` means the client is gone or too
    /// slow and the connection ends.
    async fn send(&self, socket: &mut WebSocket, message: Message) -> bool {
        match tokio::time::timeout(self.send_timeout, socket.send(message)).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "WebSocket client gone");
                false
            }
            Err(_) => {
                tracing::debug!(timeout = ?self.send_timeout, "dropping a WebSocket client that does not read");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(topic: &str, action: &str, data: &str) -> Recorded {
        Recorded {
            topic: topic.into(),
            entry_id: "1700000000123-0".into(),
            version: 2,
            event_id: "e1".into(),
            event_action: action.into(),
            event_data: data.into(),
            entity_id: "o1".into(),
            ..Recorded::default()
        }
    }

    use serde_json::Value;

    #[test]
    fn events_become_push_messages() {
        let message = push_message(&recorded(
            "order",
            "entity_updated",
            r#"{"entity_id":"o1","status":"IN_STOCK"}"#,
        ))
        .unwrap();
        let message: Value = serde_json::from_str(message.as_str()).unwrap();
        assert_eq!(message["action"], "order_updated");
        assert_eq!(message["data"]["status"], "IN_STOCK");
        assert_eq!(message["ts"], 1_700_000_000_123_u64);
    }

    #[test]
    fn unknown_events_are_not_pushed() {
        assert!(push_message(&recorded("audit", "entity_created", "{}")).is_none());
        assert!(push_message(&recorded("order", "entity_renamed", "{}")).is_none());
        assert!(push_message(&recorded("order", "entity_created", "not json")).is_none());
    }

    #[tokio::test]
    async fn a_lagging_receiver_does_not_hold_back_the_others() {
        let hub = PushHub::new(2, 4);
        let mut slow = hub.events.subscribe();
        let mut fast = hub.events.subscribe();
        for n in 0..5 {
            hub.publish(format!("{n}").into());
            assert_eq!(fast.recv().await.unwrap().as_str(), n.to_string());
        }
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(3))));
    }
}
