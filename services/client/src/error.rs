use std::time::Duration;

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint {0}")]
    InvalidEndpoint(String),
    #[error("{}: {}", .0.code(), .0.message())]
    Rpc(#[from] Status),
}

impl ClientError {
    pub fn code(&self) -> Code {
        match self {
            ClientError::InvalidEndpoint(_) => Code::InvalidArgument,
            ClientError::Rpc(status) => status.code(),
        }
    }

    /// Worth retrying: the server or Redis behind it is briefly away.
    pub fn is_transient(&self) -> bool {
        matches!(self.code(), Code::Unavailable | Code::Unknown)
            && !matches!(self, ClientError::InvalidEndpoint(_))
    }
}

/// What a handler tells the loop when it could not do its work: the
/// delivery is refused and retried after `retry_after` (or dead-lettered
/// after too many attempts).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct HandlerError {
    pub reason: String,
    pub retry_after: Duration,
}

impl HandlerError {
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retry_after: Duration::from_millis(100),
        }
    }

    pub fn retry_after(reason: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            reason: reason.into(),
            retry_after,
        }
    }
}
