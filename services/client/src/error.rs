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

    /// The idempotency key was already used, within its window, for a
    /// request with another payload: the first request stands. A sender that
    /// derives its key from what it means ("the verdict for order X", "the
    /// welcome mail of customer Y") has sent it already and is done.
    pub fn is_key_reused(&self) -> bool {
        self.code() == Code::AlreadyExists
    }

    /// Worth retrying: the server or Redis behind it is briefly away.
    pub fn is_transient(&self) -> bool {
        matches!(self.code(), Code::Unavailable | Code::Unknown)
            && !matches!(self, ClientError::InvalidEndpoint(_))
    }
}

/// What a handler tells the loop when it could not do its work: the
/// delivery is refused and retried after `retry_after` — however often that
/// takes — or, when `permanent`, dead-lettered with the reason at once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct HandlerError {
    pub reason: String,
    pub retry_after: Duration,
    /// It can never succeed (unreadable, invalid): no retry will help.
    pub permanent: bool,
}

/// The floor of the pause before a retry: doubling from this...
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// ...up to this, so a dependency away for hours costs one retry every few
/// seconds per message, not ten a second.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

impl HandlerError {
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::retry_after(reason, Duration::from_millis(100))
    }

    pub fn retry_after(reason: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            reason: reason.into(),
            retry_after,
            permanent: false,
        }
    }

    /// The delivery can never be handled: dead-letter it with `reason`.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retry_after: Duration::ZERO,
            permanent: true,
        }
    }

    /// This refusal of delivery number `attempt`, its pause raised to the
    /// capped backoff for that attempt (a handler's own, longer hint wins).
    pub(crate) fn backed_off(&self, attempt: u32) -> Self {
        let doublings = attempt.saturating_sub(1).min(16);
        let floor = BACKOFF_FIRST
            .saturating_mul(1 << doublings)
            .min(BACKOFF_CAP);
        Self {
            retry_after: self.retry_after.max(floor),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_cap_and_keep_longer_hints() {
        let quick = HandlerError::retry("away");
        assert_eq!(quick.backed_off(1).retry_after, Duration::from_millis(100));
        assert_eq!(quick.backed_off(3).retry_after, Duration::from_millis(400));
        assert_eq!(quick.backed_off(50).retry_after, BACKOFF_CAP);
        let patient = HandlerError::retry_after("not yet", Duration::from_secs(8));
        assert_eq!(patient.backed_off(2).retry_after, Duration::from_secs(8));
        assert!(!patient.backed_off(2).permanent);
        assert!(
            HandlerError::permanent("unreadable")
                .backed_off(1)
                .permanent
        );
    }
}
