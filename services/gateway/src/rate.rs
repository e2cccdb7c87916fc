//! Per-client rate limits: each client address gets a bucket of
//! `per_second` requests, `burst` at once (GCRA, governor); a client over
//! its rate is answered 429 with `Retry-After` at once, before its request
//! costs anything, while other clients go on. The probes are exempt.
//!
//! The client is the connection's peer address, or, behind a proxy that
//! appends it (an Ingress), the last `X-Forwarded-For` entry: the address
//! the nearest proxy saw, which a client cannot forge (the entries before
//! it are the client's own say).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio_util::sync::CancellationToken;

use crate::{GatewayState, reply::ApiError, routes};

/// How often buckets of clients that came back to full are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// A per-client rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second each client may make on average.
    pub per_second: NonZeroU32,
    /// Requests a client may make at once after a pause.
    pub burst: NonZeroU32,
    /// Key clients by the last `X-Forwarded-For` entry (behind a proxy
    /// that appends it) instead of the peer address.
    pub trust_forwarded_for: bool,
}

/// The limiter of one gateway.
#[derive(Debug)]
pub(crate) struct Limiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    trust_forwarded_for: bool,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Arc<Self> {
        Arc::new(Self {
            buckets: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(limit.per_second).allow_burst(limit.burst),
            ),
            trust_forwarded_for: limit.trust_forwarded_for,
        })
    }

    /// Forgets idle clients every minute until `shutdown`, so the table
    /// holds only clients seen lately however many came.
    pub(crate) async fn forget_idle(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(FORGET_EVERY) => {}
            }
            self.buckets.retain_recent();
            self.buckets.shrink_to_fit();
        }
    }

    /// The client `request` counts against.
    fn client(&self, request: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(last) = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .next_back()
            && let Ok(address) = last.trim().parse::<IpAddr>()
        {
            return Some(address);
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    }

    /// How long `client` must wait, if it is over its rate.
    fn wait(&self, client: IpAddr) -> Option<Duration> {
        self.buckets
            .check_key(&client)
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

pub(crate) async fn limit(
    State(state): State<GatewayState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = &state.rate else {
        return next.run(request).await;
    };
    if [routes::HEALTHZ, routes::READYZ].contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let wait = limiter
        .client(&request)
        .and_then(|client| limiter.wait(client));
    match wait {
        Some(retry_after) => ApiError::RateLimited { retry_after }.into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32, trust: bool) -> Arc<Limiter> {
        Limiter::new(RateLimit {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
            trust_forwarded_for: trust,
        })
    }

    fn request(peer: &str, forwarded: Option<&str>) -> Request {
        let mut builder = axum::http::Request::builder().uri("/customers");
        if let Some(forwarded) = forwarded {
            builder = builder.header("x-forwarded-for", forwarded);
        }
        let mut request = builder.body(axum::body::Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        request
    }

    #[test]
    fn a_client_over_its_burst_waits_and_others_do_not() {
        let limiter = limiter(1, 3, false);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.wait(a), None);
        }
        let wait = limiter.wait(a).expect("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(limiter.wait(b), None);
    }

    #[test]
    fn the_forwarded_address_counts_only_when_trusted() {
        let behind = request("10.1.1.1:4000", Some("6.6.6.6, 192.0.2.7"));
        assert_eq!(
            limiter(1, 1, true).client(&behind),
            Some("192.0.2.7".parse().unwrap()),
            "the address the proxy appended, not the client's own say"
        );
        assert_eq!(
            limiter(1, 1, false).client(&behind),
            Some("10.1.1.1".parse().unwrap())
        );
        let garbled = request("10.1.1.1:4000", Some("not an address"));
        assert_eq!(
            limiter(1, 1, true).client(&garbled),
            Some("10.1.1.1".parse().unwrap())
        );
    }
}
