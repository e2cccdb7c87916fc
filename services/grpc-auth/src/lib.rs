//! Authentication and authorisation of the gRPC calls to the event store
//! and the queue.
//!
//! Every role presents a token that names it (`ordershop.<role>.<MAC>`);
//! the two infrastructure servers hold the shop key, check the MAC and then
//! allow exactly what `services/topology` says the role does. A pod that
//! is not one of the shop's gets `Unauthenticated`; a role that steps
//! outside its part (the CRM publishing a billing) gets `PermissionDenied`.
//! Health, metrics and reflection stay open: probes carry no token.
//!
//! [`ServerPki`] makes the certificates that encrypt the same calls: a CA
//! of the shop's own and a server certificate for the event store and the
//! queue (`ordershop local` and the operator each generate them).

mod caller;
mod interceptors;
mod key;
mod pki;

pub use caller::Caller;
pub use interceptors::{Authenticator, Credentials, InvalidToken};
pub use key::{GrpcKey, KEY_BYTES, KeyError, RoleToken};
pub use pki::{PkiError, ServerPki};

/// The environment variable holding the shop key (event store and queue).
pub const KEY_ENV: &str = "ORDERSHOP_GRPC_KEY";
/// The environment variable holding a role's token (every other role).
pub const TOKEN_ENV: &str = "ORDERSHOP_GRPC_TOKEN";
/// The server certificate (PEM file) of the event store and the queue.
pub const TLS_CERT_ENV: &str = "ORDERSHOP_GRPC_TLS_CERT";
/// Its private key (PEM file).
pub const TLS_KEY_ENV: &str = "ORDERSHOP_GRPC_TLS_KEY";
/// The CA (PEM file) the clients trust for `https://` gRPC URLs.
pub const CA_FILE_ENV: &str = "ORDERSHOP_GRPC_CA_FILE";
