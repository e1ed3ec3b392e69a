//! Counted permits per client address and in all: what one LAN client (and all of them) may
//! hold at once of forwarded queries or TCP connections. A permit gives its place back when
//! dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The counts and their caps.
#[derive(Debug, Clone)]
pub struct Budget(Arc<Mutex<Counts>>);

#[derive(Debug)]
struct Counts {
    per_client: HashMap<IpAddr, usize>,
    total: usize,
    max_total: usize,
    max_per_client: usize,
}

/// One place in a [`Budget`], held until dropped.
#[derive(Debug)]
pub struct Permit {
    budget: Budget,
    client: IpAddr,
}

impl Budget {
    /// At most `max_total` places, `max_per_client` of them for one address.
    pub fn new(max_total: usize, max_per_client: usize) -> Budget {
        Budget(Arc::new(Mutex::new(Counts {
            per_client: HashMap::new(),
            total: 0,
            max_total,
            max_per_client,
        })))
    }

    /// A place for `client`, or `None` when it or everyone is at the cap.
    pub fn take(&self, client: IpAddr) -> Option<Permit> {
        let mut counts = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let held = counts.per_client.get(&client).copied().unwrap_or(0);
        if counts.total >= counts.max_total || held >= counts.max_per_client {
            return None;
        }
        counts.total += 1;
        counts.per_client.insert(client, held + 1);
        Some(Permit {
            budget: self.clone(),
            client,
        })
    }

    /// Places held now, in all.
    pub fn held(&self) -> usize {
        match self.0.lock() {
            Ok(guard) => guard.total,
            Err(poisoned) => poisoned.into_inner().total,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = match self.budget.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_cannot_take_everything_and_places_come_back() {
        let b = Budget::new(3, 2);
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let x1 = b.take(x).unwrap();
        let _x2 = b.take(x).unwrap();
        assert!(b.take(x).is_none(), "per client");
        let _y1 = b.take(y).unwrap();
        assert!(b.take(y).is_none(), "in all");
        drop(x1);
        assert_eq!(b.held(), 2);
        let _y2 = b.take(y).unwrap();
        assert!(b.take(x).is_none());
    }
}
