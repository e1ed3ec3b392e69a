//! The pool's indexes, so that no request walks every lease: records by owner (MAC and client
//! identifier) and the runs of held addresses (first free address in O(log n)).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use flakeboot_catalogue::MacAddr;

use super::client::Client;

/// Addresses of records (leases or offers) by the MAC and the client identifier they carry.
///
/// [`Client::is`] lets the client identifier decide when both sides have one and the MAC
/// otherwise, so every record a client owns carries its MAC or its identifier: the union of the
/// two sets holds them all (callers then check [`Client::is`] on each).
#[derive(Debug, Default)]
pub(crate) struct Owners {
    by_mac: HashMap<MacAddr, BTreeSet<Ipv4Addr>>,
    by_client_id: HashMap<Vec<u8>, BTreeSet<Ipv4Addr>>,
}

impl Owners {
    pub(crate) fn add(&mut self, ip: Ipv4Addr, mac: MacAddr, client_id: Option<&[u8]>) {
        self.by_mac.entry(mac).or_default().insert(ip);
        if let Some(id) = client_id {
            self.by_client_id.entry(id.to_vec()).or_default().insert(ip);
        }
    }

    pub(crate) fn remove(&mut self, ip: Ipv4Addr, mac: MacAddr, client_id: Option<&[u8]>) {
        if let Some(set) = self.by_mac.get_mut(&mac) {
            set.remove(&ip);
            if set.is_empty() {
                self.by_mac.remove(&mac);
            }
        }
        if let Some(id) = client_id
            && let Some(set) = self.by_client_id.get_mut(id)
        {
            set.remove(&ip);
            if set.is_empty() {
                self.by_client_id.remove(id);
            }
        }
    }

    /// Every address whose record may be `client`'s, in address order (a superset: check
    /// [`Client::is`] on each).
    pub(crate) fn candidates(&self, client: &Client) -> BTreeSet<Ipv4Addr> {
        let mut all = self.of_mac(client.mac);
        if let Some(set) = client
            .client_id
            .as_deref()
            .and_then(|id| self.by_client_id.get(id))
        {
            all.extend(set.iter().copied());
        }
        all
    }

    /// The addresses of records carrying `mac`.
    pub(crate) fn of_mac(&self, mac: MacAddr) -> BTreeSet<Ipv4Addr> {
        self.by_mac.get(&mac).cloned().unwrap_or_default()
    }

    /// How many records are indexed (each once by MAC), for the consistency checks of tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_mac.values().map(BTreeSet::len).sum()
    }
}

/// A set of addresses kept as maximal runs `first..=last` (adjacent runs are merged), so the
/// first address not in the set after any point is found with one lookup.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    runs: BTreeMap<u32, u32>,
}

impl Runs {
    /// The run containing `a`, as (first, last).
    fn run_of(&self, a: u32) -> Option<(u32, u32)> {
        self.runs
            .range(..=a)
            .next_back()
            .filter(|(_, last)| **last >= a)
            .map(|(first, last)| (*first, *last))
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        self.run_of(u32::from(ip)).is_some()
    }

    pub(crate) fn insert(&mut self, ip: Ipv4Addr) {
        let a = u32::from(ip);
        if self.run_of(a).is_some() {
            return;
        }
        let mut first = a;
        let mut last = a;
        if let Some(before) = a.checked_sub(1)
            && let Some((start, _)) = self.run_of(before)
        {
            self.runs.remove(&start);
            first = start;
        }
        if let Some(after) = a.checked_add(1)
            && let Some(end) = self.runs.remove(&after)
        {
            last = end;
        }
        self.runs.insert(first, last);
    }

    pub(crate) fn remove(&mut self, ip: Ipv4Addr) {
        let a = u32::from(ip);
        let Some((first, last)) = self.run_of(a) else {
            return;
        };
        self.runs.remove(&first);
        if first < a {
            self.runs.insert(first, a - 1);
        }
        if a < last {
            self.runs.insert(a + 1, last);
        }
    }

    /// The first address of `from..=to` not in the set.
    pub(crate) fn first_absent(&self, from: Ipv4Addr, to: Ipv4Addr) -> Option<Ipv4Addr> {
        let from = u32::from(from);
        let candidate = match self.run_of(from) {
            // Runs are maximal: the address after one is never in the set.
            Some((_, last)) => last.checked_add(1)?,
            None => from,
        };
        (candidate <= u32::from(to)).then(|| Ipv4Addr::from(candidate))
    }

    /// The number of runs (tests check that adjacent runs were merged).
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    use flakeboot_catalogue::MacAddr;

    use super::super::client::Client;
    use super::{Owners, Runs};

    /// xorshift64: a fixed sequence, no dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn runs_agree_with_a_plain_set_under_random_inserts_and_removes() {
        let mut runs = Runs::default();
        let mut model = BTreeSet::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000 {
            let a = (next(&mut seed) % 64) as u32;
            let ip = Ipv4Addr::from(a);
            if next(&mut seed).is_multiple_of(3) {
                runs.remove(ip);
                model.remove(&a);
            } else {
                runs.insert(ip);
                model.insert(a);
            }
            let from = (next(&mut seed) % 70) as u32;
            let to = from + (next(&mut seed) % 10) as u32;
            let expected = (from..=to).find(|x| !model.contains(x)).map(Ipv4Addr::from);
            assert_eq!(
                runs.first_absent(Ipv4Addr::from(from), Ipv4Addr::from(to)),
                expected,
                "step {step}: first absent in {from}..={to}"
            );
            assert_eq!(runs.contains(ip), model.contains(&a));
            // Maximal runs: one per gap-separated block of the model.
            let blocks = model
                .iter()
                .filter(|x| x.checked_sub(1).is_none_or(|p| !model.contains(&p)))
                .count();
            assert_eq!(runs.run_count(), blocks, "step {step}: runs not merged");
        }
    }

    #[test]
    fn runs_at_the_ends_of_the_address_space() {
        let mut runs = Runs::default();
        runs.insert(Ipv4Addr::BROADCAST);
        runs.insert(Ipv4Addr::from(u32::MAX - 1));
        assert_eq!(
            runs.first_absent(Ipv4Addr::from(u32::MAX - 1), Ipv4Addr::BROADCAST),
            None
        );
        runs.insert(Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            runs.first_absent(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST),
            Some(Ipv4Addr::from(1))
        );
        runs.remove(Ipv4Addr::BROADCAST);
        assert_eq!(
            runs.first_absent(Ipv4Addr::from(u32::MAX - 1), Ipv4Addr::BROADCAST),
            Some(Ipv4Addr::BROADCAST)
        );
    }

    #[test]
    fn owners_find_records_by_mac_or_client_id() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let other = MacAddr([2, 0, 0, 0, 0, 2]);
        let mut owners = Owners::default();
        owners.add(Ipv4Addr::new(10, 0, 0, 1), mac, None);
        owners.add(Ipv4Addr::new(10, 0, 0, 2), other, Some(b"id"));
        let client = Client {
            mac,
            client_id: Some(b"id".to_vec()),
            hostname: None,
        };
        let found: Vec<_> = owners.candidates(&client).into_iter().collect();
        assert_eq!(
            found,
            [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
        );
        owners.remove(Ipv4Addr::new(10, 0, 0, 2), other, Some(b"id"));
        assert_eq!(owners.candidates(&client).len(), 1);
        owners.remove(Ipv4Addr::new(10, 0, 0, 1), mac, None);
        assert_eq!(owners.len(), 0);
        assert!(owners.by_mac.is_empty() && owners.by_client_id.is_empty());
    }
}
