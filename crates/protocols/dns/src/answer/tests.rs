use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError, NoRecords};

use super::*;
use crate::local::{LocalEntry, LocalNames};

fn table() -> LocalNames {
    LocalNames::new(
        Some("lan"),
        Some((Ipv4Addr::new(10, 0, 0, 0), 24)),
        [LocalEntry {
            hostname: "pc1".into(),
            address: Ipv4Addr::new(10, 0, 0, 11),
            configured: false,
        }],
    )
}

fn request(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

fn reply(decision: Decision) -> Message {
    match decision {
        Decision::Reply(m) => m,
        other => panic!("not a reply: {other:?}"),
    }
}

#[test]
fn a_local_name_is_answered_authoritatively() {
    let req = request("PC1.lan.", RecordType::A);
    let (d, outcome) = decide(&req, &table(), 60);
    assert_eq!(outcome, Some(Outcome::Local));
    let m = reply(d);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.authoritative && m.metadata.recursion_desired);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(10, 0, 0, 11))));
    assert_eq!(m.answers[0].ttl, 60);
    // Its AAAA: the name exists, no data, the zone's SOA.
    let m = reply(decide(&request("pc1.lan.", RecordType::AAAA), &table(), 60).0);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn an_unknown_local_name_is_nxdomain_and_not_forwarded() {
    let m = reply(decide(&request("nobody.lan.", RecordType::A), &table(), 60).0);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert_eq!(m.authorities.len(), 1);
    let m = reply(
        decide(
            &request("12.0.0.10.in-addr.arpa.", RecordType::PTR),
            &table(),
            60,
        )
        .0,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = reply(
        decide(
            &request("11.0.0.10.in-addr.arpa.", RecordType::PTR),
            &table(),
            60,
        )
        .0,
    );
    assert_eq!(m.answers[0].data.to_string(), "pc1.lan.");
}

#[test]
fn other_names_are_forwarded_and_odd_queries_refused() {
    let req = request("www.example.test.", RecordType::A);
    assert_eq!(
        decide(&req, &table(), 60),
        (Decision::Forward(req.queries[0].clone()), None)
    );
    let code = |m: &Message| match decide(m, &table(), 60) {
        (Decision::Reply(r), Some(Outcome::Refused)) => r.metadata.response_code,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        code(&request("example.test.", RecordType::AXFR)),
        ResponseCode::NotImp
    );
    let mut two = request("a.test.", RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii("b.test.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(code(&two), ResponseCode::FormErr);
    let mut none = request("a.test.", RecordType::A);
    none.queries.clear();
    assert_eq!(code(&none), ResponseCode::FormErr);
    let mut update = request("a.test.", RecordType::A);
    update.metadata.op_code = OpCode::Update;
    assert_eq!(code(&update), ResponseCode::NotImp);
    // A response is never answered (no loops between two servers).
    let mut response = request("a.test.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    assert_eq!(decide(&response, &table(), 60), (Decision::Drop, None));
}

#[test]
fn upstream_answers_become_replies_with_the_ttl_left() {
    let req = request("www.example.test.", RecordType::A);
    let now = Instant::now();
    let record = Record::from_rdata(
        Name::from_ascii("www.example.test.").unwrap(),
        300,
        RData::A(A(Ipv4Addr::new(198, 51, 100, 7))),
    );
    let lookup = Lookup::new_with_deadline(
        req.queries[0].clone(),
        [record],
        now + Duration::from_secs(100),
    );
    let m = forwarded(&req, &Ok(lookup), now);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative && m.metadata.recursion_available);
    assert_eq!(m.answers[0].ttl, 100);
    let none = NoRecords::new(req.queries[0].clone(), ResponseCode::NXDomain);
    let m = forwarded(
        &req,
        &Err(NetError::Dns(DnsError::NoRecordsFound(none))),
        now,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = forwarded(&req, &Err(NetError::Timeout), now);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn a_udp_answer_too_big_is_truncated_with_tc() {
    let req = request("big.example.test.", RecordType::TXT);
    let mut m = reply_to(&req, ResponseCode::NoError);
    for i in 0..12 {
        m.add_answer(Record::from_rdata(
            Name::from_ascii("big.example.test.").unwrap(),
            60,
            RData::TXT(TXT::new(vec![format!("{i:>60}")])),
        ));
    }
    let bytes = udp_bytes(&m, &req).unwrap();
    assert!(bytes.len() <= 512, "{}", bytes.len());
    let cut = Message::from_vec(&bytes).unwrap();
    assert!(cut.metadata.truncation && cut.answers.is_empty());
    assert_eq!(cut.metadata.id, 0x1234);
    assert_eq!(cut.queries, req.queries);
    // With EDNS the client takes more, up to our cap.
    let mut edns_req = req.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    edns_req.set_edns(edns);
    let bytes = udp_bytes(&m, &edns_req).unwrap();
    let whole = Message::from_vec(&bytes).unwrap();
    assert!(!whole.metadata.truncation && whole.answers.len() == 12);
    assert!(bytes.len() <= usize::from(MAX_UDP_PAYLOAD));
}
