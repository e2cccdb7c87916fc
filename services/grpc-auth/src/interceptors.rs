//! The two ends of a call: the client sends its role token as a bearer
//! token, the server turns it into a [`Caller`].

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::{Caller, GrpcKey, RoleToken};

const AUTHORIZATION: &str = "authorization";
const BEARER: &str = "Bearer ";

/// Client side: adds `authorization: Bearer <role token>` to every call
/// (nothing when the process has no token, for a shop without auth), and
/// the calling span's W3C `traceparent` when spans are traced, so the
/// server's span joins the caller's trace.
#[derive(Clone, Default)]
pub struct Credentials(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credentials(<token>)"
        } else {
            "Credentials(none)"
        })
    }
}

/// Why a token cannot be sent.
#[derive(Debug, thiserror::Error)]
#[error("the gRPC role token holds characters a header cannot carry")]
pub struct InvalidToken;

impl Credentials {
    /// No credentials: calls go out without a token.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn token(token: &RoleToken) -> Result<Self, InvalidToken> {
        let mut value: AsciiMetadataValue = format!("{BEARER}{}", token.as_str())
            .parse()
            .map_err(|_| InvalidToken)?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }

    /// Adds the token to `metadata` (for calls built by hand).
    pub fn apply(&self, metadata: &mut MetadataMap) {
        if let Some(value) = &self.0 {
            metadata.insert(AUTHORIZATION, value.clone());
        }
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.apply(request.metadata_mut());
        let traceparent = ordershop_trace::current_traceparent();
        if let Ok(value) = AsciiMetadataValue::try_from(traceparent)
            && !value.is_empty()
        {
            request
                .metadata_mut()
                .insert(ordershop_trace::TRACEPARENT, value);
        }
        Ok(request)
    }
}

/// Server side: checks the bearer token of every call against the shop
/// key and records the [`Caller`] for the handlers to authorise. Without a
/// key the server is open (a local shop or test without auth) and every
/// caller is [`Caller::Anyone`].
#[derive(Debug, Clone)]
pub struct Authenticator(Option<GrpcKey>);

impl Authenticator {
    pub fn open() -> Self {
        Self(None)
    }

    pub fn with_key(key: GrpcKey) -> Self {
        Self(Some(key))
    }

    pub fn new(key: Option<GrpcKey>) -> Self {
        Self(key)
    }

    /// Whether calls must carry a valid token.
    pub fn is_enforcing(&self) -> bool {
        self.0.is_some()
    }

    fn caller(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let Some(key) = &self.0 else {
            return Ok(Caller::Anyone);
        };
        let presented = metadata
            .get(AUTHORIZATION)
            .ok_or_else(|| {
                Status::unauthenticated(
                    "this server needs a role token (authorization: Bearer <token>)",
                )
            })?
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix(BEARER))
            .ok_or_else(|| Status::unauthenticated("the authorization is not a bearer token"))?;
        key.verify(presented.trim())
            .map(Caller::Role)
            .ok_or_else(|| Status::unauthenticated("the role token is not valid for this shop"))
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.caller(request.metadata())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use ordershop_topology::Role;
    use tonic::Code;

    use super::*;

    fn through(credentials: Credentials, server: &mut Authenticator) -> Result<Caller, Status> {
        let mut credentials = credentials;
        let request = credentials.call(Request::new(()))?;
        let request = server.call(request)?;
        Caller::of(&request)
    }

    #[test]
    fn a_valid_token_names_its_role() {
        let key = GrpcKey::generate();
        let credentials = Credentials::token(&key.token(Role::Cart)).unwrap();
        let mut server = Authenticator::with_key(key);
        assert_eq!(
            through(credentials, &mut server).unwrap(),
            Caller::Role(Role::Cart)
        );
    }

    #[test]
    fn no_token_or_a_foreign_one_is_unauthenticated() {
        let mut server = Authenticator::with_key(GrpcKey::generate());
        let missing = through(Credentials::none(), &mut server).unwrap_err();
        assert_eq!(missing.code(), Code::Unauthenticated);
        let foreign = Credentials::token(&GrpcKey::generate().token(Role::Cart)).unwrap();
        assert_eq!(
            through(foreign, &mut server).unwrap_err().code(),
            Code::Unauthenticated
        );
    }

    #[test]
    fn an_open_server_lets_anyone_in() {
        let mut server = Authenticator::open();
        assert_eq!(
            through(Credentials::none(), &mut server).unwrap(),
            Caller::Anyone
        );
        assert!(!server.is_enforcing());
    }

    #[test]
    fn credentials_do_not_print_the_token() {
        let key = GrpcKey::generate();
        let token = key.token(Role::Mail);
        let shown = format!("{:?}", Credentials::token(&token).unwrap());
        assert!(!shown.contains(token.as_str()), "{shown}");
    }
}
