//! The lease state machine, scripted with a fake clock.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use dhcproto::v4::{
    DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, relay::RelayAgentInformation,
    relay::RelayInfo,
};
use dhcproto::{Decodable, Decoder, Encodable};
use flakeboot_catalogue::MacAddr;

use super::{Ignored, Lease, LeaseState, NakReason, Pool, PoolConfig, Verdict};

mod random_walk;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const OTHER_SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const MAC_A: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, 0x0a]);
const MAC_B: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, 0x0b]);
const MAC_R: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, 0x99]);
const RESERVED: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const HOUR: Duration = Duration::from_secs(3600);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, last)
}

fn config() -> PoolConfig {
    PoolConfig {
        server_ip: SERVER,
        ranges: vec![
            (ip(100), ip(102)),
            (Ipv4Addr::new(10, 88, 0, 100), Ipv4Addr::new(10, 88, 0, 200)),
        ],
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(SERVER),
        dns: vec![Ipv4Addr::new(10, 77, 0, 53)],
        domain: Some("lan".into()),
        lease_time: HOUR,
        decline_quarantine: Duration::from_secs(600),
        reservations: vec![(MAC_R, RESERVED, Some("reserved-host".into()))],
        ra: None,
    }
}

/// A fake clock: an arbitrary fixed start, moved forward by hand.
struct Clock(SystemTime);

impl Clock {
    fn new() -> Clock {
        Clock(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }
    fn now(&self) -> SystemTime {
        self.0
    }
    fn advance(&mut self, by: Duration) {
        self.0 += by;
    }
}

/// A request as a client builds it.
fn request(kind: MessageType, mac: MacAddr) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(0x1234_5678)
        .set_chaddr(&mac.0)
        .set_flags(Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
    ]));
    m
}

fn with_opt(mut m: Message, opt: DhcpOption) -> Message {
    m.opts_mut().insert(opt);
    m
}

fn discover(mac: MacAddr) -> Message {
    request(MessageType::Discover, mac)
}

fn select(mac: MacAddr, addr: Ipv4Addr, server: Ipv4Addr) -> Message {
    let m = with_opt(
        request(MessageType::Request, mac),
        DhcpOption::RequestedIpAddress(addr),
    );
    with_opt(m, DhcpOption::ServerIdentifier(server))
}

fn init_reboot(mac: MacAddr, addr: Ipv4Addr) -> Message {
    with_opt(
        request(MessageType::Request, mac),
        DhcpOption::RequestedIpAddress(addr),
    )
}

fn renew(mac: MacAddr, addr: Ipv4Addr) -> Message {
    let mut m = request(MessageType::Request, mac);
    m.set_ciaddr(addr).set_flags(Flags::default());
    m
}

/// DISCOVER + REQUEST; the ACKed address.
fn dora(pool: &mut Pool, clock: &Clock, mac: MacAddr) -> Ipv4Addr {
    let Verdict::Offered(addr) = pool.handle(clock.now(), &discover(mac)).verdict else {
        panic!("no offer for {mac}");
    };
    let handled = pool.handle(clock.now(), &select(mac, addr, SERVER));
    assert_eq!(handled.verdict, Verdict::Acked(addr));
    addr
}

fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

#[test]
fn discover_gets_an_offer_with_every_option_and_nothing_is_persisted() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let handled = pool.handle(clock.now(), &discover(MAC_A));
    assert_eq!(handled.verdict, Verdict::Offered(ip(100)));
    assert!(handled.persist.is_empty(), "offers live in memory only");
    let offer = handled.reply.unwrap();
    assert_eq!(offer.opcode(), Opcode::BootReply);
    assert_eq!(offer.xid(), 0x1234_5678);
    assert_eq!(offer.yiaddr(), ip(100));
    assert_eq!(offer.chaddr(), &MAC_A.0);
    assert!(offer.flags().broadcast());
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    let expect = [
        DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
        DhcpOption::Router(vec![SERVER]),
        DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 77, 0, 53)]),
        DhcpOption::DomainName("lan".into()),
        DhcpOption::BroadcastAddr(Ipv4Addr::new(10, 77, 0, 255)),
        DhcpOption::AddressLeaseTime(3600),
        DhcpOption::ServerIdentifier(SERVER),
        DhcpOption::Renewal(1800),
        DhcpOption::Rebinding(3150),
    ];
    for o in expect {
        assert_eq!(opt(&offer, OptionCode::from(&o)), Some(&o));
    }
}

#[test]
fn request_for_our_offer_is_acked_and_persisted() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    pool.handle(clock.now(), &discover(MAC_A));
    let handled = pool.handle(clock.now(), &select(MAC_A, ip(100), SERVER));
    assert_eq!(handled.verdict, Verdict::Acked(ip(100)));
    let ack = handled.reply.unwrap();
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), ip(100));
    assert_eq!(
        opt(&ack, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(
        handled.persist,
        vec![Lease {
            ip: ip(100),
            mac: MAC_A,
            client_id: None,
            hostname: None,
            expires: clock.now() + HOUR,
            state: LeaseState::Bound,
        }]
    );
}

#[test]
fn request_for_another_servers_offer_forgets_ours_silently() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    pool.handle(clock.now(), &discover(MAC_A));
    let handled = pool.handle(clock.now(), &select(MAC_A, ip(100), OTHER_SERVER));
    assert_eq!(handled.verdict, Verdict::Ignored(Ignored::OtherServer));
    assert!(handled.reply.is_none() && handled.persist.is_empty());
    // The address is free again for the next client.
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_B)).verdict,
        Verdict::Offered(ip(100))
    );
}

#[test]
fn an_offer_holds_its_address_for_a_while_then_lets_go() {
    let mut pool = Pool::new(config(), Vec::new());
    let mut clock = Clock::new();
    pool.handle(clock.now(), &discover(MAC_A));
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_B)).verdict,
        Verdict::Offered(ip(101))
    );
    // The same client asking again gets the same offer.
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_A)).verdict,
        Verdict::Offered(ip(100))
    );
    clock.advance(super::OFFER_HOLD + Duration::from_secs(1));
    let mac_c = MacAddr([2, 0, 0, 0, 0, 0xc]);
    assert_eq!(
        pool.handle(clock.now(), &discover(mac_c)).verdict,
        Verdict::Offered(ip(100))
    );
}

#[test]
fn requested_address_option_50_is_honoured_when_free() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let m = with_opt(discover(MAC_A), DhcpOption::RequestedIpAddress(ip(102)));
    assert_eq!(
        pool.handle(clock.now(), &m).verdict,
        Verdict::Offered(ip(102))
    );
    // Out of range: ignored, the first free address instead.
    let m = with_opt(discover(MAC_B), DhcpOption::RequestedIpAddress(ip(7)));
    assert_eq!(
        pool.handle(clock.now(), &m).verdict,
        Verdict::Offered(ip(100))
    );
}

#[test]
fn a_returning_client_gets_its_lease_back_even_after_it_expired() {
    let mut pool = Pool::new(config(), Vec::new());
    let mut clock = Clock::new();
    pool.handle(
        clock.now(),
        &with_opt(discover(MAC_B), DhcpOption::RequestedIpAddress(ip(101))),
    );
    assert_eq!(
        pool.handle(clock.now(), &select(MAC_B, ip(101), SERVER))
            .verdict,
        Verdict::Acked(ip(101))
    );
    clock.advance(HOUR * 2);
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_B)).verdict,
        Verdict::Offered(ip(101))
    );
}

#[test]
fn client_identifier_takes_precedence_over_the_mac() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let id = DhcpOption::ClientIdentifier(b"\x00client-one".to_vec());
    let m = with_opt(discover(MAC_A), id.clone());
    assert_eq!(
        pool.handle(clock.now(), &m).verdict,
        Verdict::Offered(ip(100))
    );
    let m = with_opt(select(MAC_A, ip(100), SERVER), id.clone());
    let handled = pool.handle(clock.now(), &m);
    assert_eq!(
        handled.persist[0].client_id.as_deref(),
        Some(&b"\x00client-one"[..])
    );
    // Same id on another NIC: same lease. Another id on the same NIC: another client.
    let m = with_opt(discover(MAC_B), id);
    assert_eq!(
        pool.handle(clock.now(), &m).verdict,
        Verdict::Offered(ip(100))
    );
    let m = with_opt(
        discover(MAC_A),
        DhcpOption::ClientIdentifier(b"\x00two".to_vec()),
    );
    assert_eq!(
        pool.handle(clock.now(), &m).verdict,
        Verdict::Offered(ip(101))
    );
}

#[test]
fn renewing_extends_the_lease_and_rebinding_too() {
    let mut pool = Pool::new(config(), Vec::new());
    let mut clock = Clock::new();
    let addr = dora(&mut pool, &clock, MAC_A);
    clock.advance(HOUR / 2);
    let handled = pool.handle(clock.now(), &renew(MAC_A, addr));
    assert_eq!(handled.verdict, Verdict::Acked(addr));
    assert_eq!(handled.persist[0].expires, clock.now() + HOUR);
    let ack = handled.reply.unwrap();
    assert_eq!(ack.ciaddr(), addr);
    assert_eq!(ack.yiaddr(), addr);
    // Rebinding: the same, broadcast.
    clock.advance(HOUR * 7 / 8);
    let mut rebind = renew(MAC_A, addr);
    rebind.set_flags(Flags::default().set_broadcast());
    let handled = pool.handle(clock.now(), &rebind);
    assert_eq!(handled.verdict, Verdict::Acked(addr));
    assert_eq!(handled.persist[0].expires, clock.now() + HOUR);
}

#[test]
fn renewing_someone_elses_lease_is_nacked() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let addr = dora(&mut pool, &clock, MAC_A);
    let handled = pool.handle(clock.now(), &renew(MAC_B, addr));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotItsLease));
    let nak = handled.reply.unwrap();
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
    assert_eq!(nak.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(opt(&nak, OptionCode::AddressLeaseTime).is_none());
    assert!(handled.persist.is_empty());
    // An address of another network: NAK.
    let handled = pool.handle(clock.now(), &renew(MAC_B, Ipv4Addr::new(192, 168, 1, 5)));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::WrongNetwork));
}

#[test]
fn init_reboot_acks_its_own_address_naks_wrong_ones_and_is_silent_about_strangers() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let addr = dora(&mut pool, &clock, MAC_A);
    // Its own lease: ACK.
    let handled = pool.handle(clock.now(), &init_reboot(MAC_A, addr));
    assert_eq!(handled.verdict, Verdict::Acked(addr));
    assert_eq!(handled.reply.unwrap().ciaddr(), Ipv4Addr::UNSPECIFIED);
    // Another network (the client moved): NAK.
    let handled = pool.handle(
        clock.now(),
        &init_reboot(MAC_A, Ipv4Addr::new(192, 168, 1, 7)),
    );
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::WrongNetwork));
    // Someone else's address: NAK.
    let handled = pool.handle(clock.now(), &init_reboot(MAC_B, addr));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotAvailable));
    // A client we know, asking for an address that is not its lease: NAK.
    let handled = pool.handle(clock.now(), &init_reboot(MAC_A, ip(102)));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotItsLease));
    // A client we know nothing about, asking for a free address of our subnet: silence.
    let handled = pool.handle(clock.now(), &init_reboot(MAC_B, ip(102)));
    assert_eq!(handled.verdict, Verdict::Ignored(Ignored::UnknownClient));
    assert!(handled.reply.is_none());
}

#[test]
fn expired_leases_are_reclaimed_for_other_clients() {
    let mut pool = Pool::new(config(), Vec::new());
    let mut clock = Clock::new();
    for (i, last) in [(1u8, 100u8), (2, 101), (3, 102)] {
        assert_eq!(
            dora(&mut pool, &clock, MacAddr([2, 0, 0, 0, 1, i])),
            ip(last)
        );
    }
    let newcomer = MacAddr([2, 0, 0, 0, 2, 1]);
    assert_eq!(
        pool.handle(clock.now(), &discover(newcomer)).verdict,
        Verdict::Exhausted
    );
    clock.advance(HOUR + Duration::from_secs(1));
    let Verdict::Offered(addr) = pool.handle(clock.now(), &discover(newcomer)).verdict else {
        panic!("expired leases were not reclaimed");
    };
    let handled = pool.handle(clock.now(), &select(newcomer, addr, SERVER));
    assert_eq!(handled.verdict, Verdict::Acked(addr));
    assert_eq!(handled.persist[0].mac, newcomer);
    // The old owner's renewal of that address is now refused.
    let old_owner = pool.lease(addr).map(|r| r.mac);
    assert_eq!(old_owner, Some(newcomer));
}

#[test]
fn pool_exhaustion_gives_no_offer() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    for i in 0..3 {
        dora(&mut pool, &clock, MacAddr([2, 0, 0, 0, 1, i]));
    }
    let handled = pool.handle(clock.now(), &discover(MacAddr([2, 0, 0, 0, 9, 9])));
    assert_eq!(handled.verdict, Verdict::Exhausted);
    assert!(handled.reply.is_none());
    // A selecting REQUEST for a taken address is NAKed.
    let handled = pool.handle(
        clock.now(),
        &select(MacAddr([2, 0, 0, 0, 9, 9]), ip(100), SERVER),
    );
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotAvailable));
}

#[test]
fn decline_quarantines_the_address_until_the_quarantine_ends() {
    let mut pool = Pool::new(config(), Vec::new());
    let mut clock = Clock::new();
    let addr = dora(&mut pool, &clock, MAC_A);
    let decline = with_opt(
        with_opt(
            request(MessageType::Decline, MAC_A),
            DhcpOption::RequestedIpAddress(addr),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    );
    let handled = pool.handle(clock.now(), &decline);
    assert_eq!(handled.verdict, Verdict::Declined(addr));
    assert!(handled.reply.is_none());
    assert_eq!(handled.persist.len(), 1);
    assert_eq!(handled.persist[0].state, LeaseState::Declined);
    assert_eq!(
        handled.persist[0].expires,
        clock.now() + Duration::from_secs(600)
    );
    // Nobody gets it during the quarantine, not even the decliner.
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_A)).verdict,
        Verdict::Offered(ip(101))
    );
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_B)).verdict,
        Verdict::Offered(ip(102))
    );
    // A DECLINE for an address that is not the client's is ignored.
    let stray = with_opt(
        request(MessageType::Decline, MAC_B),
        DhcpOption::RequestedIpAddress(ip(100)),
    );
    assert_eq!(
        pool.handle(clock.now(), &stray).verdict,
        Verdict::Ignored(Ignored::NotItsLease)
    );
    // After the quarantine it is back in the pool.
    clock.advance(Duration::from_secs(601));
    let mac_c = MacAddr([2, 0, 0, 0, 0, 0xc]);
    assert_eq!(
        pool.handle(clock.now(), &discover(mac_c)).verdict,
        Verdict::Offered(addr)
    );
}

#[test]
fn release_forgets_the_lease() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let addr = dora(&mut pool, &clock, MAC_A);
    // Another client cannot release it.
    let mut stray = request(MessageType::Release, MAC_B);
    stray.set_ciaddr(addr);
    assert_eq!(
        pool.handle(clock.now(), &stray).verdict,
        Verdict::Ignored(Ignored::NotItsLease)
    );
    let mut release = request(MessageType::Release, MAC_A);
    release.set_ciaddr(addr);
    let handled = pool.handle(clock.now(), &release);
    assert_eq!(handled.verdict, Verdict::Released(addr));
    assert!(handled.reply.is_none());
    assert_eq!(handled.forget, vec![addr]);
    assert!(pool.lease(addr).is_none());
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_B)).verdict,
        Verdict::Offered(addr)
    );
}

#[test]
fn releasing_a_mac_frees_its_lease_and_its_offer_for_others() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let addr = dora(&mut pool, &clock, MAC_A);
    // Another client's pending offer is not touched.
    let Verdict::Offered(offered_b) = pool.handle(clock.now(), &discover(MAC_B)).verdict else {
        panic!("no offer for B");
    };
    assert_eq!(pool.release_mac(MAC_A), vec![addr]);
    assert!(pool.lease(addr).is_none());
    assert!(pool.release_mac(MAC_A).is_empty());
    // B keeps its offer; a third client now gets A's old address.
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_B)).verdict,
        Verdict::Offered(offered_b)
    );
    let mac_c = MacAddr([2, 0, 0, 0, 0, 0xc]);
    assert_eq!(
        pool.handle(clock.now(), &discover(mac_c)).verdict,
        Verdict::Offered(addr)
    );
}

#[test]
fn inform_gets_options_but_no_address_or_lease_time() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let mut inform = request(MessageType::Inform, MAC_A);
    inform.set_ciaddr(ip(20));
    let handled = pool.handle(clock.now(), &inform);
    assert_eq!(handled.verdict, Verdict::Informed);
    assert!(handled.persist.is_empty());
    let ack = handled.reply.unwrap();
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.ciaddr(), ip(20));
    for absent in [
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ] {
        assert!(opt(&ack, absent).is_none(), "{absent:?}");
    }
    assert_eq!(
        opt(&ack, OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        opt(&ack, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
}

#[test]
fn relayed_requests_get_an_address_of_the_relays_subnet_and_option_82_back() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let mut info = RelayAgentInformation::default();
    info.insert(RelayInfo::AgentCircuitId(b"port-7".to_vec()));
    info.insert(RelayInfo::AgentRemoteId(b"switch-3".to_vec()));
    let option82 = DhcpOption::RelayAgentInformation(info);
    let mut m = with_opt(discover(MAC_A), option82.clone());
    m.set_giaddr(RELAY).set_hops(1);
    let handled = pool.handle(clock.now(), &m);
    let addr = Ipv4Addr::new(10, 88, 0, 100);
    assert_eq!(handled.verdict, Verdict::Offered(addr));
    let offer = handled.reply.unwrap();
    assert_eq!(offer.giaddr(), RELAY);
    assert_eq!(
        opt(&offer, OptionCode::RelayAgentInformation),
        Some(&option82)
    );
    assert_eq!(
        opt(&offer, OptionCode::Router),
        Some(&DhcpOption::Router(vec![RELAY]))
    );
    assert_eq!(
        opt(&offer, OptionCode::BroadcastAddr),
        Some(&DhcpOption::BroadcastAddr(Ipv4Addr::new(10, 88, 0, 255)))
    );
    // Option 82 comes back byte for byte, as the last option on the wire (RFC 3046 2.1).
    let mut expect_82 = vec![82, 18, 1, 6];
    expect_82.extend_from_slice(b"port-7");
    expect_82.extend_from_slice(&[2, 8]);
    expect_82.extend_from_slice(b"switch-3");
    expect_82.push(255);
    let sent = m.to_vec().unwrap();
    let wire = offer.to_vec().unwrap();
    assert!(sent.ends_with(&expect_82), "fixture: {sent:?}");
    assert!(wire.ends_with(&expect_82), "{wire:?}");

    let mut req = with_opt(select(MAC_A, addr, SERVER), option82.clone());
    req.set_giaddr(RELAY);
    let handled = pool.handle(clock.now(), &req);
    assert_eq!(handled.verdict, Verdict::Acked(addr));
    assert_eq!(
        opt(
            handled.reply.as_ref().unwrap(),
            OptionCode::RelayAgentInformation
        ),
        Some(&option82)
    );
    // A relayed NAK carries the broadcast bit for the relay.
    let mut wrong = init_reboot(MAC_B, ip(100));
    wrong.set_giaddr(RELAY).set_flags(Flags::default());
    let handled = pool.handle(clock.now(), &wrong);
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::WrongNetwork));
    assert!(handled.reply.unwrap().flags().broadcast());
    // A relay on a subnet we have no range for: no offer.
    let mut m = discover(MAC_B);
    m.set_giaddr(Ipv4Addr::new(172, 16, 0, 1));
    assert_eq!(
        pool.handle(clock.now(), &m).verdict,
        Verdict::Ignored(Ignored::UnservedSubnet)
    );
}

#[test]
fn reservations_win_and_are_kept_from_others() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    // Even when it asks for a pool address, the reserved client gets its reservation.
    let m = with_opt(discover(MAC_R), DhcpOption::RequestedIpAddress(ip(101)));
    let handled = pool.handle(clock.now(), &m);
    assert_eq!(handled.verdict, Verdict::Offered(RESERVED));
    let offer = handled.reply.unwrap();
    assert_eq!(
        opt(&offer, OptionCode::Hostname),
        Some(&DhcpOption::Hostname("reserved-host".into()))
    );
    let handled = pool.handle(clock.now(), &select(MAC_R, RESERVED, SERVER));
    assert_eq!(handled.verdict, Verdict::Acked(RESERVED));
    assert_eq!(
        handled.persist[0].hostname.as_deref(),
        Some("reserved-host")
    );
    // Nobody else gets the reserved address, even asking for it.
    let m = with_opt(discover(MAC_A), DhcpOption::RequestedIpAddress(RESERVED));
    assert_eq!(
        pool.handle(clock.now(), &m).verdict,
        Verdict::Offered(ip(100))
    );
    let handled = pool.handle(clock.now(), &init_reboot(MAC_B, RESERVED));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotAvailable));
    // The reserved client's init-reboot to a pool address is NAKed (it must move).
    let handled = pool.handle(clock.now(), &init_reboot(MAC_R, ip(102)));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotItsLease));
}

#[test]
fn a_pool_rebuilt_from_persisted_records_keeps_every_clients_address() {
    let mut pool = Pool::new(config(), Vec::new());
    let mut clock = Clock::new();
    let a = dora(&mut pool, &clock, MAC_A);
    let b = dora(&mut pool, &clock, MAC_B);
    let mut persisted: Vec<Lease> = [a, b]
        .iter()
        .filter_map(|ip| pool.lease(*ip).cloned())
        .collect();
    persisted.reverse();
    // "Restart": a new pool from the records only.
    clock.advance(Duration::from_secs(60));
    let mut pool = Pool::new(config(), persisted);
    assert_eq!(
        pool.handle(clock.now(), &init_reboot(MAC_B, b)).verdict,
        Verdict::Acked(b)
    );
    assert_eq!(
        pool.handle(clock.now(), &renew(MAC_A, a)).verdict,
        Verdict::Acked(a)
    );
    assert_eq!(
        pool.handle(clock.now(), &discover(MAC_A)).verdict,
        Verdict::Offered(a)
    );
    let newcomer = MacAddr([2, 0, 0, 0, 3, 3]);
    assert_eq!(
        pool.handle(clock.now(), &discover(newcomer)).verdict,
        Verdict::Offered(ip(102))
    );
}

#[test]
fn non_requests_and_odd_messages_are_ignored_without_panic() {
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let mut reply = discover(MAC_A);
    reply.set_opcode(Opcode::BootReply);
    assert_eq!(
        pool.handle(clock.now(), &reply).verdict,
        Verdict::Ignored(Ignored::NotARequest)
    );
    let mut no_type = discover(MAC_A);
    no_type.opts_mut().remove(OptionCode::MessageType);
    assert_eq!(
        pool.handle(clock.now(), &no_type).verdict,
        Verdict::Ignored(Ignored::NoMessageType)
    );
    let offer = request(MessageType::Offer, MAC_A);
    assert_eq!(
        pool.handle(clock.now(), &offer).verdict,
        Verdict::Ignored(Ignored::NotARequest)
    );
    // A request without option 50 or ciaddr.
    let bare = with_opt(
        request(MessageType::Request, MAC_A),
        DhcpOption::ServerIdentifier(SERVER),
    );
    assert_eq!(
        pool.handle(clock.now(), &bare).verdict,
        Verdict::Ignored(Ignored::Incomplete)
    );
}

#[test]
fn hostile_hlen_does_not_panic() {
    // A DISCOVER whose hlen says 200: dhcproto decodes it, and its chaddr() would panic.
    let mut bytes = discover(MAC_A).to_vec().unwrap();
    bytes[2] = 200;
    let msg = Message::decode(&mut Decoder::new(&bytes)).unwrap();
    let mut pool = Pool::new(config(), Vec::new());
    let handled = pool.handle(Clock::new().now(), &msg);
    assert_eq!(handled.verdict, Verdict::Ignored(Ignored::NoClientMac));
}

#[test]
fn the_servers_and_routers_addresses_and_the_subnet_edges_are_never_handed_out() {
    let mut cfg = config();
    cfg.ranges = vec![(ip(0), ip(3)), (ip(254), ip(255))];
    cfg.router = Some(ip(2));
    let mut pool = Pool::new(cfg, Vec::new());
    let clock = Clock::new();
    // .0 is the network, .1 the server, .2 the router: .3 is the first address offered.
    assert_eq!(dora(&mut pool, &clock, MAC_A), ip(3));
    // .255 is the broadcast address: .254 is the last one.
    assert_eq!(dora(&mut pool, &clock, MAC_B), ip(254));
    let handled = pool.handle(clock.now(), &discover(MacAddr([2, 0, 0, 0, 0, 3])));
    assert_eq!(handled.verdict, Verdict::Exhausted);
}

#[test]
fn a_renewal_of_a_free_pool_address_we_have_no_record_of_is_adopted() {
    // For example after the state directory was lost: the client keeps its address.
    let mut pool = Pool::new(config(), Vec::new());
    let clock = Clock::new();
    let handled = pool.handle(clock.now(), &renew(MAC_A, ip(101)));
    assert_eq!(handled.verdict, Verdict::Acked(ip(101)));
    assert_eq!(handled.persist[0].mac, MAC_A);
    // Outside the ranges it is NAKed, even in our subnet.
    let handled = pool.handle(clock.now(), &renew(MAC_B, ip(20)));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotItsLease));
}

#[test]
fn a_persisted_lease_outside_the_new_ranges_is_nacked_and_replaced() {
    let clock = Clock::new();
    let old = Lease {
        ip: ip(150),
        mac: MAC_A,
        client_id: None,
        hostname: None,
        expires: clock.now() + HOUR,
        state: LeaseState::Bound,
    };
    let mut pool = Pool::new(config(), vec![old]);
    let handled = pool.handle(clock.now(), &renew(MAC_A, ip(150)));
    assert_eq!(handled.verdict, Verdict::Nacked(NakReason::NotItsLease));
    // Its next DISCOVER gets an address of the current ranges, and the ACK drops the old one.
    let Verdict::Offered(addr) = pool.handle(clock.now(), &discover(MAC_A)).verdict else {
        panic!("no offer");
    };
    assert_eq!(addr, ip(100));
    let handled = pool.handle(clock.now(), &select(MAC_A, addr, SERVER));
    assert_eq!(handled.verdict, Verdict::Acked(addr));
    assert_eq!(handled.forget, vec![ip(150)]);
}
