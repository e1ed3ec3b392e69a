//! A long random walk through every kind of request, with the pool's indexes checked against its
//! records after each step (and the first free address against a walk over every address).

use std::time::Duration;

use dhcproto::v4::{DhcpOption, MessageType};
use flakeboot_catalogue::MacAddr;

use super::{Clock, SERVER, Verdict, discover, init_reboot, ip, renew, request, select, with_opt};
use crate::lease::{Pool, PoolConfig};

/// xorshift64: the same walk on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn walk_config() -> PoolConfig {
    PoolConfig {
        // Two ranges with a gap, the router and a reservation inside the first.
        ranges: vec![(ip(100), ip(130)), (ip(140), ip(150))],
        router: Some(ip(110)),
        reservations: vec![(MacAddr([2, 0, 0, 0, 0, 7]), ip(120), None)],
        lease_time: Duration::from_secs(600),
        decline_quarantine: Duration::from_secs(300),
        ..super::config()
    }
}

/// Client `n`: more clients than addresses; every third sends a client identifier, and clients
/// 1 and 2 share one (the identifier decides, RFC 2131 4.2).
fn client(n: u64) -> (MacAddr, Option<Vec<u8>>) {
    let mac = MacAddr([2, 0, 0, 0, 0, n as u8]);
    let id = match n {
        1 | 2 => Some(b"shared".to_vec()),
        n if n.is_multiple_of(3) => Some(vec![1, n as u8]),
        _ => None,
    };
    (mac, id)
}

#[test]
fn indexes_agree_with_the_records_through_a_long_random_walk() {
    let mut pool = Pool::new(walk_config(), Vec::new());
    let mut clock = Clock::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut offered = std::collections::HashMap::new();
    let mut kinds = [0u32; 9];
    let mut verdicts = std::collections::BTreeMap::new();
    for step in 0..30_000 {
        let n = rng.below(80);
        let (mac, id) = client(n);
        let some_ip = ip(95 + rng.below(60) as u8);
        let own = offered.get(&n).copied().unwrap_or(some_ip);
        let kind = rng.below(9);
        kinds[kind as usize] += 1;
        let msg = match kind {
            0 | 1 => discover(mac),
            2 => select(mac, own, SERVER),
            3 => select(mac, some_ip, super::OTHER_SERVER),
            4 => init_reboot(mac, if rng.below(2) == 0 { own } else { some_ip }),
            5 => renew(mac, own),
            6 => with_opt(
                request(MessageType::Decline, mac),
                DhcpOption::RequestedIpAddress(own),
            ),
            7 => {
                let mut m = request(MessageType::Release, mac);
                m.set_ciaddr(own);
                m
            }
            _ => {
                pool.release_mac(mac);
                clock.advance(Duration::from_secs(rng.below(15)));
                pool.handle(clock.now(), &request(MessageType::Inform, mac));
                pool.check_indexes();
                continue;
            }
        };
        let msg = match id {
            Some(id) => with_opt(msg, DhcpOption::ClientIdentifier(id)),
            None => msg,
        };
        let handled = pool.handle(clock.now(), &msg);
        let name = format!("{:?}", handled.verdict);
        let name = name.split('(').next().unwrap_or_default().to_owned();
        *verdicts.entry(name).or_insert(0u32) += 1;
        if let Verdict::Offered(addr) | Verdict::Acked(addr) = handled.verdict {
            offered.insert(n, addr);
        }
        pool.check_indexes();
        assert!(step < 30_000);
    }
    assert!(
        kinds.iter().all(|k| *k > 2_000),
        "every kind of step ran: {kinds:?}"
    );
    for outcome in [
        "Offered",
        "Acked",
        "Nacked",
        "Declined",
        "Released",
        "Exhausted",
    ] {
        let seen = verdicts.get(outcome).copied().unwrap_or(0);
        assert!(seen > 50, "{outcome} only {seen} times: {verdicts:?}");
    }
}
