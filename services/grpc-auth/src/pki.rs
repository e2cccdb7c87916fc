//! The certificates of the shop's gRPC TLS: a CA of the shop's own and one
//! server certificate it signs for every name the event store and the
//! queue are reached by. Clients trust only that CA.

use std::net::IpAddr;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// Why certificates cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the gRPC TLS certificates: {0}")]
pub struct PkiError(#[from] rcgen::Error);

/// PEM texts of a CA and the server certificate and key it signed.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServerPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerPki(<redacted>)")
    }
}

impl ServerPki {
    /// A new CA and a server certificate for `names` (host names, or IP
    /// addresses). Only the certificate is kept of the CA, not its key:
    /// nothing else is ever signed with it, and to renew is to generate
    /// both again.
    pub fn generate<S: AsRef<str>>(names: &[S]) -> Result<Self, PkiError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "OrderShop gRPC CA");
        let ca_cert = ca.self_signed(&ca_key)?;

        let key = KeyPair::generate()?;
        let mut server = CertificateParams::new(Vec::<String>::new())?;
        server
            .distinguished_name
            .push(DnType::CommonName, "OrderShop infrastructure");
        for name in names {
            let name = name.as_ref();
            server.subject_alt_names.push(match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.try_into()?),
            });
        }
        let cert = server.signed_by(&key, &Issuer::new(ca, &ca_key))?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_both_become_alternative_names() {
        let pki = ServerPki::generate(&["127.0.0.1", "shop-event-store-pods.ns.svc"]).unwrap();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.key_pem.contains("PRIVATE KEY"));
        assert_ne!(pki.ca_pem, pki.cert_pem);
        assert!(!format!("{pki:?}").contains("PRIVATE"));
    }
}
