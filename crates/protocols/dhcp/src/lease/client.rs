//! Who a DHCP client is: its MAC and, when it sends one, its client identifier (option 61).

use dhcproto::v4::{DhcpOption, HType, Message, OptionCode};
use flakeboot_catalogue::MacAddr;

use super::Lease;

/// The identity of the client that sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) mac: MacAddr,
    pub(crate) client_id: Option<Vec<u8>>,
    /// Option 12, stored with the lease.
    pub(crate) hostname: Option<String>,
}

impl Client {
    /// The client of a request, or `None` when `chaddr` is not an Ethernet address.
    ///
    /// `hlen` is checked first: dhcproto's `chaddr()` slices by the wire's `hlen` and would
    /// panic on a hostile value above 16.
    pub(crate) fn from_message(msg: &Message) -> Option<Client> {
        if msg.htype() != HType::Eth || msg.hlen() != 6 {
            return None;
        }
        let mac = MacAddr::from_slice(msg.chaddr())?;
        let client_id = match msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => Some(id.clone()),
            _ => None,
        };
        let hostname = match msg.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(name)) if !name.is_empty() => Some(name.clone()),
            _ => None,
        };
        Some(Client {
            mac,
            client_id,
            hostname,
        })
    }

    /// Whether a lease (or offer) with this MAC and client id is this client's.
    ///
    /// When both sides carry a client identifier, it decides (RFC 2131 4.2). When either side has
    /// none, the MAC decides: a PXE ROM (no option 61) and the OS it boots (often with one) then
    /// keep the same address, which is what a netboot LAN wants.
    pub(crate) fn is(&self, mac: MacAddr, client_id: Option<&[u8]>) -> bool {
        match (self.client_id.as_deref(), client_id) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => self.mac == mac,
        }
    }

    /// Whether a stored lease belongs to this client.
    pub(crate) fn owns(&self, record: &Lease) -> bool {
        self.is(record.mac, record.client_id.as_deref())
    }
}
