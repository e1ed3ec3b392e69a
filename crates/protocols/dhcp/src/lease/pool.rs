//! The lease state machine: DISCOVER/REQUEST/DECLINE/RELEASE/INFORM in, replies and lease records
//! out (RFC 2131 4.3).

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use flakeboot_catalogue::MacAddr;

use super::PoolConfig;
use super::client::Client;
use super::outcome::{Handled, Ignored, NakReason, Verdict, ignored};
use super::records::{Offer, Records};
use super::reply::{self, Grant};
use super::store::{Lease, LeaseState};

/// How long an OFFER holds its address for the client (in memory only).
pub const OFFER_HOLD: Duration = Duration::from_secs(60);

/// The address pool of router mode and its leases.
///
/// Every request costs O(log n) in the number of leases and offers (see [`Records`]): records
/// are indexed by owner and the held addresses kept as runs, so the first free address of a range
/// is one lookup.
#[derive(Debug)]
pub struct Pool {
    cfg: PoolConfig,
    records: Records,
}

impl Pool {
    /// A pool with the leases persisted by an earlier run.
    pub fn new(cfg: PoolConfig, existing: Vec<Lease>) -> Pool {
        Pool {
            cfg,
            records: Records::new(existing),
        }
    }

    /// The configuration this pool serves.
    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    /// The lease record of an address (bound or declined, possibly expired).
    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.records.lease(ip)
    }

    /// Forgets every bound lease and every offer of `mac` (the user released it from the
    /// UI, the API or the CLI): the addresses to delete from the store. Declined addresses
    /// stay quarantined. The client's next DISCOVER gets an address as if it were new.
    pub fn release_mac(&mut self, mac: MacAddr) -> Vec<Ipv4Addr> {
        self.records.release_mac(mac)
    }

    /// Handle one request received at `now`.
    pub fn handle(&mut self, now: SystemTime, msg: &Message) -> Handled {
        self.records.expire(now);
        if msg.opcode() != Opcode::BootRequest {
            return ignored(Ignored::NotARequest);
        }
        let Some(kind) = msg.opts().msg_type() else {
            return ignored(Ignored::NoMessageType);
        };
        let Some(client) = Client::from_message(msg) else {
            return ignored(Ignored::NoClientMac);
        };
        match kind {
            MessageType::Discover => self.discover(now, msg, &client),
            MessageType::Request => self.request(now, msg, &client),
            MessageType::Decline => self.decline(now, msg, &client),
            MessageType::Release => self.release(msg, &client),
            MessageType::Inform => self.inform(msg),
            _ => ignored(Ignored::NotARequest),
        }
    }

    fn discover(&mut self, now: SystemTime, msg: &Message, client: &Client) -> Handled {
        let link = link_of(msg, self.cfg.server_ip);
        if !self.serves_link(link) {
            return ignored(Ignored::UnservedSubnet);
        }
        let Some(ip) = self.choose(now, msg, client, link) else {
            return Handled {
                reply: None,
                persist: Vec::new(),
                forget: Vec::new(),
                verdict: Verdict::Exhausted,
            };
        };
        self.records.drop_offers_of(client);
        self.records.put_offer(
            ip,
            Offer {
                mac: client.mac,
                client_id: client.client_id.clone(),
                expires: now + OFFER_HOLD,
            },
        );
        let mut offer = reply::base(msg, MessageType::Offer, self.cfg.server_ip);
        offer.set_yiaddr(ip);
        self.add_grant(&mut offer, msg, client, ip);
        Handled {
            reply: Some(offer),
            persist: Vec::new(),
            forget: Vec::new(),
            verdict: Verdict::Offered(ip),
        }
    }

    /// The address to offer: reservation > the client's current lease or offer > option 50 >
    /// the first free address of the link's ranges.
    fn choose(
        &self,
        now: SystemTime,
        msg: &Message,
        client: &Client,
        link: Ipv4Addr,
    ) -> Option<Ipv4Addr> {
        let usable =
            |ip: &Ipv4Addr| self.cfg.same_subnet(*ip, link) && self.is_available(now, *ip, client);
        if let Some((ip, _)) = self.cfg.reservation_of(client.mac)
            && usable(&ip)
        {
            return Some(ip);
        }
        let own_offer = self.records.offers_of(client).into_iter().next();
        let own_lease = self
            .records
            .bound_leases_of(client)
            .max_by_key(|r| r.expires)
            .map(|r| r.ip);
        let requested = requested_ip(msg).filter(|ip| self.cfg.in_range(*ip));
        if let Some(ip) = own_offer
            .into_iter()
            .chain(own_lease)
            .chain(requested)
            .find(usable)
        {
            return Some(ip);
        }
        self.first_free(now, client, link)
    }

    /// The first address of the link's ranges that `client` may have. The runs of held addresses
    /// are skipped in one step each; what is left to test one by one are the few free addresses
    /// never handed out (the server's, the router's, a subnet's edges, those reserved for others).
    fn first_free(&self, now: SystemTime, client: &Client, link: Ipv4Addr) -> Option<Ipv4Addr> {
        for &(first, last) in &self.cfg.ranges {
            if !self.cfg.same_subnet(first, link) {
                continue;
            }
            let mut from = first;
            while let Some(ip) = self.records.first_not_held(from, last) {
                if self.is_available(now, ip, client) {
                    return Some(ip);
                }
                match u32::from(ip).checked_add(1) {
                    Some(next) => from = Ipv4Addr::from(next),
                    None => break,
                }
            }
        }
        None
    }

    /// Whether `ip` may be this client's now: in a range or reserved for it, not reserved for
    /// someone else, not quarantined, not leased or offered to another client, and not the
    /// server's or the router's own address.
    fn is_available(&self, now: SystemTime, ip: Ipv4Addr, client: &Client) -> bool {
        if ip == self.cfg.server_ip || Some(ip) == self.cfg.router || self.cfg.is_subnet_edge(ip) {
            return false;
        }
        match self.cfg.reserved_for(ip) {
            Some(mac) if mac != client.mac => return false,
            Some(_) => {}
            None if !self.cfg.in_range(ip) => return false,
            None => {}
        }
        if let Some(record) = self.records.lease(ip) {
            let active = record.expires > now;
            let taken = match record.state {
                LeaseState::Declined => active,
                LeaseState::Bound => active && !client.owns(record),
            };
            if taken {
                return false;
            }
        }
        match self.records.offer(ip) {
            Some(o) => client.is(o.mac, o.client_id.as_deref()),
            None => true,
        }
    }

    fn request(&mut self, now: SystemTime, msg: &Message, client: &Client) -> Handled {
        let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(id)) => Some(*id),
            _ => None,
        };
        let ciaddr = msg.ciaddr();
        match server_id {
            Some(id) if id != self.cfg.server_ip => {
                self.records.drop_offers_of(client);
                ignored(Ignored::OtherServer)
            }
            Some(_) => {
                // SELECTING: the client took our offer.
                let Some(ip) = requested_ip(msg).or(Some(ciaddr).filter(|a| !a.is_unspecified()))
                else {
                    return ignored(Ignored::Incomplete);
                };
                let link = link_of(msg, self.cfg.server_ip);
                if !self.cfg.same_subnet(ip, link) {
                    return self.nak(msg, NakReason::WrongNetwork);
                }
                if self.is_available(now, ip, client) {
                    self.ack(now, msg, client, ip)
                } else {
                    self.nak(msg, NakReason::NotAvailable)
                }
            }
            None if ciaddr.is_unspecified() => self.init_reboot(now, msg, client),
            // RENEWING (unicast) or REBINDING (broadcast): ciaddr is the lease.
            None => self.renew(now, msg, client, ciaddr),
        }
    }

    /// INIT-REBOOT (RFC 2131 4.3.2): ACK the client's own address, NAK a wrong one, and stay
    /// silent about addresses we have no record of.
    fn init_reboot(&mut self, now: SystemTime, msg: &Message, client: &Client) -> Handled {
        let Some(ip) = requested_ip(msg) else {
            return ignored(Ignored::Incomplete);
        };
        let link = link_of(msg, self.cfg.server_ip);
        if !self.cfg.same_subnet(ip, link) {
            return self.nak(msg, NakReason::WrongNetwork);
        }
        let reserved = self.cfg.reservation_of(client.mac).map(|(r, _)| r);
        let own = self
            .records
            .lease(ip)
            .is_some_and(|r| r.state == LeaseState::Bound && client.owns(r));
        if reserved == Some(ip) || (own && reserved.is_none()) {
            return if self.is_available(now, ip, client) {
                self.ack(now, msg, client, ip)
            } else {
                self.nak(msg, NakReason::NotAvailable)
            };
        }
        if reserved.is_some() {
            return self.nak(msg, NakReason::NotItsLease);
        }
        if !self.is_available(now, ip, client) {
            return self.nak(msg, NakReason::NotAvailable);
        }
        let knows_client = self
            .records
            .bound_leases_of(client)
            .any(|r| r.expires > now);
        if knows_client {
            return self.nak(msg, NakReason::NotItsLease);
        }
        ignored(Ignored::UnknownClient)
    }

    /// RENEWING/REBINDING: extend the client's lease. A free address of our pool that we have no
    /// record of (a lost state dir) is adopted; anything else is NAKed.
    fn renew(&mut self, now: SystemTime, msg: &Message, client: &Client, ip: Ipv4Addr) -> Handled {
        if !self.cfg.serves_subnet_of(ip) {
            return self.nak(msg, NakReason::WrongNetwork);
        }
        if let Some((reserved, _)) = self.cfg.reservation_of(client.mac)
            && reserved != ip
        {
            return self.nak(msg, NakReason::NotItsLease);
        }
        if self.is_available(now, ip, client) {
            self.ack(now, msg, client, ip)
        } else {
            self.nak(msg, NakReason::NotItsLease)
        }
    }

    /// Bind `ip` to the client until `now + lease_time`, and ACK.
    fn ack(&mut self, now: SystemTime, msg: &Message, client: &Client, ip: Ipv4Addr) -> Handled {
        let reserved_name = self
            .cfg
            .reservation_of(client.mac)
            .and_then(|(_, name)| name.map(str::to_owned));
        let record = Lease {
            ip,
            mac: client.mac,
            client_id: client.client_id.clone(),
            hostname: reserved_name.or_else(|| client.hostname.clone()),
            expires: now + self.cfg.lease_time,
            state: LeaseState::Bound,
        };
        // A client holds one lease: an older one elsewhere goes.
        let forget: Vec<Ipv4Addr> = self
            .records
            .bound_leases_of(client)
            .map(|r| r.ip)
            .filter(|old| *old != ip)
            .collect();
        for old in &forget {
            self.records.take_lease(*old);
        }
        self.records.drop_offers_of(client);
        self.records.put_lease(record.clone());

        let mut ack = reply::base(msg, MessageType::Ack, self.cfg.server_ip);
        ack.set_yiaddr(ip);
        if !msg.ciaddr().is_unspecified() {
            ack.set_ciaddr(msg.ciaddr());
        }
        self.add_grant(&mut ack, msg, client, ip);
        Handled {
            reply: Some(ack),
            persist: vec![record],
            forget,
            verdict: Verdict::Acked(ip),
        }
    }

    fn nak(&self, msg: &Message, why: NakReason) -> Handled {
        let text = match why {
            NakReason::WrongNetwork => "address not on this network",
            NakReason::NotAvailable => "address not available",
            NakReason::NotItsLease => "not your lease",
        };
        Handled {
            reply: Some(reply::nak(msg, self.cfg.server_ip, text)),
            persist: Vec::new(),
            forget: Vec::new(),
            verdict: Verdict::Nacked(why),
        }
    }

    /// DECLINE: the client found the address in use; keep it out of the pool for a while.
    fn decline(&mut self, now: SystemTime, msg: &Message, client: &Client) -> Handled {
        if let Some(DhcpOption::ServerIdentifier(id)) = msg.opts().get(OptionCode::ServerIdentifier)
            && *id != self.cfg.server_ip
        {
            return ignored(Ignored::OtherServer);
        }
        let Some(ip) = requested_ip(msg) else {
            return ignored(Ignored::Incomplete);
        };
        let leased = self
            .records
            .lease(ip)
            .is_some_and(|r| r.state == LeaseState::Bound && client.owns(r));
        let offered = self
            .records
            .offer(ip)
            .is_some_and(|o| client.is(o.mac, o.client_id.as_deref()));
        if !leased && !offered {
            return ignored(Ignored::NotItsLease);
        }
        self.records.take_offer(ip);
        let record = Lease {
            ip,
            mac: client.mac,
            client_id: client.client_id.clone(),
            hostname: None,
            expires: now + self.cfg.decline_quarantine,
            state: LeaseState::Declined,
        };
        self.records.put_lease(record.clone());
        Handled {
            reply: None,
            persist: vec![record],
            forget: Vec::new(),
            verdict: Verdict::Declined(ip),
        }
    }

    /// RELEASE: the client gives its address back.
    fn release(&mut self, msg: &Message, client: &Client) -> Handled {
        let ip = msg.ciaddr();
        let own = self
            .records
            .lease(ip)
            .is_some_and(|r| r.state == LeaseState::Bound && client.owns(r));
        if !own {
            return ignored(Ignored::NotItsLease);
        }
        self.records.take_lease(ip);
        Handled {
            reply: None,
            persist: Vec::new(),
            forget: vec![ip],
            verdict: Verdict::Released(ip),
        }
    }

    /// INFORM: the client has an address and wants configuration only (RFC 2131 3.4).
    fn inform(&self, msg: &Message) -> Handled {
        let ciaddr = msg.ciaddr();
        let link = if ciaddr.is_unspecified() {
            link_of(msg, self.cfg.server_ip)
        } else {
            ciaddr
        };
        let mut ack = reply::base(msg, MessageType::Ack, self.cfg.server_ip);
        ack.set_ciaddr(ciaddr);
        let grant = Grant {
            link,
            router: self.cfg.router_for(link, msg.giaddr()),
            lease_time: None,
            hostname: None,
        };
        reply::add_options(&mut ack, &self.cfg, &grant);
        Handled {
            reply: Some(ack),
            persist: Vec::new(),
            forget: Vec::new(),
            verdict: Verdict::Informed,
        }
    }

    /// Network options and the lease time for a client granted `ip`.
    fn add_grant(&self, reply: &mut Message, req: &Message, client: &Client, ip: Ipv4Addr) {
        let hostname = self
            .cfg
            .reservation_of(client.mac)
            .and_then(|(_, name)| name);
        let grant = Grant {
            link: ip,
            router: self.cfg.router_for(ip, req.giaddr()),
            lease_time: Some(self.cfg.lease_time),
            hostname,
        };
        reply::add_options(reply, &self.cfg, &grant);
    }

    /// Panics unless every index agrees with the records and a new client gets the address a
    /// walk over every address would give it (for the tests' random walks).
    #[cfg(test)]
    pub(crate) fn check_indexes(&self) {
        let addresses =
            self.cfg.ranges.iter().flat_map(|&(first, last)| {
                (u32::from(first)..=u32::from(last)).map(Ipv4Addr::from)
            });
        self.records.check(addresses);
        let clock = self.records.clock();
        let stranger = Client {
            mac: MacAddr([0x02, 0xff, 0xff, 0xff, 0xff, 0xfe]),
            client_id: None,
            hostname: None,
        };
        for &(first, _) in &self.cfg.ranges {
            let by_walk = self.cfg.ranges.iter().find_map(|&(from, to)| {
                (u32::from(from)..=u32::from(to))
                    .map(Ipv4Addr::from)
                    .filter(|ip| self.cfg.same_subnet(*ip, first))
                    .find(|ip| self.is_available(clock, *ip, &stranger))
            });
            assert_eq!(
                self.first_free(clock, &stranger, first),
                by_walk,
                "first free address on the link of {first}"
            );
        }
    }

    /// Whether this server has a range on the link's subnet.
    fn serves_link(&self, link: Ipv4Addr) -> bool {
        self.cfg
            .ranges
            .iter()
            .any(|(first, _)| self.cfg.same_subnet(*first, link))
            || self
                .cfg
                .reservations
                .iter()
                .any(|(_, ip, _)| self.cfg.same_subnet(*ip, link))
    }
}

/// The client's link: the relay's address when relayed (`giaddr`), else our own.
fn link_of(msg: &Message, server_ip: Ipv4Addr) -> Ipv4Addr {
    let giaddr = msg.giaddr();
    if giaddr.is_unspecified() {
        server_ip
    } else {
        giaddr
    }
}

/// Option 50.
fn requested_ip(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    }
}
