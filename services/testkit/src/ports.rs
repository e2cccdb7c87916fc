use std::net::TcpListener;

/// A loopback port that was free a moment ago. The tiny window in which
/// another process could take it is acceptable for tests.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}
