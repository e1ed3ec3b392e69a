//! Which read requests get a transfer slot: pure bookkeeping, no I/O and no clock.
//!
//! Three caps, checked in order:
//! 1. **One transfer per client address and port.** A client's port is its transfer ID; a
//!    second request from a port that is being served is a retransmitted RRQ (or a flood from
//!    one socket). It is dropped without an answer: an ERROR to that port would end the
//!    client's real transfer.
//! 2. **`max_per_client` transfers per client address** (default 4). Beyond that the client
//!    gets "server busy"; nobody else notices.
//! 3. **`max_transfers` in all** (default 256). When every slot is taken, a request from a
//!    client with `n` transfers evicts the newest transfer of the heaviest client if that one
//!    has more than `n + 1` (so eviction always narrows the gap, never just swaps two clients
//!    of equal weight); otherwise it is refused. A flood spread over many addresses therefore
//!    cannot keep a client with nothing from being served: the flooders lose slots to it.
//!
//! Together with the session's short first-ACK timeout (a transfer nobody acknowledges ends
//! after 2 s, not after the full retransmission budget), one flooding address holds at most
//! `max_per_client` slots, each for about 2 s.
//!
//! `K` names a running transfer (the server uses tokio task ids, tests use integers).

use std::net::{IpAddr, SocketAddr};

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Concurrent transfers in all.
    pub max_transfers: usize,
    /// Concurrent transfers to one client address.
    pub max_per_client: usize,
}

/// What to do with a read request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<K> {
    /// Start a transfer.
    Admit,
    /// Start a transfer after ending this one (of a client with more transfers).
    AdmitEvicting(K),
    /// A transfer to this address and port is running: drop the request silently.
    Duplicate,
    /// The client address has `max_per_client` transfers: refuse ("server busy").
    ClientBusy,
    /// Every slot is taken by clients no heavier than this one: refuse ("server busy").
    ServerBusy,
}

/// The running transfers, oldest first.
#[derive(Debug, Clone)]
pub struct Admission<K> {
    limits: AdmissionLimits,
    active: Vec<(K, SocketAddr)>,
}

impl<K: Copy + Eq> Admission<K> {
    /// No transfers yet. Caps of 0 are read as 1.
    pub fn new(limits: AdmissionLimits) -> Self {
        let limits = AdmissionLimits {
            max_transfers: limits.max_transfers.max(1),
            max_per_client: limits.max_per_client.max(1),
        };
        Admission {
            limits,
            active: Vec::new(),
        }
    }

    /// Running transfers.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// True when no transfer runs.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Running transfers to `ip`.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.active.iter().filter(|(_, p)| p.ip() == ip).count()
    }

    /// Decides on a request from `peer`; changes nothing (the caller [`Admission::insert`]s
    /// the transfer it starts and [`Admission::remove`]s the one it evicts).
    pub fn decide(&self, peer: SocketAddr) -> Verdict<K> {
        if self.active.iter().any(|(_, p)| *p == peer) {
            return Verdict::Duplicate;
        }
        let mine = self.count(peer.ip());
        if mine >= self.limits.max_per_client {
            return Verdict::ClientBusy;
        }
        if self.active.len() < self.limits.max_transfers {
            return Verdict::Admit;
        }
        match self.heaviest() {
            Some((ip, n)) if n > mine + 1 => self
                .active
                .iter()
                .rev()
                .find(|(_, p)| p.ip() == ip)
                .map_or(Verdict::ServerBusy, |(k, _)| Verdict::AdmitEvicting(*k)),
            _ => Verdict::ServerBusy,
        }
    }

    /// Records a started transfer.
    pub fn insert(&mut self, key: K, peer: SocketAddr) {
        self.active.push((key, peer));
    }

    /// Forgets a transfer (ended or evicted); false if it was not there.
    pub fn remove(&mut self, key: K) -> bool {
        match self.active.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                self.active.remove(i);
                true
            }
            None => false,
        }
    }

    /// The address with the most transfers (the first to reach that count on a tie).
    fn heaviest(&self) -> Option<(IpAddr, usize)> {
        let mut best: Option<(IpAddr, usize)> = None;
        for (_, p) in &self.active {
            let n = self.count(p.ip());
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((p.ip(), n));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(host: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, host], port))
    }

    fn admission(max_transfers: usize, max_per_client: usize) -> Admission<u32> {
        Admission::new(AdmissionLimits {
            max_transfers,
            max_per_client,
        })
    }

    /// Runs a request through like the server does; returns the verdict.
    fn request(a: &mut Admission<u32>, key: u32, peer: SocketAddr) -> Verdict<u32> {
        let v = a.decide(peer);
        match v {
            Verdict::Admit => a.insert(key, peer),
            Verdict::AdmitEvicting(old) => {
                assert!(a.remove(old));
                a.insert(key, peer);
            }
            _ => {}
        }
        v
    }

    #[test]
    fn a_repeated_request_from_a_port_being_served_is_a_duplicate() {
        let mut a = admission(8, 4);
        assert_eq!(request(&mut a, 1, peer(1, 1000)), Verdict::Admit);
        assert_eq!(request(&mut a, 2, peer(1, 1000)), Verdict::Duplicate);
        assert_eq!(request(&mut a, 3, peer(1, 1001)), Verdict::Admit);
        assert!(a.remove(1));
        assert_eq!(request(&mut a, 4, peer(1, 1000)), Verdict::Admit);
    }

    #[test]
    fn one_address_gets_at_most_max_per_client() {
        let mut a = admission(256, 4);
        let verdicts: Vec<_> = (0..300u16)
            .map(|i| request(&mut a, u32::from(i), peer(1, 2000 + i)))
            .collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Admit).count(), 4);
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == Verdict::ClientBusy)
                .count(),
            296
        );
        // Another client is not affected.
        assert_eq!(request(&mut a, 1000, peer(2, 69)), Verdict::Admit);
        assert_eq!((a.len(), a.count(peer(1, 0).ip())), (5, 4));
    }

    #[test]
    fn when_full_a_newcomer_evicts_the_newest_transfer_of_the_heaviest_client() {
        let mut a = admission(6, 4);
        // Client 1 holds 4, client 2 holds 2: full.
        for k in 0..4 {
            request(&mut a, k, peer(1, 100 + k as u16));
        }
        request(&mut a, 10, peer(2, 100));
        request(&mut a, 11, peer(2, 101));
        assert_eq!(a.len(), 6);
        // Client 3 has none: client 1's newest (key 3) makes room.
        assert_eq!(request(&mut a, 20, peer(3, 100)), Verdict::AdmitEvicting(3));
        // Now 3 / 2 / 1: client 3's second request evicts from client 1 again (3 > 1 + 1).
        assert_eq!(request(&mut a, 21, peer(3, 101)), Verdict::AdmitEvicting(2));
        // 2 / 2 / 2: nobody is heavier than 2 + 1, so client 3's third is refused.
        assert_eq!(request(&mut a, 22, peer(3, 102)), Verdict::ServerBusy);
        // But a client with nothing still gets in (2 > 0 + 1).
        assert_eq!(request(&mut a, 30, peer(4, 100)), Verdict::AdmitEvicting(1));
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn equal_clients_are_refused_not_swapped() {
        let mut a = admission(2, 4);
        request(&mut a, 1, peer(1, 1));
        request(&mut a, 2, peer(2, 1));
        assert_eq!(request(&mut a, 3, peer(3, 1)), Verdict::ServerBusy);
        assert!(!a.remove(3));
    }

    #[test]
    fn zero_caps_mean_one() {
        let mut a = admission(0, 0);
        assert_eq!(request(&mut a, 1, peer(1, 1)), Verdict::Admit);
        assert_eq!(request(&mut a, 2, peer(1, 2)), Verdict::ClientBusy);
        assert_eq!(request(&mut a, 3, peer(2, 1)), Verdict::ServerBusy);
    }
}
