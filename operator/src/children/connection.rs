//! How the Redis clients among the services find and authenticate to Redis.

use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, KeyToPath, SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
};

use ordershop_topology::Role;

use super::redis::role_password_key;
use crate::crd::ExternalRedisSpec;
use crate::names::{Names, REDIS_PASSWORD_KEY, REDIS_PORT};

/// The env var holding the Redis password in every Redis client container
/// (`ordershop --redis-password`). Apart from the URL, so a password needs
/// no percent-encoding and never appears in a pod spec or a logged URL.
pub(crate) const PASSWORD_ENV: &str = "ORDERSHOP_REDIS_PASSWORD";
/// The env var naming the role's ACL user (`ordershop --redis-username`).
pub(crate) const USERNAME_ENV: &str = "ORDERSHOP_REDIS_USERNAME";
/// The env var naming the CA file of a `rediss://` Redis (`--redis-ca-file`).
pub(crate) const CA_FILE_ENV: &str = "ORDERSHOP_REDIS_CA_FILE";
/// Where the CA Secret's key is mounted in Redis client containers.
const CA_DIR: &str = "/etc/ordershop/redis-ca";
const CA_FILE: &str = "ca.crt";
const CA_VOLUME: &str = "redis-ca";

/// The Redis URL and credentials the services get.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConnection {
    /// Value of `ORDERSHOP_REDIS_URL`: never with credentials.
    pub url: String,
    /// Where `ORDERSHOP_REDIS_PASSWORD` comes from; none for a Redis without AUTH.
    pub password: Option<SecretKeySelector>,
    /// The Secret key with the CA certificate of a `rediss://` Redis.
    pub ca: Option<SecretKeySelector>,
    /// Each role connects as its own ACL user, its password under
    /// `<role>.password` in the `password` Secret (the managed Redis).
    pub role_users: bool,
    /// `host:port` (or the URL's authority) for status.
    pub endpoint: String,
}

impl RedisConnection {
    /// The operator's own Redis, through its client Service.
    pub fn managed(names: &Names) -> Self {
        let host = names.redis();
        Self {
            url: format!("redis://{host}:{REDIS_PORT}/0"),
            password: Some(SecretKeySelector {
                name: names.redis_secret(),
                key: REDIS_PASSWORD_KEY.into(),
                optional: Some(false),
            }),
            ca: None,
            role_users: true,
            endpoint: format!("{host}:{REDIS_PORT}"),
        }
    }

    /// An existing Redis. The CRD refuses URLs with credentials; the
    /// password and the CA come from Secrets.
    pub fn external(spec: &ExternalRedisSpec) -> Self {
        let rest = spec
            .url
            .split_once("://")
            .map_or(spec.url.as_str(), |(_, rest)| rest);
        let endpoint = rest.split('/').next().unwrap_or(rest).to_string();
        let selector = |name: &str, key: &str| SecretKeySelector {
            name: name.to_owned(),
            key: key.to_owned(),
            optional: Some(false),
        };
        Self {
            url: spec.url.clone(),
            password: spec
                .password_secret_ref
                .as_ref()
                .map(|s| selector(&s.name, &s.key)),
            ca: spec
                .ca_secret_ref
                .as_ref()
                .map(|s| selector(&s.name, &s.key)),
            role_users: false,
            endpoint,
        }
    }

    /// Env vars of `role`'s container (a Redis client).
    pub fn env(&self, role: Role) -> Vec<EnvVar> {
        let mut env = Vec::new();
        if let Some(secret) = &self.password {
            let mut secret = secret.clone();
            if self.role_users {
                env.push(EnvVar {
                    name: USERNAME_ENV.into(),
                    value: Some(role.slug().into()),
                    ..EnvVar::default()
                });
                secret.key = role_password_key(role);
            }
            env.push(EnvVar {
                name: PASSWORD_ENV.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(secret),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
        if self.ca.is_some() {
            env.push(EnvVar {
                name: CA_FILE_ENV.into(),
                value: Some(format!("{CA_DIR}/{CA_FILE}")),
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

    /// The CA Secret's key as a file (read-only), for a Redis client pod.
    pub fn volumes(&self) -> Vec<Volume> {
        self.ca
            .iter()
            .map(|ca| Volume {
                name: CA_VOLUME.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(ca.name.clone()),
                    items: Some(vec![KeyToPath {
                        key: ca.key.clone(),
                        path: CA_FILE.into(),
                        mode: None,
                    }]),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            })
            .collect()
    }

    /// Where [`RedisConnection::volumes`] go in the client container.
    pub fn volume_mounts(&self) -> Vec<VolumeMount> {
        self.ca
            .iter()
            .map(|_| VolumeMount {
                name: CA_VOLUME.into(),
                mount_path: CA_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CaSecretRef, SecretKeyRef};

    #[test]
    fn managed_url_uses_the_client_service_and_the_password_env() {
        let c = RedisConnection::managed(&Names::new("shop"));
        assert_eq!(c.url, "redis://shop-redis:6379/0");
        assert_eq!(c.password.unwrap().name, "shop-redis-auth");
        assert_eq!(c.endpoint, "shop-redis:6379");
    }

    fn secret_of(var: &EnvVar) -> &SecretKeySelector {
        var.value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
    }

    #[test]
    fn each_role_connects_to_the_managed_redis_as_its_own_user() {
        let c = RedisConnection::managed(&Names::new("shop"));
        for role in [Role::EventStore, Role::MessageQueue, Role::ReadModel] {
            let env = c.env(role);
            let user = env.iter().find(|e| e.name == USERNAME_ENV).unwrap();
            assert_eq!(user.value.as_deref(), Some(role.slug()));
            let secret = secret_of(env.iter().find(|e| e.name == PASSWORD_ENV).unwrap());
            assert_eq!(secret.name, "shop-redis-auth");
            assert_eq!(secret.key, format!("{}.password", role.slug()));
        }
    }

    #[test]
    fn the_password_and_the_ca_come_apart_from_the_url() {
        let c = RedisConnection::external(&ExternalRedisSpec {
            url: "rediss://cache.example:6380/2".into(),
            password_secret_ref: Some(SecretKeyRef {
                name: "creds".into(),
                key: "pw".into(),
            }),
            ca_secret_ref: Some(CaSecretRef {
                name: "cache-ca".into(),
                key: "ca.crt".into(),
            }),
        });
        assert_eq!(c.url, "rediss://cache.example:6380/2");
        assert_eq!(c.endpoint, "cache.example:6380");
        let env = c.env(Role::EventStore);
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [PASSWORD_ENV, CA_FILE_ENV, "ORDERSHOP_REDIS_URL"]);
        let password = secret_of(&env[0]);
        assert_eq!(
            (password.name.as_str(), password.key.as_str()),
            ("creds", "pw")
        );
        assert_eq!(
            env[1].value.as_deref(),
            Some("/etc/ordershop/redis-ca/ca.crt")
        );
        let volume = &c.volumes()[0];
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("cache-ca"));
        assert_eq!(secret.items.as_ref().unwrap()[0].path, "ca.crt");
        assert_eq!(c.volume_mounts()[0].mount_path, "/etc/ordershop/redis-ca");
    }

    #[test]
    fn external_without_auth_keeps_the_url() {
        let c = RedisConnection::external(&ExternalRedisSpec {
            url: "redis://127.0.0.1:6379/0".into(),
            password_secret_ref: None,
            ca_secret_ref: None,
        });
        assert_eq!(c.url, "redis://127.0.0.1:6379/0");
        assert_eq!(c.env(Role::EventStore).len(), 1);
        assert!(c.volumes().is_empty());
    }
}
