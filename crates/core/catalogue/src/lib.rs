//! The seam between the boot services (DHCP, TFTP, HTTP) and policy.
//!
//! The boot services never decide *what* a machine boots: they ask a [`Catalogue`]. The daemon
//! wires an implementation backed by the config file and the store; tests wire fakes. The trait is
//! deliberately narrow (four questions), in the spirit of Pixiecore's `Booter`.

mod event;
mod file;
mod mac;
mod recording;
mod spec;
pub mod text;

pub use event::{BootEvent, BootStage, ClientFirmware, Outcome};
pub use file::{BootFile, FileKind, IpxeBinary};
pub use mac::{MacAddr, ParseMacError};
pub use recording::RecordingCatalogue;
pub use spec::{BootSpec, HostBoot, LOCAL_DISK, Menu, MenuEntry};

use std::net::IpAddr;
use std::path::PathBuf;

/// "What does machine X boot now?" and "which file on disk is boot file Y?".
///
/// Implementations must be cheap and non-blocking enough to be called from a packet loop: they
/// answer from memory; recording an event may queue it for a writer.
pub trait Catalogue: Send + Sync + 'static {
    /// What the machine with this MAC boots now. `None` when the client did not say (for example
    /// an iPXE script fetched without `?mac=`): the catalogue then answers with its menu.
    fn boot_spec(&self, mac: Option<MacAddr>) -> BootSpec;

    /// The file on disk behind a boot file, or `None` when it is not in the catalogue. Only files
    /// this returns are ever served: this is what keeps TFTP and HTTP inside the catalogue.
    fn boot_file(&self, file: &BootFile) -> Option<PathBuf>;

    /// Record one step of a machine's boot (a DHCP decision, a TFTP or HTTP fetch, a booted
    /// system's report). Only a DHCP stage's MAC ([`BootStage::mac_from_wire`]) is trusted as
    /// given, and it binds the event's address to that MAC; any other event belongs to the MAC
    /// its address is bound to (its DHCP exchange or lease), or to nobody, whatever MAC it
    /// names: a client's claim never writes into another machine's timeline.
    fn record(&self, event: BootEvent);

    /// May a booted system at `from` report for the machine `mac` (`POST /boot/report`)? Only
    /// from the address that MAC holds (its lease) or last took in a DHCP exchange: anyone else
    /// could otherwise mark another machine up or failed. Fetching a script with `?mac=` does
    /// not make an address a MAC's. The boot service records an accepted report with
    /// [`Catalogue::record`] (stage [`BootStage::System`]).
    fn accept_report(&self, mac: MacAddr, from: IpAddr) -> bool;

    /// A network-boot client `mac` takes the address `ip` (seen in its DHCP REQUEST, also one
    /// sent to the LAN's own DHCP server in proxy mode): its TFTP and HTTP requests from `ip`
    /// are this machine's. Default: ignored.
    fn client_address(&self, mac: MacAddr, ip: IpAddr) {
        let _ = (mac, ip);
    }

    /// The machine at `ip`: the MAC that address is bound to (its DHCP exchange, or the lease
    /// it holds), as [`Catalogue::record`] would attribute an event from it. Lines of the
    /// machines' logs are attributed by it, never by the host name they name. Default: nobody.
    fn machine_at(&self, ip: IpAddr) -> Option<MacAddr> {
        let _ = ip;
        None
    }
}
