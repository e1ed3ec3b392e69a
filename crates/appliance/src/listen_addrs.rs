//! Where the management UI and API listen: the LAN address on the LAN port, plus the address of
//! each VPN tunnel that is up, each bound to its own interface. Never the WAN.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

/// The management addresses now; the web server follows the receiver.
#[derive(Debug, Clone)]
pub struct ManagementAddrs {
    parts: Arc<Mutex<Parts>>,
    tx: Arc<watch::Sender<Vec<ListenAddr>>>,
}

#[derive(Debug)]
struct Parts {
    lan: ListenAddr,
    tunnels: BTreeMap<&'static str, ListenAddr>,
}

impl Parts {
    fn all(&self) -> Vec<ListenAddr> {
        std::iter::once(self.lan.clone())
            .chain(self.tunnels.values().cloned())
            .collect()
    }
}

impl ManagementAddrs {
    /// Starts with the LAN address only.
    pub fn new(
        lan: SocketAddr,
        interface: &str,
    ) -> (ManagementAddrs, watch::Receiver<Vec<ListenAddr>>) {
        let parts = Parts {
            lan: ListenAddr {
                addr: lan,
                interface: Some(interface.to_owned()),
            },
            tunnels: BTreeMap::new(),
        };
        let (tx, rx) = watch::channel(parts.all());
        (
            ManagementAddrs {
                parts: Arc::new(Mutex::new(parts)),
                tx: Arc::new(tx),
            },
            rx,
        )
    }

    fn update(&self, f: impl FnOnce(&mut Parts)) {
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut parts);
        self.tx.send_replace(parts.all());
    }

    /// The LAN moved (another port or address).
    pub fn set_lan(&self, lan: SocketAddr, interface: &str) {
        self.update(|p| {
            p.lan = ListenAddr {
                addr: lan,
                interface: Some(interface.to_owned()),
            }
        });
    }

    /// A tunnel came up on `interface` with address `addr` (`Some`), or went down (`None`).
    pub fn set_tunnel(&self, tunnel: &'static str, listen: Option<(SocketAddr, &str)>) {
        self.update(|p| match listen {
            Some((addr, interface)) => {
                p.tunnels.insert(
                    tunnel,
                    ListenAddr {
                        addr,
                        interface: Some(interface.to_owned()),
                    },
                );
            }
            None => {
                p.tunnels.remove(tunnel);
            }
        });
    }
}

/// One address the management UI listens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    /// The address and port (never `0.0.0.0` or `::`).
    pub addr: SocketAddr,
    /// The interface the listener is bound to (SO_BINDTODEVICE): connections arriving on any
    /// other interface get no answer. `None`: any interface that reaches `addr`.
    pub interface: Option<String>,
}

/// A TCP listener on `l.addr`, bound to `l.interface` when given (SO_BINDTODEVICE): a packet
/// for that address arriving on another interface gets no answer. The HTTP boot
/// listener uses it too.
pub fn bind_listener(l: &ListenAddr) -> std::io::Result<TcpListener> {
    let socket = if l.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if let Some(interface) = &l.interface {
        socket.bind_device(Some(interface.as_bytes()))?;
    }
    socket.bind(l.addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_first_then_tunnels_as_they_come_and_go() {
        let (addrs, rx) = ManagementAddrs::new("192.168.1.2:443".parse().unwrap(), "lan0");
        let shown = |rx: &watch::Receiver<Vec<ListenAddr>>| {
            rx.borrow()
                .iter()
                .map(|l| format!("{}@{}", l.addr, l.interface.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(&rx), ["192.168.1.2:443@lan0"]);
        addrs.set_tunnel("server", Some(("10.77.0.1:443".parse().unwrap(), "fb-wg")));
        addrs.set_tunnel("hub", Some(("10.99.0.5:443".parse().unwrap(), "fb-hub")));
        assert_eq!(
            shown(&rx),
            [
                "192.168.1.2:443@lan0",
                "10.99.0.5:443@fb-hub",
                "10.77.0.1:443@fb-wg"
            ]
        );
        addrs.set_tunnel("server", None);
        addrs.set_lan("192.168.2.2:443".parse().unwrap(), "lan1");
        assert_eq!(shown(&rx), ["192.168.2.2:443@lan1", "10.99.0.5:443@fb-hub"]);
    }
}
