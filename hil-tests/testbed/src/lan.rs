//! The test LAN every black-box test, benchmark and scenario builds: a server namespace whose
//! LAN port is a veth end, a bridge or a tap; usually a client namespace (another machine on the
//! LAN); taps for QEMU guests; a scratch directory.
//!
//! ```no_run
//! # use flakeboot_testbed::TestLan;
//! // Server `lan0` (10.77.0.1/24) <-> client `eth0`.
//! let lan = TestLan::veth("srv", "lan0").server_addr("10.77.0.1/24").build().unwrap();
//! // A bridge `br0` with two taps for QEMU guests and no client namespace.
//! let lan = TestLan::bridge("bios", "br0")
//!     .server_addr("10.77.0.1/24")
//!     .taps(2)
//!     .no_client()
//!     .build()
//!     .unwrap();
//! ```
//!
//! Dropping a [`TestLan`] deletes its namespaces (and with them every interface in them) and its
//! scratch directory. Processes started in them are [`crate::Proc`]s, ended by PID.

use std::io;
use std::path::{Path, PathBuf};

use crate::netns::{Netns, veth};

/// What the server namespace's LAN port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanPort {
    /// One end of a veth pair whose other end is the client namespace's `eth0`.
    Veth,
    /// A bridge (see [`add_bridge`]): the client's veth (`to-client`) and the taps are its ports.
    Bridge,
    /// A tap device, for one QEMU guest; a client namespace, if any, is not connected.
    Tap,
}

/// How to build a [`TestLan`]: see [`TestLan::veth`], [`TestLan::bridge`], [`TestLan::tap`].
#[derive(Debug, Clone)]
pub struct LanBuilder {
    tag: String,
    port: LanPort,
    port_name: String,
    server_addrs: Vec<String>,
    client: bool,
    client_addrs: Vec<String>,
    client_mac: Option<String>,
    taps: usize,
}

impl LanBuilder {
    /// An address for the LAN port (`10.77.0.1/24`, `fd77::1/64`); the first IPv4 one given is
    /// the port's primary address.
    pub fn server_addr(mut self, cidr: &str) -> Self {
        self.server_addrs.push(cidr.to_owned());
        self
    }

    /// An address for the client's `eth0`.
    pub fn client_addr(mut self, cidr: &str) -> Self {
        self.client_addrs.push(cidr.to_owned());
        self
    }

    /// The MAC address of the client's `eth0`.
    pub fn client_mac(mut self, mac: &str) -> Self {
        self.client_mac = Some(mac.to_owned());
        self
    }

    /// No client namespace (a bridge LAN of QEMU guests only).
    pub fn no_client(mut self) -> Self {
        self.client = false;
        self
    }

    /// `n` taps (`tap0`..) on the bridge, up, for QEMU guests.
    pub fn taps(mut self, n: usize) -> Self {
        self.taps = n;
        self
    }

    pub fn build(self) -> io::Result<TestLan> {
        let server = Netns::new(&format!("{}s", self.tag))?;
        let client = if self.client {
            Some(Netns::new(&format!("{}c", self.tag))?)
        } else {
            None
        };
        let lan_if = self.port_name.as_str();
        match (self.port, &client) {
            (LanPort::Veth, Some(client)) => veth(&server, lan_if, client, CLIENT_IF)?,
            (LanPort::Veth, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a veth LAN needs its client namespace",
                ));
            }
            (LanPort::Bridge, _) => add_bridge(&server, lan_if)?,
            (LanPort::Tap, _) => {
                server.run(&["ip", "tuntap", "add", "dev", lan_if, "mode", "tap"])?;
            }
        }
        for cidr in &self.server_addrs {
            server.addr(lan_if, cidr)?;
        }
        if let Some(client) = &client {
            if self.port == LanPort::Bridge {
                plug(&server, lan_if, "to-client", client, CLIENT_IF)?;
            }
            if let Some(mac) = &self.client_mac {
                client.run(&["ip", "link", "set", CLIENT_IF, "address", mac])?;
            }
            for cidr in &self.client_addrs {
                client.addr(CLIENT_IF, cidr)?;
            }
        }
        let mut taps = Vec::new();
        for i in 0..self.taps {
            let tap = format!("tap{i}");
            server.run(&["ip", "tuntap", "add", "dev", &tap, "mode", "tap"])?;
            server.run(&["ip", "link", "set", &tap, "master", lan_if])?;
            server.run(&["ip", "link", "set", &tap, "up"])?;
            taps.push(tap);
        }
        let dir = tempfile::Builder::new().prefix("fbt-lan-").tempdir()?;
        Ok(TestLan {
            server,
            client,
            lan_if: self.port_name,
            taps,
            dir,
        })
    }
}

/// The client namespace's interface on the LAN.
pub const CLIENT_IF: &str = "eth0";

/// A LAN of namespaces, deleted on drop. Built by a [`LanBuilder`].
#[derive(Debug)]
pub struct TestLan {
    /// The namespace of the server under test (its LAN port, its taps).
    pub server: Netns,
    client: Option<Netns>,
    lan_if: String,
    taps: Vec<String>,
    dir: tempfile::TempDir,
}

impl TestLan {
    /// The server's `lan_if` is one end of a veth pair, the client's `eth0` the other.
    pub fn veth(tag: &str, lan_if: &str) -> LanBuilder {
        LanBuilder::new(tag, LanPort::Veth, lan_if)
    }

    /// The server's `lan_if` is a bridge; the client's `eth0` is plugged into it.
    pub fn bridge(tag: &str, lan_if: &str) -> LanBuilder {
        LanBuilder::new(tag, LanPort::Bridge, lan_if)
    }

    /// The server's `lan_if` is a tap for one QEMU guest; the client namespace stays apart.
    pub fn tap(tag: &str, lan_if: &str) -> LanBuilder {
        LanBuilder::new(tag, LanPort::Tap, lan_if)
    }

    /// The client namespace (the other machine on the LAN; its interface is [`CLIENT_IF`]).
    pub fn client(&self) -> &Netns {
        match &self.client {
            Some(c) => c,
            None => panic!("this test LAN was built without a client namespace"),
        }
    }

    /// The server's LAN port.
    pub fn lan_if(&self) -> &str {
        &self.lan_if
    }

    /// Tap `i` of the bridge, for a QEMU guest (`"tap-missing"` past the last one, which QEMU
    /// then refuses with its own message).
    pub fn tap_dev(&self, i: usize) -> &str {
        self.taps.get(i).map_or("tap-missing", String::as_str)
    }

    /// Plug another machine (`ns`, its `eth0`) into the bridge through the port `port`.
    pub fn plug(&self, port: &str, ns: &Netns) -> io::Result<()> {
        plug(&self.server, &self.lan_if, port, ns, CLIENT_IF)
    }

    /// The scratch directory (configs, state directories, leases), deleted with the LAN.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `state` in the scratch directory: the server's `--state-dir` (its store), not created.
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }
}

impl LanBuilder {
    fn new(tag: &str, port: LanPort, lan_if: &str) -> LanBuilder {
        LanBuilder {
            tag: tag.to_owned(),
            port,
            port_name: lan_if.to_owned(),
            server_addrs: Vec::new(),
            client: true,
            client_addrs: Vec::new(),
            client_mac: None,
            taps: 0,
        }
    }
}

/// A bridge `name` in `ns`, up, that forwards at once: no STP, no forwarding delay, no multicast
/// snooping (ports forward as soon as QEMU opens its tap; router advertisements reach everyone).
pub fn add_bridge(ns: &Netns, name: &str) -> io::Result<()> {
    ns.run(&[
        "ip",
        "link",
        "add",
        name,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
        "mcast_snooping",
        "0",
    ])?;
    ns.run(&["ip", "link", "set", name, "up"])?;
    Ok(())
}

/// Join `ns`'s `dev` to the bridge `bridge` in `bridge_ns` by a veth pair whose bridge-side end
/// is the port `port`.
pub fn plug(bridge_ns: &Netns, bridge: &str, port: &str, ns: &Netns, dev: &str) -> io::Result<()> {
    veth(bridge_ns, port, ns, dev)?;
    bridge_ns.run(&["ip", "link", "set", port, "master", bridge])?;
    Ok(())
}
