//! What the pool did with one request: the reply, the lease changes, and a verdict for logs
//! and counters.

use std::net::Ipv4Addr;

use dhcproto::v4::Message;

use super::Lease;

/// The outcome of one request, for the caller to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The reply to send, once `persist` and `forget` are durable.
    pub reply: Option<Message>,
    /// Lease records to write (bound or declined) before the reply goes out.
    pub persist: Vec<Lease>,
    /// Addresses whose lease records to delete.
    pub forget: Vec<Ipv4Addr>,
    /// What happened, for logs and counters.
    pub verdict: Verdict,
}

/// What [`Pool::handle`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// OFFER of this address.
    Offered(Ipv4Addr),
    /// ACK of this address (new, renewed or rebound lease).
    Acked(Ipv4Addr),
    /// NAK.
    Nacked(NakReason),
    /// DECLINE: the address is in quarantine.
    Declined(Ipv4Addr),
    /// RELEASE: the lease is gone.
    Released(Ipv4Addr),
    /// ACK to an INFORM (configuration only).
    Informed,
    /// DISCOVER with no free address: no offer.
    Exhausted,
    /// No reply, on purpose.
    Ignored(Ignored),
}

/// Why a REQUEST was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakReason {
    /// The address is not in the client's subnet.
    WrongNetwork,
    /// The address is leased, reserved or quarantined for someone else, or outside the pool.
    NotAvailable,
    /// We know this client, and this is not its address.
    NotItsLease,
}

/// Why a request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// A BOOTREPLY, or a message type a server does not answer.
    NotARequest,
    /// No option 53.
    NoMessageType,
    /// `chaddr` is not an Ethernet MAC.
    NoClientMac,
    /// A required field (option 50, ciaddr) is missing.
    Incomplete,
    /// The client chose another server's offer.
    OtherServer,
    /// Init-reboot for an address we know nothing about (RFC 2131 4.3.2: stay silent).
    UnknownClient,
    /// The client is on a subnet this server has no range for.
    UnservedSubnet,
    /// DECLINE or RELEASE of an address that is not this client's.
    NotItsLease,
}

/// No reply and no lease change, for this reason.
pub(crate) fn ignored(why: Ignored) -> Handled {
    Handled {
        reply: None,
        persist: Vec::new(),
        forget: Vec::new(),
        verdict: Verdict::Ignored(why),
    }
}
