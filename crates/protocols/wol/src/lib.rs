//! Wake-on-LAN. [`packet`] builds the magic packet (six 0xFF bytes, then the target's MAC
//! sixteen times) and the raw ethernet frame around it; pure, no I/O. [`send`] sends it on one
//! interface both ways a network card may listen for it: as a UDP broadcast to port 9 and as an
//! ethernet broadcast frame of EtherType 0x0842.
//!
//! ```no_run
//! # fn f() -> Result<(), flakeboot_wol::WakeError> {
//! let mac = "52:54:00:12:34:56".parse().expect("a MAC");
//! let sent = flakeboot_wol::send("lan0", mac)?;
//! assert_eq!(sent.interface, "lan0");
//! # Ok(()) }
//! ```

pub mod packet;
pub mod send;

pub use packet::{ETHERTYPE_WOL, MAGIC_LEN, UDP_PORT, ethernet_frame, magic_packet};
pub use send::{Sent, WakeError, send};
