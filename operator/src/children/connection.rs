//! How the Redis clients among the services find and authenticate to Redis.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

use crate::crd::ExternalRedisSpec;
use crate::names::{Names, REDIS_PASSWORD_KEY, REDIS_PORT};

/// Name of the env var holding the Redis password in every Redis client
/// container; the URL refers to it with Kubernetes' `$(VAR)` expansion, so
/// the password never appears in a pod spec.
pub(crate) const PASSWORD_ENV: &str = "REDIS_PASSWORD";

/// The Redis URL and credentials the services get.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConnection {
    /// Value of `ORDERSHOP_REDIS_URL`, possibly with `$(REDIS_PASSWORD)`.
    pub url: String,
    /// Where `REDIS_PASSWORD` comes from; none for a Redis without AUTH.
    pub password: Option<SecretKeySelector>,
    /// `host:port` (or the URL's authority) for status.
    pub endpoint: String,
}

impl RedisConnection {
    /// The operator's own Redis, through its client Service.
    pub fn managed(names: &Names) -> Self {
        let host = names.redis();
        Self {
            url: format!("redis://:$({PASSWORD_ENV})@{host}:{REDIS_PORT}/0"),
            password: Some(SecretKeySelector {
                name: names.redis_secret(),
                key: REDIS_PASSWORD_KEY.into(),
                optional: Some(false),
            }),
            endpoint: format!("{host}:{REDIS_PORT}"),
        }
    }

    /// An existing Redis. The CRD refuses URLs with credentials, so the
    /// password (if any) is spliced in right after the scheme. The password
    /// must therefore be URL-safe (no `@`, `:` or `/`).
    pub fn external(spec: &ExternalRedisSpec) -> Self {
        let (scheme, rest) = spec
            .url
            .split_once("://")
            .unwrap_or(("redis", spec.url.as_str()));
        let endpoint = rest.split('/').next().unwrap_or(rest).to_string();
        match &spec.password_secret_ref {
            Some(secret) => Self {
                url: format!("{scheme}://:$({PASSWORD_ENV})@{rest}"),
                password: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    optional: Some(false),
                }),
                endpoint,
            },
            None => Self {
                url: spec.url.clone(),
                password: None,
                endpoint,
            },
        }
    }

    /// Env vars of a Redis client container, in expansion order: the
    /// password must precede the URL that refers to it.
    pub fn env(&self) -> Vec<EnvVar> {
        let mut env = Vec::new();
        if let Some(secret) = &self.password {
            env.push(EnvVar {
                name: PASSWORD_ENV.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(secret.clone()),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
        env.push(EnvVar {
            name: "ORDERSHOP_REDIS_URL".into(),
            value: Some(self.url.clone()),
            ..EnvVar::default()
        });
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SecretKeyRef;

    #[test]
    fn managed_url_uses_the_client_service_and_the_password_env() {
        let c = RedisConnection::managed(&Names::new("shop"));
        assert_eq!(c.url, "redis://:$(REDIS_PASSWORD)@shop-redis:6379/0");
        assert_eq!(c.password.unwrap().name, "shop-redis-auth");
        assert_eq!(c.endpoint, "shop-redis:6379");
    }

    #[test]
    fn external_password_is_spliced_after_the_scheme() {
        let c = RedisConnection::external(&ExternalRedisSpec {
            url: "rediss://cache.example:6380/2".into(),
            password_secret_ref: Some(SecretKeyRef {
                name: "creds".into(),
                key: "pw".into(),
            }),
        });
        assert_eq!(c.url, "rediss://:$(REDIS_PASSWORD)@cache.example:6380/2");
        assert_eq!(c.endpoint, "cache.example:6380");
        let env = c.env();
        assert_eq!(
            env[0].name, "REDIS_PASSWORD",
            "password first: $(VAR) only expands earlier vars"
        );
        assert_eq!(env[1].name, "ORDERSHOP_REDIS_URL");
    }

    #[test]
    fn external_without_auth_keeps_the_url() {
        let c = RedisConnection::external(&ExternalRedisSpec {
            url: "redis://127.0.0.1:6379/0".into(),
            password_secret_ref: None,
        });
        assert_eq!(c.url, "redis://127.0.0.1:6379/0");
        assert_eq!(c.env().len(), 1);
    }
}
