//! What to do with one query, and the reply made from a local name or an upstream answer;
//! pure (the server loop receives, asks [`decide`], forwards or sends).

use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError};

use crate::local::{Local, LocalNames};

/// The largest UDP answer sent, whatever a client's EDNS says (RFC 9715's safe size).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// What becomes of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answered here (a local name, or a refusal).
    Reply(Message),
    /// Forwarded: look `query` up upstream, then [`forwarded`].
    Forward(Query),
    /// Not a query (a response, or something that must not be answered): nothing is sent.
    Drop,
}

/// How a query was answered, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From the local names.
    Local,
    /// Refused or malformed (FORMERR, NOTIMP, REFUSED).
    Refused,
}

/// The reply skeleton for `request`: its id, opcode, RD and question; recursion available;
/// EDNS when it had one.
fn reply_to(request: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.checking_disabled = request.metadata.checking_disabled;
    reply.metadata.response_code = code;
    reply.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

/// The reply when no upstream can be asked.
pub fn refused(request: &Message) -> Message {
    reply_to(request, ResponseCode::Refused)
}

/// `SERVFAIL` for `request` (the upstream failed or timed out).
pub fn server_failure(request: &Message) -> Message {
    reply_to(request, ResponseCode::ServFail)
}

/// The SOA of the LAN zone (negative answers carry it so they are cached for `ttl`).
fn soa(zone: &Name, ttl: u32) -> Record {
    let host = |label: &str| {
        Name::from_ascii(label)
            .and_then(|l| l.append_domain(zone))
            .unwrap_or_else(|_| zone.clone())
    };
    let data = SOA::new(
        host("flakeboot"),
        host("hostmaster"),
        1,
        3600,
        600,
        86_400,
        ttl,
    );
    Record::from_rdata(zone.clone(), ttl, RData::SOA(data))
}

/// What to do with `request`, answering local names from `local` with `ttl`.
pub fn decide(request: &Message, local: &LocalNames, ttl: u32) -> (Decision, Option<Outcome>) {
    if request.metadata.message_type != MessageType::Query {
        return (Decision::Drop, None);
    }
    let refuse = |code| {
        (
            Decision::Reply(reply_to(request, code)),
            Some(Outcome::Refused),
        )
    };
    if request.metadata.op_code != OpCode::Query {
        return refuse(ResponseCode::NotImp);
    }
    let [query] = request.queries.as_slice() else {
        return refuse(ResponseCode::FormErr);
    };
    if query.query_class() != DNSClass::IN {
        return refuse(ResponseCode::Refused);
    }
    let qtype = query.query_type();
    let found = local.resolve(query.name());
    if found == Local::NotLocal {
        return match qtype {
            RecordType::AXFR | RecordType::IXFR | RecordType::ANY | RecordType::OPT => {
                refuse(ResponseCode::NotImp)
            }
            _ => (Decision::Forward(query.clone()), None),
        };
    }
    let mut reply = reply_to(request, ResponseCode::NoError);
    reply.metadata.authoritative = true;
    let name = query.name().clone();
    let answer = match found {
        Local::Address(ip) if matches!(qtype, RecordType::A | RecordType::ANY) => {
            Some(RData::A(A(ip)))
        }
        Local::Pointer(target) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
            Some(RData::PTR(PTR(target)))
        }
        Local::NxDomain => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            None
        }
        _ => None,
    };
    match answer {
        Some(data) => {
            reply.add_answer(Record::from_rdata(name, ttl, data));
        }
        None => {
            if let Some(zone) = local.domain().filter(|d| d.zone_of(&name.to_lowercase())) {
                reply.add_authority(soa(zone, ttl));
            }
        }
    }
    (Decision::Reply(reply), Some(Outcome::Local))
}

/// The reply to `request` from the upstream's `result` (through the cache), the TTLs counted
/// down to what is left of the cached answer at `now`.
pub fn forwarded(request: &Message, result: &Result<Lookup, NetError>, now: Instant) -> Message {
    match result {
        Ok(lookup) => {
            let left = lookup
                .valid_until()
                .saturating_duration_since(now)
                .as_secs();
            let left = u32::try_from(left).unwrap_or(u32::MAX);
            let mut reply = reply_to(request, ResponseCode::NoError);
            reply.add_answers(lookup.answers().iter().cloned().map(|mut r| {
                r.ttl = r.ttl.min(left);
                r
            }));
            reply
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
            let mut reply = reply_to(request, none.response_code);
            if let Some(soa) = &none.soa {
                reply.add_authority(soa.as_ref().clone().into_record_of_rdata());
            }
            reply
        }
        Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain))) => {
            reply_to(request, ResponseCode::NXDomain)
        }
        Err(_) => server_failure(request),
    }
}

/// `reply` as bytes for a UDP client that can take `max` bytes (512 without EDNS): when the
/// whole answer does not fit, the header and question only, with TC set (the client asks again
/// over TCP). `None` if it cannot be encoded at all.
pub fn udp_bytes(reply: &Message, request: &Message) -> Option<Vec<u8>> {
    let max = usize::from(request.max_payload().min(MAX_UDP_PAYLOAD));
    match reply.to_vec() {
        Ok(bytes) if bytes.len() <= max => Some(bytes),
        _ => {
            // The header (id included) and the question, TC set.
            reply.truncate().to_vec().ok()
        }
    }
}

#[cfg(test)]
mod tests;
