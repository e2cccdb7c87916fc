//! A role's listening sockets: inherited from `ordershop local`, or bound
//! here.
//!
//! The supervisor binds every role's sockets itself and hands them over
//! with systemd's socket-activation protocol (`LISTEN_FDS`, descriptors
//! from 3 on). A port it picked is then never released before the role
//! uses it — binding port 0, releasing it and letting the child bind it
//! later lost the port to some other socket now and then — and a restarted
//! role keeps its port, with connections made meanwhile waiting in the
//! backlog instead of being refused.

use std::net::SocketAddr;

use anyhow::Context;
use listenfd::ListenFd;
use tokio::net::TcpListener;

/// Position of the gRPC listener among the inherited descriptors.
pub(crate) const GRPC: usize = 0;
/// Position of the API gateway's HTTP listener.
pub(crate) const HTTP: usize = 1;
/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
pub(crate) const FIRST_FD: i32 = 3;

/// The sockets this process was given, taken at most once each.
pub(crate) struct Listeners {
    inherited: ListenFd,
}

impl Listeners {
    pub(crate) fn from_env() -> Self {
        Self {
            inherited: ListenFd::from_env(),
        }
    }

    /// The inherited listener at `index`, else a new one bound to `addr`.
    pub(crate) async fn take(
        &mut self,
        index: usize,
        addr: SocketAddr,
    ) -> anyhow::Result<TcpListener> {
        let inherited = self.inherited.take_tcp_listener(index).with_context(|| {
            format!(
                "inherited descriptor {} is not a TCP listener",
                FIRST_FD + index as i32
            )
        })?;
        match inherited {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                Ok(TcpListener::from_std(listener)?)
            }
            None => TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}")),
        }
    }
}
