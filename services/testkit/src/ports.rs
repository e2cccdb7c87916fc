//! Loopback ports for servers a test starts as separate processes: outside
//! the kernel's ephemeral range, never twice per process (why:
//! `ordershop_redis::server_port`). Servers started in-process bind port 0
//! and keep the listener instead.

/// A free loopback port outside the ephemeral range.
pub fn free_port() -> u16 {
    ordershop_redis::free_server_port().unwrap_or_else(|e| panic!("{e}"))
}
