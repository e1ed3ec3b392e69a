use super::*;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// An OFFER as dnsmasq in full mode sends it.
fn full_offer(server: Ipv4Addr, yiaddr: Ipv4Addr) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_xid(7)
        .set_yiaddr(yiaddr)
        .set_chaddr(&[2, 0, 0, 0, 0, 1]);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Offer));
    o.insert(DhcpOption::ServerIdentifier(server));
    o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 9, 0, 1)]));
    m
}

/// A proxyDHCP OFFER: no address, option 60 PXEClient, a boot file.
fn proxy_offer(server: Ipv4Addr) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_chaddr(&[2, 0, 0, 0, 0, 1])
        .set_fname_str("pxelinux.0");
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Offer));
    o.insert(DhcpOption::ServerIdentifier(server));
    o.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
    m
}

fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

const SRV: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

#[test]
fn a_full_offer_tells_its_address_router_and_kind() {
    let msg = parse_reply(&bytes(&full_offer(SRV, Ipv4Addr::new(10, 9, 0, 50)))).unwrap();
    let r = ServerReply::from_message(&msg, SRV).unwrap();
    assert_eq!(r.server_id, SRV);
    assert_eq!(r.kind, ServerKind::Full);
    assert_eq!(r.offered, Some(Ipv4Addr::new(10, 9, 0, 50)));
    assert_eq!(r.router, Some(Ipv4Addr::new(10, 9, 0, 1)));
    assert_eq!(r.boot_file, None);
    assert!(!r.pxe);
    assert_eq!(r.client, Some(MacAddr([2, 0, 0, 0, 0, 1])));
    assert!(!r.ack);
    assert_eq!(
        r.describe(),
        "offer from 10.9.0.2 (full DHCP): address 10.9.0.50, router 10.9.0.1"
    );
}

#[test]
fn a_replys_boot_file_is_escaped_and_cut_for_the_timeline() {
    let mut m = proxy_offer(SRV);
    m.set_fname_str("evil\x1b[31m\nname");
    m.set_chaddr(&[0xff; 6]);
    let mut r = ServerReply::from_message(&parse_reply(&bytes(&m)).unwrap(), SRV).unwrap();
    assert_eq!(r.client, None, "a broadcast chaddr is nobody's");
    r.boot_file = Some("a\u{1b}[31m\nb".into());
    assert_eq!(
        r.describe(),
        "offer from 10.9.0.2 (proxyDHCP): boot file a\\u{1b}[31m\\nb"
    );
    r.boot_file = Some("x".repeat(300));
    assert!(
        r.describe()
            .ends_with(&format!("boot file {}", "x".repeat(64)))
    );
}

#[test]
fn replies_reach_timelines_once_per_client_and_server_and_at_a_bounded_rate() {
    let mut log = ReplyLog::default();
    let a = MacAddr([2, 0, 0, 0, 0, 1]);
    let b = MacAddr([2, 0, 0, 0, 0, 2]);
    assert!(log.admit(a, SRV, t(0)));
    assert!(!log.admit(a, SRV, t(1)), "its ACK or a retry");
    assert!(log.admit(b, SRV, t(1)));
    assert!(
        log.admit(a, Ipv4Addr::new(10, 9, 0, 3), t(1)),
        "another server"
    );
    assert!(log.admit(a, SRV, t(11)), "the next boot");
    // A flood of forged replies to many clients in one second: PER_SECOND pass.
    let passed = (0..1000u16)
        .filter(|n| {
            let [hi, lo] = n.to_be_bytes();
            log.admit(MacAddr([2, 1, 0, 0, hi, lo]), SRV, t(100))
        })
        .count();
    assert_eq!(passed, ReplyLog::PER_SECOND as usize);
    // Many seconds of it: the memory stays bounded.
    for sec in 0..200u64 {
        for n in 0..20u16 {
            let [hi, lo] = n.to_be_bytes();
            log.admit(MacAddr([2, 2, sec as u8, 0, hi, lo]), SRV, t(200 + sec));
        }
    }
    assert!(log.last.len() <= ReplyLog::MAX_PAIRS);
}

#[test]
fn a_proxy_offer_is_proxy_with_its_boot_file() {
    let msg = parse_reply(&bytes(&proxy_offer(SRV))).unwrap();
    let r = ServerReply::from_message(&msg, Ipv4Addr::UNSPECIFIED).unwrap();
    assert_eq!(r.kind, ServerKind::Proxy);
    assert_eq!(r.offered, None);
    assert_eq!(r.boot_file.as_deref(), Some("pxelinux.0"));
    assert!(r.pxe);
}

#[test]
fn option_67_wins_over_the_file_field() {
    let mut m = proxy_offer(SRV);
    m.opts_mut()
        .insert(DhcpOption::BootfileName(b"http://x/boot.ipxe".to_vec()));
    let r = ServerReply::from_message(&parse_reply(&bytes(&m)).unwrap(), SRV).unwrap();
    assert_eq!(r.boot_file.as_deref(), Some("http://x/boot.ipxe"));
}

#[test]
fn the_source_stands_in_for_a_missing_server_identifier() {
    let mut m = full_offer(SRV, Ipv4Addr::new(10, 9, 0, 50));
    m.opts_mut().remove(OptionCode::ServerIdentifier);
    let msg = parse_reply(&bytes(&m)).unwrap();
    let src = Ipv4Addr::new(10, 9, 0, 3);
    assert_eq!(ServerReply::from_message(&msg, src).unwrap().server_id, src);
    assert_eq!(
        ServerReply::from_message(&msg, Ipv4Addr::UNSPECIFIED),
        Err(ReplyError::NoServer)
    );
}

#[test]
fn requests_naks_and_empty_acks_tell_nothing() {
    // Our own probe is a BOOTREQUEST.
    let probe = probe_discover(probe_mac(MacAddr([2, 0, 0, 0, 0, 9])), 1).unwrap();
    assert_eq!(parse_reply(&probe), Err(ReplyError::NotReply { op: 1 }));
    let mut nak = full_offer(SRV, Ipv4Addr::UNSPECIFIED);
    nak.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Nak));
    let msg = parse_reply(&bytes(&nak)).unwrap();
    assert!(matches!(
        ServerReply::from_message(&msg, SRV),
        Err(ReplyError::NotOfferOrAck { .. })
    ));
    let mut inform_ack = full_offer(SRV, Ipv4Addr::UNSPECIFIED);
    inform_ack
        .opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Ack));
    let msg = parse_reply(&bytes(&inform_ack)).unwrap();
    assert_eq!(
        ServerReply::from_message(&msg, SRV),
        Err(ReplyError::NothingOffered)
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert_eq!(parse_reply(&[2; 10]), Err(ReplyError::TooShort { len: 10 }));
    let mut b = bytes(&full_offer(SRV, Ipv4Addr::new(10, 9, 0, 50)));
    b[236] = 0;
    assert!(matches!(parse_reply(&b), Err(ReplyError::BadMagic { .. })));
    let mut b = bytes(&full_offer(SRV, Ipv4Addr::new(10, 9, 0, 50)));
    b[2] = 200; // hlen
    assert_eq!(parse_reply(&b), Err(ReplyError::BadHlen { hlen: 200 }));
    // Every truncation of a valid reply parses or fails cleanly.
    let b = bytes(&proxy_offer(SRV));
    for len in 0..b.len() {
        if let Ok(msg) = parse_reply(&b[..len]) {
            let _ = ServerReply::from_message(&msg, SRV);
        }
    }
}

#[test]
fn own_replies_are_recognised() {
    let msg = parse_reply(&bytes(&proxy_offer(SRV))).unwrap();
    let r = ServerReply::from_message(&msg, SRV).unwrap();
    assert!(r.is_from(&[SRV]));
    assert!(!r.is_from(&[Ipv4Addr::new(10, 9, 0, 1)]));
}

fn reply(server: Ipv4Addr, offered: Option<Ipv4Addr>) -> ServerReply {
    ServerReply {
        server_id: server,
        kind: match offered {
            Some(_) => ServerKind::Full,
            None => ServerKind::Proxy,
        },
        offered,
        router: None,
        boot_file: None,
        pxe: offered.is_none(),
        client: None,
        ack: false,
    }
}

#[test]
fn the_table_keeps_first_and_last_seen_and_the_range() {
    let mut table = SeenServers::new(SeenLimits::default());
    let mac = MacAddr([2, 1, 2, 3, 4, 5]);
    table.observe(&reply(SRV, Some(Ipv4Addr::new(10, 9, 0, 60))), None, t(0));
    table.observe(
        &reply(SRV, Some(Ipv4Addr::new(10, 9, 0, 50))),
        Some(mac),
        t(10),
    );
    table.observe(&reply(SRV, Some(Ipv4Addr::new(10, 9, 0, 55))), None, t(20));
    let list = table.list(t(20));
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(s.first_seen, t(0));
    assert_eq!(s.last_seen, t(20));
    assert_eq!(s.mac, Some(mac));
    assert_eq!(
        s.range_seen,
        Some((Ipv4Addr::new(10, 9, 0, 50), Ipv4Addr::new(10, 9, 0, 60)))
    );
    assert_eq!(s.kind, ServerKind::Full);
}

#[test]
fn a_full_server_that_also_answers_pxe_stays_full() {
    let mut table = SeenServers::new(SeenLimits::default());
    table.observe(&reply(SRV, Some(Ipv4Addr::new(10, 9, 0, 60))), None, t(0));
    table.observe(&reply(SRV, None), None, t(1));
    let s = &table.list(t(1))[0];
    assert_eq!(s.kind, ServerKind::Full);
    assert!(s.pxe);
}

#[test]
fn servers_expire_after_the_timeout() {
    let limits = SeenLimits {
        capacity: 8,
        expiry: Duration::from_secs(30),
    };
    let mut table = SeenServers::new(limits);
    table.observe(&reply(SRV, None), None, t(0));
    assert_eq!(table.poll_at(), Some(t(30)));
    assert_eq!(table.list(t(29)).len(), 1);
    assert!(table.list(t(30)).is_empty());
    table.expire(t(30));
    assert_eq!(table.poll_at(), None);
}

#[test]
fn the_table_is_bounded_and_the_least_recently_seen_makes_room() {
    let limits = SeenLimits {
        capacity: 3,
        expiry: Duration::from_secs(600),
    };
    let mut table = SeenServers::new(limits);
    for i in 0..100u8 {
        table.observe(
            &reply(Ipv4Addr::new(10, 0, 0, i), None),
            None,
            t(u64::from(i)),
        );
        assert!(table.list(t(100)).len() <= 3);
    }
    let addrs: Vec<_> = table.list(t(100)).iter().map(|s| s.address).collect();
    assert_eq!(
        addrs,
        [97, 98, 99].map(|i| Ipv4Addr::new(10, 0, 0, i)).to_vec()
    );
    assert_eq!(table.evicted(), 97);
}

#[test]
fn the_probe_is_a_pxe_discover_with_its_own_identity() {
    let lan = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    let mac = probe_mac(lan);
    assert_ne!(mac, lan);
    assert!(mac.is_station());
    assert_eq!(mac.octets()[0] & 0x02, 0x02, "locally administered");
    // Even a locally administered LAN MAC gets a different probe MAC.
    let la = MacAddr([0x02, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_ne!(probe_mac(la), la);
    let b = probe_discover(mac, 0xabcd).unwrap();
    let msg = crate::options::parse_request(&b).unwrap();
    let info = crate::options::ClientInfo::from_message(&msg);
    assert_eq!(info.message_type, Some(MessageType::Discover));
    assert_eq!(info.mac, Some(mac));
    assert_eq!(info.arch, Some(0));
    assert!(info.vendor_class.unwrap().starts_with("PXEClient"));
    assert!(msg.flags().broadcast());
    assert_eq!(
        msg.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(probe_client_id(mac)))
    );
    assert!(msg.opts().get(OptionCode::RequestedIpAddress).is_none());
    assert!(is_probe(&msg));
    let mut other = msg.clone();
    other
        .opts_mut()
        .insert(DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 1]));
    assert!(!is_probe(&other));
}
