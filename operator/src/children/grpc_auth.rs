//! The Secret that secures the shop's gRPC calls: the shop key (for the
//! event store and the queue, which verify tokens), each role's token (for
//! that role's pods only), and the TLS of the event store and the queue (a
//! CA of the shop's own, and a server certificate it signed for every name
//! they are reached by). A pod gets only what its role needs: its token or
//! the key through `secretKeyRef`, the CA or the server certificate as
//! files; no workload but the infrastructure holds what mints tokens.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, KeyToPath, Secret, SecretKeySelector, SecretVolumeSource, Volume,
    VolumeMount,
};
use ordershop_grpc_auth::{CA_FILE_ENV, GrpcKey, PkiError, ServerPki, TLS_CERT_ENV, TLS_KEY_ENV};
use ordershop_topology::Role;

use super::Owner;
use crate::names::{ENV_GRPC_KEY, ENV_GRPC_TOKEN, GRPC_KEY_KEY, Names, grpc_token_key};

/// `app.kubernetes.io/component` of the Secret.
const COMPONENT: &str = "grpc-auth";
const CA_KEY: &str = "ca.crt";
const CERT_KEY: &str = "tls.crt";
const PRIVATE_KEY_KEY: &str = "tls.key";
const VOLUME: &str = "grpc-tls";
const DIR: &str = "/etc/ordershop/grpc-tls";

/// The generated content of the Secret.
#[derive(Debug, Clone)]
pub struct GrpcSecrets {
    pub key: GrpcKey,
    pub pki: ServerPki,
}

impl GrpcSecrets {
    /// A new key and new certificates for the shop `names` in `namespace`.
    pub fn generate(names: &Names, namespace: &str) -> Result<Self, PkiError> {
        Ok(Self {
            key: GrpcKey::generate(),
            pki: ServerPki::generate(&server_names(names, namespace))?,
        })
    }

    /// What a stored Secret holds, keeping every part that still reads
    /// and generating the others (a new key means new tokens; pods pick
    /// them up as they restart).
    pub fn stored_or_generated(
        stored: &BTreeMap<String, String>,
        names: &Names,
        namespace: &str,
    ) -> Result<Self, PkiError> {
        let key = stored
            .get(GRPC_KEY_KEY)
            .and_then(|hex| GrpcKey::from_hex(hex).ok())
            .unwrap_or_else(GrpcKey::generate);
        let pki = match (
            stored.get(CA_KEY),
            stored.get(CERT_KEY),
            stored.get(PRIVATE_KEY_KEY),
        ) {
            (Some(ca), Some(cert), Some(private)) => ServerPki {
                ca_pem: ca.clone(),
                cert_pem: cert.clone(),
                key_pem: private.clone(),
            },
            _ => ServerPki::generate(&server_names(names, namespace))?,
        };
        Ok(Self { key, pki })
    }
}

/// Every name a client may reach the event store or the queue by: the
/// headless Services the clients use, the ClusterIP Services, each short
/// and qualified.
fn server_names(names: &Names, namespace: &str) -> Vec<String> {
    let mut out = Vec::new();
    for role in [Role::EventStore, Role::MessageQueue] {
        for service in [names.pods_service(role), names.service(role)] {
            out.push(service.clone());
            out.push(format!("{service}.{namespace}"));
            out.push(format!("{service}.{namespace}.svc"));
            out.push(format!("{service}.{namespace}.svc.cluster.local"));
        }
    }
    out
}

pub(super) fn secret(names: &Names, owner: &Owner, secrets: &GrpcSecrets) -> Secret {
    let text = |value: &str| ByteString(value.as_bytes().to_vec());
    let mut data = BTreeMap::from([
        (GRPC_KEY_KEY.to_string(), text(secrets.key.to_hex())),
        (CA_KEY.to_string(), text(&secrets.pki.ca_pem)),
        (CERT_KEY.to_string(), text(&secrets.pki.cert_pem)),
        (PRIVATE_KEY_KEY.to_string(), text(&secrets.pki.key_pem)),
    ]);
    for role in Role::ALL.into_iter().filter(|r| !r.is_infrastructure()) {
        data.insert(grpc_token_key(role), text(secrets.key.token(role).as_str()));
    }
    Secret {
        metadata: owner.meta(names.grpc_secret(), names, COMPONENT),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// `role`'s gRPC credentials as env vars: the key and the server
/// certificate's files for the event store and the queue; the role's own
/// token and the CA's file for every other role.
pub(super) fn env(names: &Names, role: Role) -> Vec<EnvVar> {
    let from_secret = |name: &str, key: String| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names.grpc_secret(),
                key,
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let file = |name: &str, file: &str| EnvVar {
        name: name.into(),
        value: Some(format!("{DIR}/{file}")),
        ..EnvVar::default()
    };
    if role.is_infrastructure() {
        vec![
            from_secret(ENV_GRPC_KEY, GRPC_KEY_KEY.into()),
            file(TLS_CERT_ENV, CERT_KEY),
            file(TLS_KEY_ENV, PRIVATE_KEY_KEY),
        ]
    } else {
        vec![
            from_secret(ENV_GRPC_TOKEN, grpc_token_key(role)),
            file(CA_FILE_ENV, CA_KEY),
        ]
    }
}

/// The Secret's files `role` reads: the server certificate and key, or the CA.
pub(super) fn volume(names: &Names, role: Role) -> Volume {
    let files: &[&str] = if role.is_infrastructure() {
        &[CERT_KEY, PRIVATE_KEY_KEY]
    } else {
        &[CA_KEY]
    };
    Volume {
        name: VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names.grpc_secret()),
            items: Some(
                files
                    .iter()
                    .map(|key| KeyToPath {
                        key: (*key).into(),
                        path: (*key).into(),
                        mode: None,
                    })
                    .collect(),
            ),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

pub(super) fn volume_mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.into(),
        mount_path: DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::shop;
    use crate::crd::OrderShopSpec;

    fn text(secret: &Secret, key: &str) -> String {
        String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn the_secret_holds_the_key_the_tls_and_a_token_per_role() {
        let names = Names::new("shop");
        let owner = Owner::of(&shop(OrderShopSpec::default())).unwrap();
        let secrets = GrpcSecrets::generate(&names, "ns").unwrap();
        let secret = secret(&names, &owner, &secrets);
        assert_eq!(text(&secret, GRPC_KEY_KEY), secrets.key.to_hex());
        for role in Role::ALL.into_iter().filter(|r| !r.is_infrastructure()) {
            let token = text(&secret, &grpc_token_key(role));
            assert_eq!(secrets.key.verify(&token), Some(role));
        }
        assert!(text(&secret, CERT_KEY).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            !secret
                .data
                .unwrap()
                .contains_key(&grpc_token_key(Role::EventStore))
        );
    }

    #[test]
    fn what_is_stored_is_kept_and_only_what_is_missing_is_made() {
        let names = Names::new("shop");
        let first = GrpcSecrets::generate(&names, "ns").unwrap();
        let stored = BTreeMap::from([
            (GRPC_KEY_KEY.to_string(), first.key.to_hex().to_owned()),
            (CA_KEY.to_string(), first.pki.ca_pem.clone()),
            (CERT_KEY.to_string(), first.pki.cert_pem.clone()),
            (PRIVATE_KEY_KEY.to_string(), first.pki.key_pem.clone()),
        ]);
        let again = GrpcSecrets::stored_or_generated(&stored, &names, "ns").unwrap();
        assert_eq!(again.key.to_hex(), first.key.to_hex());
        assert_eq!(again.pki, first.pki);
        let key_only = BTreeMap::from([(GRPC_KEY_KEY.to_string(), first.key.to_hex().to_owned())]);
        let rebuilt = GrpcSecrets::stored_or_generated(&key_only, &names, "ns").unwrap();
        assert_eq!(rebuilt.key.to_hex(), first.key.to_hex());
        assert_ne!(rebuilt.pki, first.pki);
    }

    #[test]
    fn the_certificate_names_every_way_to_the_infrastructure() {
        let all = server_names(&Names::new("shop"), "ns");
        for name in [
            "shop-event-store-pods",
            "shop-message-queue-pods.ns.svc",
            "shop-event-store.ns.svc.cluster.local",
        ] {
            assert!(all.iter().any(|n| n == name), "{name} in {all:?}");
        }
    }

    #[test]
    fn only_the_infrastructure_gets_the_key_and_the_server_certificate() {
        let names = Names::new("shop");
        for role in Role::ALL {
            let env = env(&names, role);
            let secret_keys: Vec<String> = env
                .iter()
                .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
                .map(|s| s.key.clone())
                .collect();
            let files: Vec<String> = volume(&names, role)
                .secret
                .unwrap()
                .items
                .unwrap()
                .into_iter()
                .map(|i| i.key)
                .collect();
            if role.is_infrastructure() {
                assert_eq!(secret_keys, [GRPC_KEY_KEY]);
                assert_eq!(files, [CERT_KEY, PRIVATE_KEY_KEY]);
            } else {
                assert_eq!(secret_keys, [format!("{}.token", role.slug())]);
                assert_eq!(files, [CA_KEY]);
            }
        }
    }
}
