//! A DHCP receive loop on a blocking thread of its own, stopped from async code.
//!
//! Both modes receive this way: a thread asleep in `recvfrom(2)` is woken by the kernel with
//! the datagram, where a task pays for a receive that finds nothing, the reactor's
//! `epoll_wait`, a wake-up and a poll per datagram once the queue is drained (a third of the
//! daemon's CPU per DISCOVER in a proxy flood, as measured in docs/benchmarks.md).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::DhcpError;

/// How long a blocked receive waits before it looks at the stop flag again. A stop also wakes
/// it at once ([`Stop`]); this is the fallback.
pub(super) const POLL: Duration = Duration::from_secs(5);

/// A socket made ready for [`next`]: blocking, with [`POLL`] as its read timeout.
pub(super) fn blocking(socket: UdpSocket) -> Result<Arc<UdpSocket>, DhcpError> {
    let failed = |source| DhcpError::Socket {
        port: local_port(&socket),
        source,
    };
    socket.set_nonblocking(false).map_err(failed)?;
    socket.set_read_timeout(Some(POLL)).map_err(failed)?;
    Ok(Arc::new(socket))
}

/// The port `socket` is bound to (0 if it cannot say), for logs and errors.
pub(super) fn local_port(socket: &UdpSocket) -> u16 {
    socket.local_addr().map(|a| a.port()).unwrap_or_default()
}

/// The next datagram into `buf`: its length and sender, or `None` once `stop` is raised.
/// Timeouts and errors (ICMP errors of earlier sends surface here) are waited out.
pub(super) fn next(
    socket: &UdpSocket,
    buf: &mut [u8],
    stop: &CancellationToken,
) -> Option<(usize, SocketAddr)> {
    while !stop.is_cancelled() {
        match socket.recv_from(buf) {
            Ok(got) => return (!stop.is_cancelled()).then_some(got),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                tracing::debug!(port = local_port(socket), error = %e, "DHCP receive error");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    None
}

/// Stops a receive thread when dropped: raises its flag and shuts the socket's receive side,
/// which wakes a `recvfrom(2)` asleep on it at once (Linux sets the shutdown and wakes the
/// socket's waiters even on an unconnected UDP socket, though the call reports ENOTCONN).
pub(super) struct Stop {
    pub flag: CancellationToken,
    pub socket: Arc<UdpSocket>,
}

impl Stop {
    pub fn new(socket: &Arc<UdpSocket>) -> Stop {
        Stop {
            flag: CancellationToken::new(),
            socket: Arc::clone(socket),
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.flag.cancel();
        let _ = socket2::SockRef::from(self.socket.as_ref()).shutdown(std::net::Shutdown::Read);
    }
}

/// A receive thread's end: a panic is logged and ends the server like a failed socket.
pub(super) fn ended(
    joined: Result<(), tokio::task::JoinError>,
    port: u16,
) -> Result<(), DhcpError> {
    joined.map_err(|e| {
        tracing::error!(port, error = %e, "DHCP receive thread failed");
        DhcpError::Socket {
            port,
            source: std::io::Error::other(e.to_string()),
        }
    })
}
