//! Where the autoscaler reads an OrderShop's backlog: the Redis its services
//! use, with the same credentials.
//!
//! - external mode: `spec.redis.external.url`, password (and for
//!   `rediss://`, the CA certificate) from the Secrets the spec names;
//! - managed mode: the operator's Redis client Service
//!   (`<name>-redis.<namespace>.svc`), password from the generated Secret.
//!   Only reachable from inside the cluster: an operator run out of cluster
//!   (local development, the e2e tests) reports it as unreachable and holds.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use ordershop_topology::Role;
use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::crd::OrderShop;
use crate::names::{Names, REDIS_PASSWORD_KEY, REDIS_PORT};

/// A measurement pipeline answers in about a millisecond on a near Redis;
/// the counting scripts of nil lags take up to tens of milliseconds. Far
/// beyond that, Redis is unwell and the last decision should hold.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A key of a Secret: where the password or the CA certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecretItem {
    secret: String,
    key: String,
}

/// The Redis an OrderShop's consumers work on, as named by its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// `redis://host:port/db`, never with credentials (shown in status).
    pub url: String,
    password: Option<SecretItem>,
    /// The CA certificate of a `rediss://` Redis, when not a public one.
    ca: Option<SecretItem>,
    /// The operator's own Redis (reachable only from inside the cluster).
    pub managed: bool,
}

impl RedisAddress {
    pub fn of(shop: &OrderShop) -> Self {
        match &shop.spec.redis.external {
            Some(external) => Self {
                url: external.url.clone(),
                password: external.password_secret_ref.as_ref().map(|r| SecretItem {
                    secret: r.name.clone(),
                    key: r.key.clone(),
                }),
                ca: external.ca_secret_ref.as_ref().map(|r| SecretItem {
                    secret: r.name.clone(),
                    key: r.key.clone(),
                }),
                managed: false,
            },
            None => {
                let names = Names::new(shop.name_any());
                let namespace = shop.namespace().unwrap_or_default();
                Self {
                    url: format!("redis://{}.{namespace}.svc:{REDIS_PORT}/0", names.redis()),
                    password: Some(SecretItem {
                        secret: names.redis_secret(),
                        key: REDIS_PASSWORD_KEY.into(),
                    }),
                    ca: None,
                    managed: true,
                }
            }
        }
    }
}

/// Why the Redis credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("the Redis credentials Secret {secret} does not exist")]
    SecretMissing { secret: String },
    #[error("the Redis credentials Secret {secret} has no key {key:?}")]
    KeyMissing { secret: String, key: String },
    #[error("reading the Redis credentials Secret {secret}: {source}")]
    Kube {
        secret: String,
        #[source]
        source: kube::Error,
    },
}

/// An address with its password, ready to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub address: RedisAddress,
    password: Option<String>,
    /// PEM of the CA certificate, for `rediss://`.
    ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("address", &self.address)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca", &self.ca.is_some())
            .finish()
    }
}

impl RedisTarget {
    /// Reads the password the address names from its Secret.
    pub async fn resolve(
        client: &Client,
        namespace: &str,
        address: &RedisAddress,
    ) -> Result<Self, CredentialsError> {
        let password = match &address.password {
            None => None,
            Some(item) => {
                let bytes = read_secret_item(client, namespace, item).await?;
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        let ca = match &address.ca {
            None => None,
            Some(item) => Some(read_secret_item(client, namespace, item).await?),
        };
        Ok(Self {
            address: address.clone(),
            password,
            ca,
        })
    }

    /// A connection that is made on first use, with short timeouts: a poll
    /// must not wait long on a Redis that is gone, it holds the decision.
    pub fn connect(&self) -> Result<ConnectionManager, redis::RedisError> {
        let info = self.address.url.as_str().into_connection_info()?;
        // One small pipeline per poll: Nagle's algorithm could only delay it.
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        let info = info.set_tcp_settings(tcp);
        let info = match &self.password {
            Some(password) => {
                let settings = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(settings)
            }
            None => info,
        };
        let client = match &self.ca {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
            None => redis::Client::open(info)?,
        };
        // No retries inside the manager: a failed poll drops the connection
        // and the next poll makes a fresh one, so a retry never delays the
        // poll after it.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(0);
        ConnectionManager::new_lazy_with_config(client, config)
    }
}

async fn read_secret_item(
    client: &Client,
    namespace: &str,
    reference: &SecretItem,
) -> Result<Vec<u8>, CredentialsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&reference.secret)
        .await
        .map_err(|source| CredentialsError::Kube {
            secret: reference.secret.clone(),
            source,
        })?
        .ok_or_else(|| CredentialsError::SecretMissing {
            secret: reference.secret.clone(),
        })?;
    secret
        .data
        .and_then(|mut data| data.remove(&reference.key))
        .map(|bytes| bytes.0)
        .ok_or_else(|| CredentialsError::KeyMissing {
            secret: reference.secret.clone(),
            key: reference.key.clone(),
        })
}

/// An open connection to a target, and the consumer groups already made sure of on it.
pub struct RedisLink {
    pub target: RedisTarget,
    pub conn: ConnectionManager,
    /// Roles whose consumer groups were created (or found) on this Redis.
    pub groups_ensured_for: Vec<Role>,
    /// When the password was last read.
    pub resolved_at: std::time::Instant,
    /// Whether the last poll on this link failed.
    pub failing: bool,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("target", &self.target)
            .field("groups_ensured_for", &self.groups_ensured_for)
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

/// Whether this process runs in a pod (the managed Redis Service is then
/// reachable by its cluster DNS name).
pub fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures;
    use crate::crd::{ExternalRedisSpec, OrderShopSpec, SecretKeyRef};

    #[test]
    fn managed_mode_reads_the_operators_redis_service_with_the_generated_password() {
        let shop = fixtures::shop(OrderShopSpec::default());
        let address = RedisAddress::of(&shop);
        assert_eq!(address.url, "redis://shop-redis.ns.svc:6379/0");
        assert!(address.managed);
        assert_eq!(
            address.password,
            Some(SecretItem {
                secret: "shop-redis-auth".into(),
                key: "password".into()
            })
        );
    }

    #[test]
    fn external_mode_reads_the_spec_url_and_secret() {
        let mut spec = OrderShopSpec::default();
        spec.redis.external = Some(ExternalRedisSpec {
            url: "redis://127.0.0.1:7000/3".into(),
            password_secret_ref: Some(SecretKeyRef {
                name: "creds".into(),
                key: "pw".into(),
            }),
            ca_secret_ref: None,
        });
        let address = RedisAddress::of(&fixtures::shop(spec));
        assert_eq!(address.url, "redis://127.0.0.1:7000/3");
        assert!(!address.managed);
        assert_eq!(address.password.unwrap().secret, "creds");
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let target = RedisTarget {
            address: RedisAddress {
                url: "redis://r:6379/0".into(),
                password: None,
                ca: None,
                managed: false,
            },
            password: Some("hunter2".into()),
            ca: None,
        };
        assert!(!format!("{target:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_target_connects_lazily_so_an_absent_redis_fails_the_poll_not_the_setup() {
        let target = RedisTarget {
            address: RedisAddress {
                url: "redis://127.0.0.1:1/0".into(),
                password: Some(SecretItem {
                    secret: "s".into(),
                    key: "k".into(),
                }),
                ca: None,
                managed: false,
            },
            password: Some("pw".into()),
            ca: None,
        };
        let mut conn = target.connect().expect("a valid URL");
        let answer: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        assert!(answer.is_err(), "nothing listens on port 1");
    }
}
