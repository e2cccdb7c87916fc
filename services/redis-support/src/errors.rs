/// True when Redis refused a write because it reached `maxmemory` (with
/// `noeviction`, as OrderShop runs it: evicting would lose events). Callers
/// map it to gRPC `ResourceExhausted` with [`OUT_OF_MEMORY`] as the reason.
pub fn is_out_of_memory(err: &redis::RedisError) -> bool {
    err.code() == Some("OOM")
}

/// What a caller is told when Redis is full.
pub const OUT_OF_MEMORY: &str = "Redis is full (maxmemory reached; it evicts nothing): writes are refused until memory is freed or maxmemory is raised; nothing accepted earlier is lost";

/// True when the error means "Redis cannot be reached right now" (refused,
/// dropped, timed out), as opposed to a command Redis refused. Callers map
/// the first to gRPC `Unavailable` and retry it.
pub fn is_unavailable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(
            err.kind(),
            redis::ErrorKind::Io | redis::ErrorKind::ClusterConnectionNotFound
        )
        // Still loading its data set, a replica that lost its primary, or a
        // replica we must not write to: all pass once failover settles.
        || matches!(err.code(), Some("LOADING" | "MASTERDOWN" | "READONLY" | "TRYAGAIN"))
}
