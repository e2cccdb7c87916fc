//! Secrets whose content the operator generates once (the managed Redis'
//! password, the gRPC key) and reads back on every pass, so it never
//! changes under running pods.
//!
//! A new one is created, never applied: of two passes racing (an outgoing
//! leader still finishing one while the next leader starts), exactly one
//! create wins and the other adopts what it stored. An apply by both would
//! leave some pods with one value and the pods that start later with the
//! other.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use super::Error;

/// What a generated Secret holds now.
pub(super) struct Stored {
    /// Its text values (none when it does not exist).
    pub(super) data: BTreeMap<String, String>,
    pub(super) exists: bool,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("exists", &self.exists)
            .finish()
    }
}

impl Stored {
    /// The non-empty value under `key`.
    pub(super) fn value(&self, key: &str) -> Option<String> {
        self.data.get(key).filter(|v| !v.is_empty()).cloned()
    }
}

/// Reads Secret `name`.
pub(super) async fn read(secrets: &Api<Secret>, name: &str) -> Result<Stored, Error> {
    let existing = secrets.get_opt(name).await.map_err(|source| Error::Kube {
        action: "get",
        kind: "Secret".into(),
        name: name.into(),
        source,
    })?;
    let exists = existing.is_some();
    let data = existing
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, bytes)| Some((k, String::from_utf8(bytes.0).ok()?)))
        .collect();
    Ok(Stored { data, exists })
}

/// Creates Secret `name` from `desired` (POST, not apply). Returns `None`
/// when this call created it (or `desired` has no such Secret), or what is
/// stored when another pass created it first.
pub(super) async fn create_once(
    secrets: &Api<Secret>,
    desired: &[Secret],
    name: &str,
) -> Result<Option<Stored>, Error> {
    let Some(secret) = desired
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
    else {
        return Ok(None);
    };
    match secrets.create(&PostParams::default(), secret).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let stored = read(secrets, name).await?;
            Ok(stored.exists.then_some(stored))
        }
        Err(source) => Err(Error::Kube {
            action: "create",
            kind: "Secret".into(),
            name: name.into(),
            source,
        }),
    }
}
