//! The store as the DHCP server sees it: only through `flakeboot_dhcp::LeaseStore`. A committed
//! batch survives closing and reopening the database, and reads back as the same leases.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, UNIX_EPOCH};

use flakeboot_catalogue::MacAddr;
use flakeboot_dhcp::{Lease, LeaseState, LeaseStore};
use flakeboot_store::Store;

fn lease(last: u8, state: LeaseState) -> Lease {
    Lease {
        ip: Ipv4Addr::new(10, 77, 0, last),
        mac: MacAddr([0x52, 0x54, 0, 0, 0, last]),
        client_id: Some(vec![1, 0x52, 0x54, 0, 0, 0, last]),
        hostname: Some(format!("pc-{last}")),
        expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + u64::from(last)),
        state,
    }
}

/// The store behind the trait object the server holds.
fn open(dir: &std::path::Path) -> Box<dyn LeaseStore> {
    Box::new(Store::open(dir).unwrap())
}

#[test]
fn committed_leases_load_back_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        lease(100, LeaseState::Bound),
        lease(101, LeaseState::Declined),
        lease(102, LeaseState::Bound),
    );
    {
        let leases = open(tmp.path());
        assert_eq!(leases.load().unwrap(), Vec::new());
        leases
            .commit(&[c.clone(), a.clone(), b.clone()], &[])
            .unwrap();
        // The next batch renews `a`, releases `c` and deletes an address
        // the store never had.
        let mut renewed = a.clone();
        renewed.expires += Duration::from_secs(3600);
        leases
            .commit(
                std::slice::from_ref(&renewed),
                &[c.ip, Ipv4Addr::new(10, 77, 0, 9)],
            )
            .unwrap();
        // An empty batch is a no-op.
        leases.commit(&[], &[]).unwrap();
    }
    let reopened = open(tmp.path());
    let mut renewed = a;
    renewed.expires += Duration::from_secs(3600);
    assert_eq!(reopened.load().unwrap(), vec![renewed, b]);
}
