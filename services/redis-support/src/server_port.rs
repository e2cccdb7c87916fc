//! A loopback port for a `redis-server` we start as a separate process.
//!
//! Binding port 0 and releasing it ("a port that was free a moment ago")
//! races: until the server binds it, any outgoing connection of any process
//! may be given that port as its ephemeral source port, and the server then
//! fails with `Address already in use` (seen in CI) — on a restart too, so a
//! Redis that must come back on its port (`ordershop chaos` restarts it)
//! could not. The kernel hands out ephemeral ports only from
//! `net.ipv4.ip_local_port_range`, so a port below that range can only be
//! taken by an explicit `bind`: picking there, and never twice in one
//! process, leaves no window for the common case. (Redis cannot inherit a
//! bound socket, or we would hand it one.)

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports this process already handed out (maybe not bound yet).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Below this, ports are commonly fixed by other software (and need root).
const LOWEST: u16 = 10_000;

/// No free port was found.
#[derive(Debug, thiserror::Error)]
#[error("no free loopback port between {LOWEST} and {high} after 1,000 tries")]
pub struct NoFreePort {
    high: u16,
}

/// A loopback port outside the kernel's ephemeral range, free when picked
/// and never returned twice by this process.
pub fn free_server_port() -> Result<u16, NoFreePort> {
    let (low, _) = ephemeral_range();
    let high = low.max(LOWEST + 1_000);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    // A process-local spread (no RNG dependency): start from a point that
    // differs per process and walk with a stride coprime to the span.
    let span = u32::from(high - LOWEST);
    let mut offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..1_000 {
        offset = (offset + 7_919) % span;
        let port = LOWEST + offset as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    Err(NoFreePort { high })
}

/// `net.ipv4.ip_local_port_range`, or Linux's default when unreadable.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_outside_the_ephemeral_range_and_unique() {
        let (low, _) = ephemeral_range();
        let ports: Vec<u16> = (0..200).map(|_| free_server_port().unwrap()).collect();
        assert!(
            ports
                .iter()
                .all(|p| *p >= LOWEST && *p < low.max(LOWEST + 1_000))
        );
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
    }
}
