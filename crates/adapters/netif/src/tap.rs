//! A tap interface of the daemon's own (the pre-flight VM's private network): made with the
//! TUN driver's ioctls (rtnetlink cannot make one), given its address and brought up over
//! rtnetlink, and deleted over rtnetlink when dropped. Never the LAN port.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkFlags, LinkMessage};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use crate::NetifError;
use crate::dump::Rtnl;

/// Making or configuring the tap failed.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name is not 1 to 15 bytes of letters, digits, `-` or `_`.
    #[error("{0:?} is not a tap name: use 1 to 15 letters, digits, '-' or '_'")]
    Name(String),
    /// `/dev/net/tun` could not be opened or refused the tap.
    #[error("cannot create tap {name}: {source} (needs root and the tun module)")]
    Create {
        /// The tap.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel refused its address, its state or its removal.
    #[error("cannot configure tap {name}: {source}")]
    Netlink {
        /// The tap.
        name: String,
        /// Why.
        source: NetifError,
    },
}

/// A persistent tap with an IPv4 address, up; deleted when dropped. QEMU attaches to it by
/// name (`-netdev tap,ifname=...`).
#[derive(Debug)]
pub struct Tap {
    name: String,
    index: u32,
}

/// `TUNSETIFF` and `TUNSETPERSIST` (`_IOW('T', 202/203, int)`).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
/// `IFF_TAP | IFF_NO_PI`.
const TAP_FLAGS: libc::c_short = 0x0002 | 0x1000;

/// Opens `/dev/net/tun` for the tap `name` (`IFF_TAP | IFF_NO_PI`): the kernel makes the tap
/// in the calling thread's network namespace, or attaches to the one already there. Frames are
/// read and written on the returned file; a tap made here goes away with it unless persisted.
pub fn open_tap(name: &str) -> Result<File, TapError> {
    let valid = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(TapError::Name(name.to_owned()));
    }
    let create = |source| TapError::Create {
        name: name.to_owned(),
        source,
    };
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(create)?;
    // struct ifreq: the name (16 bytes, NUL-terminated) then the flags; 40 bytes in all.
    let mut ifreq = [0u8; 40];
    for (slot, byte) in ifreq.iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    let [f0, f1] = TAP_FLAGS.to_ne_bytes();
    if let Some(flags) = ifreq.get_mut(16..18) {
        flags.copy_from_slice(&[f0, f1]);
    }
    // SAFETY: `ifreq` is a live 40-byte buffer laid out as `struct ifreq` (name, flags),
    // large enough for what TUNSETIFF reads and writes; the fd is the open tun device.
    #[allow(unsafe_code)]
    let set = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, ifreq.as_mut_ptr()) };
    if set < 0 {
        return Err(create(std::io::Error::last_os_error()));
    }
    Ok(tun)
}

impl Tap {
    /// Creates tap `name`, gives it `address/prefix_len` and brings it up.
    pub fn create(name: &str, address: Ipv4Addr, prefix_len: u8) -> Result<Tap, TapError> {
        let create = |source| TapError::Create {
            name: name.to_owned(),
            source,
        };
        let tun = open_tap(name)?;
        // SAFETY: TUNSETPERSIST takes an int by value; the fd is the tun device set up above.
        #[allow(unsafe_code)]
        let persist = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) };
        if persist < 0 {
            return Err(create(std::io::Error::last_os_error()));
        }
        drop(tun);
        let netlink = |source| TapError::Netlink {
            name: name.to_owned(),
            source,
        };
        let index = crate::interface(name)
            .map_err(netlink)?
            .map(|i| i.index)
            .ok_or_else(|| create(std::io::Error::other("made, but not listed")))?;
        let tap = Tap {
            name: name.to_owned(),
            index,
        };
        let mut rtnl = Rtnl::open().map_err(netlink)?;
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.prefix_len = prefix_len;
        addr.header.index = index;
        addr.attributes
            .push(AddressAttribute::Local(address.into()));
        addr.attributes
            .push(AddressAttribute::Address(address.into()));
        change(
            &mut rtnl,
            "add the tap's address",
            RouteNetlinkMessage::NewAddress(addr),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(netlink)?;
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        change(
            &mut rtnl,
            "set the tap up",
            RouteNetlinkMessage::SetLink(link),
            0,
        )
        .map_err(netlink)?;
        Ok(tap)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its interface index.
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// One change over `rtnl`; a refusal says what was asked (`what`).
fn change(
    rtnl: &mut Rtnl,
    what: &str,
    request: RouteNetlinkMessage,
    flags: u16,
) -> Result<(), NetifError> {
    rtnl.change(request, flags)
        .map_err(|source| NetifError::Change {
            what: what.to_owned(),
            source,
        })
}

impl Drop for Tap {
    fn drop(&mut self) {
        let mut link = LinkMessage::default();
        link.header.index = self.index;
        let deleted = Rtnl::open().and_then(|mut rtnl| {
            change(
                &mut rtnl,
                "delete the tap",
                RouteNetlinkMessage::DelLink(link),
                0,
            )
        });
        if let Err(e) = deleted {
            eprintln!("flakeboot: cannot delete tap {}: {e}", self.name);
        }
    }
}
