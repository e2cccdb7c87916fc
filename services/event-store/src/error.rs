use tonic::{Code, Status};

/// Everything that can go wrong in the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// The entity's version is not the expected one: someone else wrote it
    /// first. The caller re-reads and retries.
    #[error("version conflict on entity {entity_id}: expected {expected}, found {actual}")]
    Conflict {
        entity_id: String,
        expected: u64,
        actual: u64,
    },
    /// Retention removed entries of `topic` the reader has not seen: it
    /// must start from a snapshot at or after `before`, not replay.
    #[error(
        "events of topic {topic} before {before} were removed by retention; a reader at {after} \
         cannot replay them (start from a snapshot, or keep retention off)"
    )]
    Trimmed {
        topic: String,
        after: ordershop_topology::EntryId,
        before: ordershop_topology::EntryId,
    },
    #[error("redis unavailable: {0}")]
    Unavailable(redis::RedisError),
    #[error("{}", ordershop_redis::OUT_OF_MEMORY)]
    OutOfMemory(redis::RedisError),
    #[error("redis error: {0}")]
    Redis(redis::RedisError),
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        if ordershop_redis::is_unavailable(&err) {
            StoreError::Unavailable(err)
        } else if ordershop_redis::is_out_of_memory(&err) {
            StoreError::OutOfMemory(err)
        } else if err.code() == Some("NOGROUP") {
            StoreError::NotFound(format!("no such consumer group or stream: {err}"))
        } else {
            StoreError::Redis(err)
        }
    }
}

/// Each variant maps to a code on purpose: a new variant must choose one.
/// Client mistakes log at debug, server trouble at warn.
impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        let code = match &err {
            StoreError::InvalidArgument(_) => Code::InvalidArgument,
            StoreError::NotFound(_) => Code::NotFound,
            // ABORTED is gRPC's code for optimistic-concurrency failures.
            StoreError::Conflict { .. } => Code::Aborted,
            StoreError::Trimmed { .. } => Code::FailedPrecondition,
            StoreError::Unavailable(_) => Code::Unavailable,
            StoreError::OutOfMemory(_) => Code::ResourceExhausted,
            StoreError::Redis(_) => Code::Internal,
        };
        match code {
            Code::Unavailable | Code::Internal | Code::ResourceExhausted => {
                tracing::warn!(error = %err, "event store error")
            }
            _ => tracing::debug!(error = %err, "event store request refused"),
        }
        Status::new(code, err.to_string())
    }
}
