//! Userspace WireGuard (boringtun) inside this process, driven over a private socket pair.
//!
//! `defguard_wireguard_rs` would create the device with a control socket at
//! `/var/run/wireguard/<name>.sock`, and boringtun then also takes SIGTERM and SIGINT for itself
//! (a signalfd): it would swallow the signal meant to stop the daemon and tear only the tunnel
//! down. Created here with its control channel on a socket pair instead (boringtun's `uapi_fd`),
//! it registers no signal handler and no file on the machine; the UAPI text protocol is the same
//! (`Host::as_uapi`, `Host::parse_uapi`).

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use defguard_boringtun::device::{DeviceConfig, DeviceHandle};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::peer::Peer;
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// How long one control request may take.
const UAPI_TIMEOUT: Duration = Duration::from_secs(3);

/// A boringtun device and its control channel. Dropping it stops the device (its threads end and
/// the TUN device goes away).
pub(crate) struct UserspaceDevice {
    /// Dropped second: the device's threads exit.
    _handle: DeviceHandle,
    /// Our end of the control channel.
    uapi: Mutex<UnixStream>,
}

impl UserspaceDevice {
    /// Creates the TUN device `name`, starts boringtun on it and brings the link up.
    pub(crate) fn create(name: &str) -> io::Result<UserspaceDevice> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_read_timeout(Some(UAPI_TIMEOUT))?;
        ours.set_write_timeout(Some(UAPI_TIMEOUT))?;
        let config = DeviceConfig {
            uapi_fd: theirs.into_raw_fd(),
            ..DeviceConfig::default()
        };
        let handle =
            DeviceHandle::new(name, config).map_err(|e| io::Error::other(format!("{e:?}")))?;
        set_link_up(name)?;
        Ok(UserspaceDevice {
            _handle: handle,
            uapi: Mutex::new(ours),
        })
    }

    /// One `set=1` request; the device's `errno` as an error when not 0.
    fn set(&self, body: &str) -> io::Result<()> {
        let stream = self.uapi.lock().unwrap_or_else(PoisonError::into_inner);
        (&*stream).write_all(format!("set=1\n{body}\n").as_bytes())?;
        let mut reader = BufReader::new(&*stream);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::Error::other(
                    "the WireGuard device closed its control channel",
                ));
            }
            if let Some(errno) = line.trim().strip_prefix("errno=") {
                return match errno {
                    "0" => Ok(()),
                    e => Err(io::Error::other(format!(
                        "the WireGuard device refused the change (errno {e})"
                    ))),
                };
            }
        }
    }

    /// Listen port, private key and peers, replacing all peers.
    pub(crate) fn set_host(&self, host: &Host) -> io::Result<()> {
        self.set(&host.as_uapi())
    }

    /// Adds or updates one peer.
    pub(crate) fn set_peer(&self, peer: &Peer) -> io::Result<()> {
        self.set(&peer.as_uapi_update())
    }

    /// Removes one peer (its sessions end at once).
    pub(crate) fn remove_peer(&self, key: &Key) -> io::Result<()> {
        self.set(&format!("public_key={}\nremove=true\n", key.to_lower_hex()))
    }

    /// The device's state: peers with handshake, traffic and endpoint.
    pub(crate) fn read(&self) -> io::Result<Host> {
        let stream = self.uapi.lock().unwrap_or_else(PoisonError::into_inner);
        (&*stream).write_all(b"get=1\n\n")?;
        Host::parse_uapi(&*stream)
    }
}

/// Sets the link `name` up (boringtun leaves its TUN device down).
fn set_link_up(name: &str) -> io::Result<()> {
    let index = nix::net::if_::if_nametoindex(name).map_err(io::Error::from)?;
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::SetLink(message));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    request.finalize();
    let mut buf = vec![0u8; request.buffer_len()];
    request.serialize(&mut buf);
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&buf, 0)?;
    let (reply, _) = socket.recv_from_full()?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .map_err(|e| io::Error::other(e.to_string()))?;
    match reply.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Ok(()),
    }
}
