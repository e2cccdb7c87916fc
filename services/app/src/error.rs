use ordershop_client::ClientError;

/// Why [`crate::run`] could not run a role.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The gateway and the two infrastructure servers have their own crates.
    #[error("role {0} is not one of the workers run by ordershop-app")]
    UnsupportedRole(&'static str),
    #[error("the read model needs a Redis connection for its cache")]
    MissingRedis,
    /// The event store lost events this role's view had folded (Redis
    /// restarted without its last writes): restart and replay it.
    #[error("the event store is behind this service's view (it lost events); restart to replay it")]
    StoreBehindView,
    /// The event store refused a call in a way retrying cannot fix.
    #[error("event store: {0}")]
    EventStore(#[source] ClientError),
}
