//! The pool's records (leases and offers) and their indexes, changed only together: records by
//! owner (MAC and client identifier), their ends in time order, and the addresses held (by an
//! unexpired lease or an offer) as runs, so that no request walks every lease.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::SystemTime;

use flakeboot_catalogue::MacAddr;

use super::client::Client;
use super::index::{Owners, Runs};
use super::store::{Lease, LeaseState};

/// An address offered, held for a client until `expires`.
#[derive(Debug, Clone)]
pub(super) struct Offer {
    pub(super) mac: MacAddr,
    pub(super) client_id: Option<Vec<u8>>,
    pub(super) expires: SystemTime,
}

/// Leases and offers with their indexes.
#[derive(Debug)]
pub(super) struct Records {
    /// Bound and declined leases by address, expired ones included until reused (so a returning
    /// client gets its old address back).
    leases: BTreeMap<Ipv4Addr, Lease>,
    lease_owners: Owners,
    /// (expiry, address) of leases not yet seen to expire.
    lease_ends: BTreeSet<(SystemTime, Ipv4Addr)>,
    offers: HashMap<Ipv4Addr, Offer>,
    offer_owners: Owners,
    /// (expiry, address) of every offer.
    offer_ends: BTreeSet<(SystemTime, Ipv4Addr)>,
    /// Addresses held by an unexpired lease or an offer: a new client cannot have them.
    held: Runs,
    /// The time of the latest request.
    clock: SystemTime,
}

impl Records {
    /// Records holding the leases persisted by an earlier run.
    pub(super) fn new(existing: Vec<Lease>) -> Records {
        let mut records = Records {
            leases: BTreeMap::new(),
            lease_owners: Owners::default(),
            lease_ends: BTreeSet::new(),
            offers: HashMap::new(),
            offer_owners: Owners::default(),
            offer_ends: BTreeSet::new(),
            held: Runs::default(),
            // Every lease counts as held until the first request's time expires it.
            clock: SystemTime::UNIX_EPOCH,
        };
        for record in existing {
            records.put_lease(record);
        }
        records
    }

    /// The lease record of an address (bound or declined, possibly expired).
    pub(super) fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip)
    }

    /// The offer of an address.
    pub(super) fn offer(&self, ip: Ipv4Addr) -> Option<&Offer> {
        self.offers.get(&ip)
    }

    /// The first address of `from..=to` held by neither an unexpired lease nor an offer.
    pub(super) fn first_not_held(&self, from: Ipv4Addr, to: Ipv4Addr) -> Option<Ipv4Addr> {
        self.held.first_absent(from, to)
    }

    /// Forgets the bound leases and offers of `mac`: the addresses of the leases.
    pub(super) fn release_mac(&mut self, mac: MacAddr) -> Vec<Ipv4Addr> {
        for ip in self.offer_owners.of_mac(mac) {
            if self.offers.get(&ip).is_some_and(|o| o.mac == mac) {
                self.take_offer(ip);
            }
        }
        let released: Vec<Ipv4Addr> = self
            .lease_owners
            .of_mac(mac)
            .into_iter()
            .filter(|ip| {
                self.leases
                    .get(ip)
                    .is_some_and(|l| l.mac == mac && l.state == LeaseState::Bound)
            })
            .collect();
        for ip in &released {
            self.take_lease(*ip);
        }
        released
    }

    /// The bound leases `client` owns, in address order.
    pub(super) fn bound_leases_of<'a>(
        &'a self,
        client: &'a Client,
    ) -> impl Iterator<Item = &'a Lease> + 'a {
        self.lease_owners
            .candidates(client)
            .into_iter()
            .filter_map(|ip| self.leases.get(&ip))
            .filter(|r| r.state == LeaseState::Bound && client.owns(r))
    }

    /// The addresses offered to `client`, in address order.
    pub(super) fn offers_of(&self, client: &Client) -> Vec<Ipv4Addr> {
        self.offer_owners
            .candidates(client)
            .into_iter()
            .filter(|ip| {
                self.offers
                    .get(ip)
                    .is_some_and(|o| client.is(o.mac, o.client_id.as_deref()))
            })
            .collect()
    }

    pub(super) fn drop_offers_of(&mut self, client: &Client) {
        for ip in self.offers_of(client) {
            self.take_offer(ip);
        }
    }

    /// Move the clock to `now`: offers that ran out go, leases that ran out stop holding their
    /// address (their records stay, for the client's return).
    pub(super) fn expire(&mut self, now: SystemTime) {
        self.clock = now;
        while let Some(&(end, ip)) = self.offer_ends.first()
            && end <= now
        {
            self.offer_ends.pop_first();
            self.take_offer(ip);
        }
        while let Some(&(end, ip)) = self.lease_ends.first()
            && end <= now
        {
            self.lease_ends.pop_first();
            self.refresh_held(ip);
        }
    }

    /// Whether `ip` is held now (an unexpired lease or an offer), recorded in `held`.
    pub(super) fn refresh_held(&mut self, ip: Ipv4Addr) {
        let held = self.offers.contains_key(&ip)
            || self.leases.get(&ip).is_some_and(|r| r.expires > self.clock);
        if held {
            self.held.insert(ip);
        } else {
            self.held.remove(ip);
        }
    }

    /// Record a lease (replacing any at its address), with its indexes.
    pub(super) fn put_lease(&mut self, record: Lease) {
        let ip = record.ip;
        self.take_lease(ip);
        self.lease_owners
            .add(ip, record.mac, record.client_id.as_deref());
        if record.expires > self.clock {
            self.lease_ends.insert((record.expires, ip));
        }
        self.leases.insert(ip, record);
        self.refresh_held(ip);
    }

    /// Forget the lease at `ip`, with its indexes.
    pub(super) fn take_lease(&mut self, ip: Ipv4Addr) -> Option<Lease> {
        let old = self.leases.remove(&ip)?;
        self.lease_owners
            .remove(ip, old.mac, old.client_id.as_deref());
        self.lease_ends.remove(&(old.expires, ip));
        self.refresh_held(ip);
        Some(old)
    }

    /// Record an offer (replacing any at its address), with its indexes.
    pub(super) fn put_offer(&mut self, ip: Ipv4Addr, offer: Offer) {
        self.take_offer(ip);
        self.offer_owners
            .add(ip, offer.mac, offer.client_id.as_deref());
        self.offer_ends.insert((offer.expires, ip));
        self.offers.insert(ip, offer);
        self.held.insert(ip);
    }

    /// Withdraw the offer at `ip`, with its indexes.
    pub(super) fn take_offer(&mut self, ip: Ipv4Addr) {
        let Some(old) = self.offers.remove(&ip) else {
            return;
        };
        self.offer_owners
            .remove(ip, old.mac, old.client_id.as_deref());
        self.offer_ends.remove(&(old.expires, ip));
        self.refresh_held(ip);
    }

    /// Panics unless every index agrees with the records, `addresses` checked for being held.
    #[cfg(test)]
    pub(super) fn check(&self, addresses: impl Iterator<Item = Ipv4Addr>) {
        assert_eq!(self.lease_owners.len(), self.leases.len(), "lease owners");
        assert_eq!(self.offer_owners.len(), self.offers.len(), "offer owners");
        for (ip, offer) in &self.offers {
            assert!(offer.expires > self.clock, "offer of {ip} outlived its end");
            assert!(self.offer_ends.contains(&(offer.expires, *ip)));
        }
        assert_eq!(self.offer_ends.len(), self.offers.len(), "offer ends");
        let active = self.leases.values().filter(|r| r.expires > self.clock);
        assert_eq!(self.lease_ends.len(), active.count(), "lease ends");
        for ip in addresses.chain(self.leases.keys().copied()) {
            let held = self.offers.contains_key(&ip)
                || self.leases.get(&ip).is_some_and(|r| r.expires > self.clock);
            assert_eq!(self.held.contains(ip), held, "held {ip}");
        }
    }

    /// The time of the latest request.
    #[cfg(test)]
    pub(super) fn clock(&self) -> SystemTime {
        self.clock
    }
}
