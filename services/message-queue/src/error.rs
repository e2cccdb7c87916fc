use tonic::{Code, Status};

/// Everything that can go wrong in the message queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("no response within {0:?}")]
    Timeout(std::time::Duration),
    #[error("redis unavailable: {0}")]
    Unavailable(redis::RedisError),
    #[error("{}", ordershop_redis::OUT_OF_MEMORY)]
    OutOfMemory(redis::RedisError),
    #[error("redis error: {0}")]
    Redis(redis::RedisError),
    #[error("corrupt message record: {0}")]
    Corrupt(String),
    /// An idempotency key seen within its window came with another payload.
    #[error(
        "idempotency key {key:?} was already used for a different request (message {message_id}); use a new key for a new request"
    )]
    KeyReused { key: String, message_id: String },
    /// The channel holds as many waiting messages as it may.
    #[error("channel {channel} holds {waiting} waiting messages, its limit; try again later")]
    Full { channel: String, waiting: u64 },
}

impl From<redis::RedisError> for QueueError {
    fn from(err: redis::RedisError) -> Self {
        if ordershop_redis::is_unavailable(&err) {
            QueueError::Unavailable(err)
        } else if ordershop_redis::is_out_of_memory(&err) {
            QueueError::OutOfMemory(err)
        } else {
            QueueError::Redis(err)
        }
    }
}

/// Each variant maps to a code on purpose: a new variant must choose one.
impl From<QueueError> for Status {
    fn from(err: QueueError) -> Self {
        let code = match &err {
            QueueError::InvalidArgument(_) => Code::InvalidArgument,
            QueueError::NotFound(_) => Code::NotFound,
            QueueError::KeyReused { .. } => Code::AlreadyExists,
            QueueError::Timeout(_) => Code::DeadlineExceeded,
            QueueError::Unavailable(_) => Code::Unavailable,
            QueueError::OutOfMemory(_) | QueueError::Full { .. } => Code::ResourceExhausted,
            QueueError::Redis(_) | QueueError::Corrupt(_) => Code::Internal,
        };
        match code {
            Code::Unavailable | Code::Internal | Code::ResourceExhausted => {
                tracing::warn!(error = %err, "queue error")
            }
            _ => tracing::debug!(error = %err, "queue request refused"),
        }
        Status::new(code, err.to_string())
    }
}
