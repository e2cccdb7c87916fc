//! The Redis password: generated once for a managed Redis and read back on
//! every pass (so it never changes), or checked in the user's Secret for an
//! external Redis.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rand::Rng;
use rand::distr::Alphanumeric;

use super::{Error, generated};
use crate::children::RedisPassword;
use crate::crd::SecretKeyRef;
use crate::names::{Names, REDIS_PASSWORD_KEY};

/// 32 alphanumerics ≈ 190 bits; alphanumeric keeps it URL-safe, since the
/// services receive it inside a `redis://` URL.
const PASSWORD_LEN: usize = 32;

pub(super) fn generate() -> RedisPassword {
    RedisPassword(
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(PASSWORD_LEN)
            .map(char::from)
            .collect(),
    )
}

/// The managed Redis' password, and whether its Secret exists already.
#[derive(Debug)]
pub(super) struct ManagedPassword {
    pub(super) password: RedisPassword,
    pub(super) secret_exists: bool,
}

/// The managed Redis' password: the one in its Secret if there is one,
/// else a new one (which the caller then creates).
pub(super) async fn managed_password(
    secrets: &Api<Secret>,
    name: &str,
) -> Result<ManagedPassword, Error> {
    let stored = generated::read(secrets, name).await?;
    Ok(ManagedPassword {
        password: stored
            .value(REDIS_PASSWORD_KEY)
            .map(RedisPassword)
            .unwrap_or_else(generate),
        secret_exists: stored.exists,
    })
}

/// Creates the managed Redis' Secret from `desired` (see
/// [`generated::create_once`]): `None` when this call created it, or the
/// password another pass stored first.
pub(super) async fn create_once(
    secrets: &Api<Secret>,
    desired: &[Secret],
    names: &Names,
) -> Result<Option<RedisPassword>, Error> {
    let name = names.redis_secret();
    Ok(generated::create_once(secrets, desired, &name)
        .await?
        .and_then(|stored| stored.value(REDIS_PASSWORD_KEY))
        .map(RedisPassword))
}

/// Checks that the external Redis' password Secret and key exist, so a typo
/// shows up as a Degraded condition instead of pods stuck in
/// CreateContainerConfigError.
pub(super) async fn check_external(
    secrets: &Api<Secret>,
    reference: &SecretKeyRef,
) -> Result<(), Error> {
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Kube {
            action: "get",
            kind: "Secret".into(),
            name: reference.name.clone(),
            source,
        })?;
    match secret {
        None => Err(Error::ExternalSecret(format!(
            "Secret {} (spec.redis.external.passwordSecretRef) does not exist",
            reference.name
        ))),
        Some(secret) => {
            let has_key = secret
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key(&reference.key))
                || secret
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&reference.key));
            if has_key {
                Ok(())
            } else {
                Err(Error::ExternalSecret(format!(
                    "Secret {} has no key {:?} (spec.redis.external.passwordSecretRef)",
                    reference.name, reference.key
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_url_safe_and_distinct() {
        let a = generate();
        let b = generate();
        assert_eq!(a.0.len(), PASSWORD_LEN);
        assert!(a.0.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
