//! The shop key and the role tokens derived from it.
//!
//! One random key per shop; a role's token is `ordershop.<role>.<HMAC>`,
//! the HMAC-SHA256 of the role under the key. Only the event store and the
//! queue hold the key (they verify); every other role gets its own token
//! only, so a compromised pod can speak as its own role and no other.

use std::fmt;

use ordershop_topology::Role;
use rand::RngCore;
use ring::hmac;

/// Bytes of a generated key (and the fewest a given key may have).
pub const KEY_BYTES: usize = 32;
const TOKEN_PREFIX: &str = "ordershop";
/// Domain separation: the MAC input names what it authorises.
const CONTEXT: &str = "ordershop grpc role v1:";

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the gRPC key is not hexadecimal")]
    NotHex,
    #[error("the gRPC key has {0} bytes; it needs at least {KEY_BYTES} (64 hex digits)")]
    TooShort(usize),
}

/// The secret every role token of one shop derives from.
#[derive(Clone)]
pub struct GrpcKey {
    hex: String,
    mac: hmac::Key,
}

impl fmt::Debug for GrpcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrpcKey(<redacted>)")
    }
}

impl GrpcKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    /// A key as [`GrpcKey::to_hex`] wrote it (surrounding whitespace, as a
    /// Secret file may end with a newline, is ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = decode_hex(text.trim()).ok_or(KeyError::NotHex)?;
        if bytes.len() < KEY_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            hex: encode_hex(bytes),
            mac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// The key as text, for a Secret or an environment variable.
    pub fn to_hex(&self) -> &str {
        &self.hex
    }

    /// A short digest that tells keys apart without revealing them (for
    /// an annotation that rolls pods over when the key changes).
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.hex.as_bytes());
        encode_hex(&digest.as_ref()[..8])
    }

    /// The token `role` presents.
    pub fn token(&self, role: Role) -> RoleToken {
        let tag = hmac::sign(&self.mac, message(role).as_bytes());
        RoleToken(format!(
            "{TOKEN_PREFIX}.{}.{}",
            role.slug(),
            encode_hex(tag.as_ref())
        ))
    }

    /// The role a presented token was made for, if it was made with this
    /// key. The MAC is compared in constant time.
    pub fn verify(&self, token: &str) -> Option<Role> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?.strip_prefix('.')?;
        let (slug, tag) = rest.split_once('.')?;
        let role = Role::from_slug(slug)?;
        let tag = decode_hex(tag)?;
        hmac::verify(&self.mac, message(role).as_bytes(), &tag).ok()?;
        Some(role)
    }
}

fn message(role: Role) -> String {
    format!("{CONTEXT}{}", role.slug())
}

/// A role's credential for the event store and the queue.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleToken(String);

impl fmt::Debug for RoleToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoleToken(<redacted>)")
    }
}

impl RoleToken {
    /// A token as given to a process (its env var or flag).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The role the token says it is for (not verified: only the key can).
    pub fn role(&self) -> Option<Role> {
        let rest = self.0.strip_prefix(TOKEN_PREFIX)?.strip_prefix('.')?;
        Role::from_slug(rest.split_once('.')?.0)
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_as_its_role_under_its_key_only() {
        let key = GrpcKey::generate();
        for role in Role::ALL {
            assert_eq!(key.verify(key.token(role).as_str()), Some(role));
        }
        let other = GrpcKey::generate();
        assert_eq!(other.verify(key.token(Role::Billing).as_str()), None);
    }

    #[test]
    fn a_token_renamed_to_another_role_is_refused() {
        let key = GrpcKey::generate();
        let crm = key.token(Role::Crm);
        let forged = crm.as_str().replace(".crm.", ".billing.");
        assert_eq!(key.verify(&forged), None);
        for junk in [
            "",
            "ordershop",
            "ordershop.crm",
            "ordershop.crm.zz",
            "Bearer x",
        ] {
            assert_eq!(key.verify(junk), None, "{junk}");
        }
    }

    #[test]
    fn keys_round_trip_through_hex_and_short_ones_are_refused() {
        let key = GrpcKey::generate();
        let again = GrpcKey::from_hex(&format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(
            again.token(Role::Order).as_str(),
            key.token(Role::Order).as_str()
        );
        assert!(matches!(
            GrpcKey::from_hex("abcd"),
            Err(KeyError::TooShort(2))
        ));
        assert!(matches!(GrpcKey::from_hex("xyz"), Err(KeyError::NotHex)));
        assert!(!format!("{key:?}").contains(key.to_hex()));
        assert_eq!(key.fingerprint(), again.fingerprint());
        assert_ne!(key.fingerprint(), GrpcKey::generate().fingerprint());
    }
}
