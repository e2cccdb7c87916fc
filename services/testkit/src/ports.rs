//! Loopback ports for servers a test starts as separate processes.
//!
//! Binding port 0 and releasing it ("a port that was free a moment ago")
//! races: until the server binds it, any outgoing connection of any process
//! may be given that port as its ephemeral source port, and the server then
//! fails with `Address already in use` (seen in CI). The kernel hands out
//! ephemeral ports only from `net.ipv4.ip_local_port_range`, so a port
//! below that range can only be taken by an explicit `bind`: picking there,
//! and never twice in one process, leaves no window for the common case.
//! Servers started in-process bind port 0 and keep the listener instead.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports this process already handed out (a test may not have bound it yet).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Below this, ports are commonly fixed by other software (and need root).
const LOWEST: u16 = 10_000;

/// A loopback port outside the kernel's ephemeral range, free when picked
/// and never returned twice by this process.
pub fn free_port() -> u16 {
    let (low, _) = ephemeral_range();
    let high = low.max(LOWEST + 1_000);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..1_000 {
        let port = rand::random_range(LOWEST..high);
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free loopback port between {LOWEST} and {high} after 1,000 tries")
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
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        assert!(
            ports
                .iter()
                .all(|p| *p >= LOWEST && *p < low.max(LOWEST + 1_000))
        );
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
    }
}
