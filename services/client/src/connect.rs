//! Channels to the event store and the message queue, balanced over every
//! address their host name resolves to.
//!
//! One HTTP/2 connection carries all of a client's calls. Behind a
//! Kubernetes ClusterIP Service, kube-proxy picks a backend per connection,
//! so a client stays on the replica it first reached and replicas added
//! later get no share of the existing clients. So a host name is resolved
//! here, again every [`Connector::refresh`], and the channel spreads calls
//! over one connection per address (tonic's balanced channel: a random
//! pick of two, all equally loaded). Pointed at a headless Service, whose
//! name resolves to the ready pods, the calls spread over every replica and
//! follow scale-out and scale-in; pointed at a ClusterIP Service (one
//! address) or at an IP address, it is one connection, as before.
//!
//! - Until the first resolution, and for as long as the name has never
//!   resolved, the channel connects by the name itself (the connector
//!   resolves it at connect time), so a call never waits for the resolver.
//! - A failed or empty resolution keeps the last addresses (a DNS hiccup
//!   must not drop working connections); a call to an address that went
//!   away fails as `Unavailable`, which the calls retry.
//! - A removed address's connection stays open for the streams still on it
//!   (a subscription keeps its server until the stream ends); new calls no
//!   longer go there.
//! - IPv4 addresses are preferred when a name has both: the servers listen
//!   on one family, and a connection per address of the other would fail.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ordershop_grpc_auth::Credentials;
use tokio::sync::mpsc::Sender;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::channel::Change;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Uri};

/// What the API clients call through: a channel whose calls carry the
/// process' role token.
pub type Transport = InterceptedService<Channel, Credentials>;
use tracing::{debug, info, warn};

use crate::ClientError;

/// How often a host name is resolved again: a new replica gets calls
/// within this (plus the DNS TTL, 5 s for Kubernetes Services).
const REFRESH: Duration = Duration::from_secs(5);
/// A resolution that takes longer is given up until the next refresh.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Endpoint changes waiting for the channel to take them.
const CHANGES_CAPACITY: usize = 64;

/// A lazily connecting channel to `url` (no I/O until the first call;
/// after a server restart the next call reconnects by itself), balanced
/// over the addresses of its host name ([`Connector`]).
pub fn connect(url: &str) -> Result<Channel, ClientError> {
    Connector::default().connect(url)
}

/// Finds the addresses behind a host name.
pub trait Resolve: Send + Sync + 'static {
    /// The socket addresses of `host`, `port` being the URL's.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;
}

/// The system's resolver (`getaddrinfo`, on tokio's blocking pool): what
/// the connection would have used, search domains included.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Makes channels: how host names are resolved, and how often again, and
/// which CA an `https://` server's certificate must chain to.
#[derive(Clone)]
pub struct Connector {
    resolver: Arc<dyn Resolve>,
    refresh: Duration,
    ca: Option<Certificate>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("refresh", &self.refresh)
            .field("tls", &self.ca.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Connector {
    fn default() -> Self {
        Self::new(SystemResolver, REFRESH)
    }
}

impl Connector {
    pub fn new(resolver: impl Resolve, refresh: Duration) -> Self {
        Self {
            resolver: Arc::new(resolver),
            refresh,
            ca: None,
        }
    }

    /// Trusts `ca_pem` (and nothing else) for `https://` URLs.
    pub fn with_ca(mut self, ca_pem: impl AsRef<[u8]>) -> Self {
        self.ca = Some(Certificate::from_pem(ca_pem));
        self
    }

    /// The TLS settings of a connection to `uri`: none for `http://`; for
    /// `https://`, the CA and the name the certificate must carry (the
    /// URL's host, also when connecting to one of its addresses).
    fn tls(&self, uri: &Uri, host: &str) -> Result<Option<ClientTlsConfig>, ClientError> {
        if uri.scheme_str() != Some("https") {
            return Ok(None);
        }
        let ca = self.ca.clone().ok_or_else(|| {
            ClientError::InvalidEndpoint(format!(
                "{uri}: an https:// URL needs the CA that signed the server's certificate"
            ))
        })?;
        Ok(Some(
            ClientTlsConfig::new().ca_certificate(ca).domain_name(host),
        ))
    }

    /// How often a host name is resolved again.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// A channel to `url`. An IP address or `localhost` is one lazily
    /// connecting endpoint; any other host name is resolved by a task that
    /// lives as long as the channel (so this needs a tokio runtime, as
    /// every channel does).
    pub fn connect(&self, url: &str) -> Result<Channel, ClientError> {
        let uri = endpoint(url)?.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| ClientError::InvalidEndpoint(format!("{url}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = self.tls(&uri, &host)?;
        let named = secured(endpoint(url)?, &tls)?;
        // localhost names both families while a local server usually
        // listens on one; there is nothing to balance anyway.
        if host.parse::<IpAddr>().is_ok() || host.eq_ignore_ascii_case("localhost") {
            return Ok(named.connect_lazy());
        }
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let (channel, changes) = Channel::balance_channel(CHANGES_CAPACITY);
        changes
            .try_send(Change::Insert(Target::Name, named))
            .map_err(|_| ClientError::InvalidEndpoint(format!("{url}: channel closed")))?;
        let resolving = Resolving {
            resolver: self.resolver.clone(),
            refresh: self.refresh,
            tls,
            uri,
            host,
            port,
            changes,
        };
        tokio::spawn(resolving.run());
        Ok(channel)
    }
}

/// TLS with `tls` (for an `https://` URL), or the endpoint as it is.
fn secured(endpoint: Endpoint, tls: &Option<ClientTlsConfig>) -> Result<Endpoint, ClientError> {
    match tls {
        None => Ok(endpoint),
        Some(config) => endpoint
            .tls_config(config.clone())
            .map_err(|e| ClientError::InvalidEndpoint(format!("TLS: {e}"))),
    }
}

/// An endpoint with the settings every connection gets.
fn endpoint(url: &str) -> Result<Endpoint, ClientError> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| ClientError::InvalidEndpoint(format!("{url}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        // Keepalives notice a dead server within seconds on long-lived
        // subscription streams, instead of waiting for TCP timeouts.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true))
}

/// One endpoint of a balanced channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Target {
    /// The URL as given, resolved when connecting (until a resolution of
    /// our own has found addresses).
    Name,
    Address(SocketAddr),
}

/// The endpoints after a resolution that found `resolved` (None: it
/// failed), the endpoints being `current`.
fn next_targets(current: &BTreeSet<Target>, resolved: Option<Vec<SocketAddr>>) -> BTreeSet<Target> {
    let resolved = resolved.unwrap_or_default();
    let v4 = resolved.iter().any(SocketAddr::is_ipv4);
    let found: BTreeSet<Target> = resolved
        .into_iter()
        .filter(|a| a.is_ipv4() == v4)
        .map(Target::Address)
        .collect();
    if !found.is_empty() {
        return found;
    }
    if current.iter().any(|t| matches!(t, Target::Address(_))) {
        current.clone()
    } else {
        BTreeSet::from([Target::Name])
    }
}

/// What to tell the channel to go from `current` to `next`: inserts first,
/// so it is never without an endpoint in between.
fn changes(current: &BTreeSet<Target>, next: &BTreeSet<Target>) -> (Vec<Target>, Vec<Target>) {
    (
        next.difference(current).copied().collect(),
        current.difference(next).copied().collect(),
    )
}

/// The task that keeps a balanced channel's endpoints in step with DNS.
struct Resolving {
    resolver: Arc<dyn Resolve>,
    refresh: Duration,
    /// The URL as given: the scheme of every address's endpoint, and the
    /// origin (`:authority`) of its requests.
    uri: Uri,
    host: String,
    port: u16,
    /// Verifies the server's certificate for `host`, whichever address the
    /// connection goes to.
    tls: Option<ClientTlsConfig>,
    changes: Sender<Change<Target, Endpoint>>,
}

impl Resolving {
    async fn run(self) {
        let mut current = BTreeSet::from([Target::Name]);
        let mut failing = false;
        loop {
            let resolved = tokio::select! {
                // Every clone of the channel is gone.
                () = self.changes.closed() => return,
                resolved = tokio::time::timeout(
                    RESOLVE_TIMEOUT,
                    self.resolver.resolve(&self.host, self.port),
                ) => resolved.unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"))),
            };
            let resolved = match resolved {
                Ok(addresses) if !addresses.is_empty() => {
                    failing = false;
                    Some(addresses)
                }
                Ok(_) => None,
                Err(error) => {
                    // Once per failing stretch: a name that never resolves
                    // would log every refresh otherwise.
                    if !failing {
                        warn!(host = %self.host, %error, "resolving failed; keeping the endpoints");
                    }
                    failing = true;
                    None
                }
            };
            let next = next_targets(&current, resolved);
            if next != current {
                if !self.apply(&current, &next).await {
                    return;
                }
                info!(host = %self.host, endpoints = ?next, "endpoints changed");
                current = next;
            } else {
                debug!(host = %self.host, endpoints = current.len(), "endpoints unchanged");
            }
            tokio::select! {
                () = self.changes.closed() => return,
                () = tokio::time::sleep(self.refresh) => {}
            }
        }
    }

    /// Sends the changes; false when the channel is gone.
    async fn apply(&self, current: &BTreeSet<Target>, next: &BTreeSet<Target>) -> bool {
        let (inserted, removed) = changes(current, next);
        for target in inserted {
            let endpoint = match self.endpoint(target) {
                Ok(endpoint) => endpoint,
                Err(error) => {
                    warn!(host = %self.host, %error, "skipping an endpoint");
                    continue;
                }
            };
            if self
                .changes
                .send(Change::Insert(target, endpoint))
                .await
                .is_err()
            {
                return false;
            }
        }
        for target in removed {
            if self.changes.send(Change::Remove(target)).await.is_err() {
                return false;
            }
        }
        true
    }

    fn endpoint(&self, target: Target) -> Result<Endpoint, ClientError> {
        let scheme = self.uri.scheme_str().unwrap_or("http");
        match target {
            Target::Name => secured(endpoint(&self.uri.to_string())?, &self.tls),
            Target::Address(address) => secured(
                endpoint(&format!("{scheme}://{address}"))?.origin(self.uri.clone()),
                &self.tls,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn targets(addresses: &[&str]) -> BTreeSet<Target> {
        addresses.iter().map(|a| Target::Address(addr(a))).collect()
    }

    #[test]
    fn resolved_addresses_replace_the_name_and_follow_dns() {
        let start = BTreeSet::from([Target::Name]);
        let two = next_targets(
            &start,
            Some(vec![addr("10.0.0.1:50051"), addr("10.0.0.2:50051")]),
        );
        assert_eq!(two, targets(&["10.0.0.1:50051", "10.0.0.2:50051"]));
        assert_eq!(
            changes(&start, &two),
            (two.iter().copied().collect(), vec![Target::Name]),
            "addresses in first, then the name out"
        );
        let scaled = next_targets(
            &two,
            Some(vec![addr("10.0.0.2:50051"), addr("10.0.0.3:50051")]),
        );
        assert_eq!(
            changes(&two, &scaled),
            (
                vec![Target::Address(addr("10.0.0.3:50051"))],
                vec![Target::Address(addr("10.0.0.1:50051"))]
            )
        );
    }

    #[test]
    fn a_failed_or_empty_resolution_keeps_what_there_is() {
        let two = targets(&["10.0.0.1:50051", "10.0.0.2:50051"]);
        assert_eq!(next_targets(&two, None), two);
        let start = BTreeSet::from([Target::Name]);
        assert_eq!(
            next_targets(&start, None),
            start,
            "never resolved: the name, resolved when connecting"
        );
    }

    #[test]
    fn ipv4_is_preferred_when_a_name_has_both_families() {
        let start = BTreeSet::from([Target::Name]);
        assert_eq!(
            next_targets(
                &start,
                Some(vec![addr("[fd00::1]:50051"), addr("10.0.0.1:50051")])
            ),
            targets(&["10.0.0.1:50051"])
        );
        assert_eq!(
            next_targets(&start, Some(vec![addr("[fd00::1]:50051")])),
            targets(&["[fd00::1]:50051"])
        );
    }

    #[tokio::test]
    async fn addresses_and_localhost_are_one_endpoint_and_bad_urls_are_refused() {
        // No resolver task for these: a resolver that panics proves it.
        struct Never;
        impl Resolve for Never {
            fn resolve<'a>(
                &'a self,
                _: &'a str,
                _: u16,
            ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
                panic!("addresses are not resolved")
            }
        }
        let connector = Connector::new(Never, Duration::from_millis(1));
        for url in [
            "http://127.0.0.1:50051",
            "http://[::1]:50051",
            "http://localhost:50051",
        ] {
            connector.connect(url).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(
            connector.connect("not a url"),
            Err(ClientError::InvalidEndpoint(_))
        ));
    }
}
