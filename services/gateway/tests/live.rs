//! The live UI and its push, through a real listener: the page, events
//! reaching every browser, misbehaving clients, graceful shutdown.

mod support;

use std::time::Duration;

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header::CONTENT_TYPE},
};
use futures::{SinkExt, StreamExt};
use ordershop_gateway::GatewayConfig;
use serde_json::{Value, json};
use support::{DEADLINE, Infra, InfraExt, absent_clients, gateway};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

struct Running {
    address: String,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), ordershop_gateway::GatewayError>>,
}

async fn serve(infra: &Infra) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let config = GatewayConfig::default();
    let server = tokio::spawn(ordershop_gateway::run(
        listener,
        infra.clients("gateway-test"),
        config,
        shutdown.clone(),
    ));
    Running {
        address,
        shutdown,
        server,
    }
}

async fn connect(address: &str) -> Socket {
    let (socket, response) = connect_async(format!("ws://{address}/ws")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// The next text message within `within`, as JSON; `None` when none came.
async fn next_push(socket: &mut Socket, within: Duration) -> Option<Value> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(until, socket.next()).await.ok()??;
        match message.unwrap() {
            Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(frame) => panic!("closed by the server: {frame:?}"),
            _ => continue,
        }
    }
}

/// Publishes order events until `socket` receives one of them, which proves
/// the tail runs (it starts at the heads it finds, so events published
/// before it started are not pushed). Returns the pushed message.
async fn push_reaches(infra: &Infra, socket: &mut Socket) -> Value {
    let start = tokio::time::Instant::now();
    while start.elapsed() < DEADLINE {
        let id = uuid::Uuid::new_v4().to_string();
        infra
            .publish(
                "order",
                "entity_created",
                json!({"entity_id": id, "cart_id": "k1", "status": "CREATED"}),
            )
            .await;
        while let Some(message) = next_push(socket, Duration::from_millis(300)).await {
            if message["data"]["entity_id"] == json!(id) {
                return message;
            }
        }
    }
    panic!("no pushed event reached the socket within {DEADLINE:?}");
}

#[tokio::test]
async fn events_reach_browsers_and_no_client_can_stop_the_push() {
    let infra = Infra::start().await;
    let gateway = serve(&infra).await;
    let mut watcher = connect(&gateway.address).await;

    let message = push_reaches(&infra, &mut watcher).await;
    assert_eq!(message["action"], "order_created");
    assert_eq!(message["data"]["status"], "CREATED");
    assert!(
        message["ts"].as_u64().unwrap() > 1_600_000_000_000,
        "{message}"
    );

    // The reference let any browser stop the push for everyone.
    let mut rogue = connect(&gateway.address).await;
    for text in ["stop", "{\"action\": \"stop\"}", "unsubscribe"] {
        rogue.send(Message::Text(text.into())).await.unwrap();
    }
    rogue.close(None).await.unwrap();
    drop(rogue);

    infra
        .publish(
            "mail",
            "mail_sent",
            json!({"recipient": "a@b.c", "message": "Dear Ann!"}),
        )
        .await;
    let mail = loop {
        let message = next_push(&mut watcher, DEADLINE)
            .await
            .expect("the push went on");
        if message["action"] == "mail_sent" {
            break message;
        }
    };
    assert_eq!(mail["data"]["recipient"], "a@b.c");

    gateway.shutdown.cancel();
}

#[tokio::test]
async fn shutdown_closes_the_sockets_and_ends_the_server() {
    let infra = Infra::start().await;
    let gateway = serve(&infra).await;
    let mut socket = connect(&gateway.address).await;
    push_reaches(&infra, &mut socket).await;

    gateway.shutdown.cancel();
    let close = tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame in time");
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let stopped = tokio::time::timeout(DEADLINE, gateway.server)
        .await
        .expect("the server stops in time");
    stopped.unwrap().unwrap();
}

#[tokio::test]
async fn the_page_and_its_assets_are_served() {
    let app = gateway(absent_clients(), GatewayConfig::default());
    for (path, content_type, marker) in [
        ("/", "text/html; charset=utf-8", "id=\"events\""),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "new WebSocket",
        ),
        ("/ui/style.css", "text/css; charset=utf-8", ".events"),
    ] {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[CONTENT_TYPE], content_type, "{path}");
        assert!(response.headers().contains_key("content-security-policy"));
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains(marker), "{path}");
    }
}

/// A client that trickles its request headers is cut off after the header
/// read timeout, however it paces its bytes (slowloris).
#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let infra = Infra::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let config = GatewayConfig {
        header_read_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let server = tokio::spawn(ordershop_gateway::run(
        listener,
        infra.clients("gateway-test"),
        config,
        shutdown.clone(),
    ));
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A byte now and then, never the end of the headers.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 1024];
        loop {
            let _ = slow.write_all(b"X").await;
            match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => return,
                // hyper may answer 408 before closing.
                Ok(Ok(_)) => {}
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open after 10 s");

    // A client that sends its request is served as before.
    let mut fine = tokio::net::TcpStream::connect(address).await.unwrap();
    fine.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    fine.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// Over a real connection the peer address keys the rate limit: a client
/// past its burst gets 429 with Retry-After, and the probes stay open to it.
#[tokio::test]
async fn a_client_over_its_rate_is_told_to_come_back_later() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let config = GatewayConfig {
        rate_limit: Some(ordershop_gateway::RateLimit {
            per_second: std::num::NonZeroU32::new(1).unwrap(),
            burst: std::num::NonZeroU32::new(2).unwrap(),
            trust_forwarded_for: false,
        }),
        ..GatewayConfig::default()
    };
    let server = tokio::spawn(ordershop_gateway::run(
        listener,
        absent_clients(),
        config,
        shutdown.clone(),
    ));
    let status_of = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    };
    // The burst passes; a client going on faster than 1/s is refused (a
    // loop, not "the third": a stalled machine may refill a token).
    let mut served = 0;
    let refused = loop {
        let answer = status_of("/").await;
        if answer.starts_with("HTTP/1.1 429") {
            break answer;
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        served += 1;
        assert!(served < 50, "50 requests in a row were all served");
    };
    assert!(served >= 2, "the burst of 2 was not served");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(
        refused.contains("too many requests from this client"),
        "{refused}"
    );
    let probe = status_of("/healthz").await;
    assert!(probe.starts_with("HTTP/1.1 200"), "{probe}");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
