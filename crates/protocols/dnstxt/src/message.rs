//! The DNS messages of one TXT lookup (RFC 1035) over hickory-proto's codec: [`txt_query`]
//! makes the query; [`txt_answer`] reads the TXT records of a response once it is known to
//! answer that query (its id, its one question, a response, not truncated). Pure: bytes in,
//! bytes or records out; no input panics (hickory-proto's decoder is bounded by the buffer it
//! is given, and [`MAX_RESPONSE`] bounds that).

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// The largest response read: a UDP DNS response without EDNS is at most 512 bytes; this
/// leaves room for servers that send more, and a longer datagram is cut here (and then fails
/// to decode: refused as malformed).
pub const MAX_RESPONSE: usize = 4096;

/// One TXT record: its character-strings in order (each at most 255 bytes on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRecord {
    /// The strings, as sent.
    pub strings: Vec<Vec<u8>>,
}

/// Why a query could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The name is not a DNS name.
    #[error("{name:?} is not a DNS name: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// Why, as hickory-proto says it.
        reason: String,
    },
    /// The message could not be encoded (a name too long).
    #[error("cannot encode the query for {name:?}: {reason}")]
    Encode {
        /// The name given.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Why a datagram is not the answer to the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not a DNS message (or cut short).
    #[error("malformed DNS response: {reason}")]
    Malformed {
        /// Why, as hickory-proto says it.
        reason: String,
    },
    /// A query, not a response.
    #[error("not a DNS response")]
    NotAResponse,
    /// The response to another query (another id).
    #[error("response id {got} is not the query's {want}")]
    OtherId {
        /// The response's id.
        got: u16,
        /// The query's id.
        want: u16,
    },
    /// The response's question is not the query's.
    #[error("the response answers another question")]
    OtherQuestion,
    /// The server truncated the answer (TC): the record does not fit a UDP response, and
    /// flakeboot does not ask again over TCP.
    #[error("the answer was truncated (TC): keep the TXT record under 512 bytes")]
    Truncated,
    /// The name does not exist (NXDOMAIN).
    #[error("no such name (NXDOMAIN)")]
    NoSuchName,
    /// The server answered with an error (SERVFAIL, REFUSED, ...).
    #[error("the server answered {code}")]
    Server {
        /// The response code's name.
        code: String,
    },
}

/// The name as a fully qualified DNS name ("a.example.org" and "a.example.org." are the
/// same).
fn fqdn(name: &str) -> Result<Name, QueryError> {
    let text = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&text).map_err(|e| QueryError::Name {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// A recursive query for the TXT records of `name` (class IN) with the id `id`.
pub fn txt_query(id: u16, name: &str) -> Result<Vec<u8>, QueryError> {
    let qname = fqdn(name)?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(qname, RecordType::TXT));
    message.to_vec().map_err(|e| QueryError::Encode {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// The TXT records `response` holds for the query `id` for `name`, in the order sent.
/// `Ok(vec![])`: the name exists but has no TXT record. Records of other types (a CNAME
/// leading to the name that holds them) are skipped; TXT records of any owner name in the
/// answer section count (a resolver puts the CNAME's target's records there).
pub fn txt_answer(id: u16, name: &str, response: &[u8]) -> Result<Vec<TxtRecord>, AnswerError> {
    let bounded = response.get(..MAX_RESPONSE).unwrap_or(response);
    let message = Message::from_vec(bounded).map_err(|e| AnswerError::Malformed {
        reason: e.to_string(),
    })?;
    let meta = &message.metadata;
    if meta.message_type != MessageType::Response {
        return Err(AnswerError::NotAResponse);
    }
    if meta.id != id {
        return Err(AnswerError::OtherId {
            got: meta.id,
            want: id,
        });
    }
    let qname = fqdn(name).map_err(|_| AnswerError::OtherQuestion)?;
    let asked = match message.queries.as_slice() {
        [q] => {
            q.name() == &qname
                && q.query_type() == RecordType::TXT
                && q.query_class() == DNSClass::IN
        }
        _ => false,
    };
    if !asked {
        return Err(AnswerError::OtherQuestion);
    }
    if meta.truncation {
        return Err(AnswerError::Truncated);
    }
    match meta.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err(AnswerError::NoSuchName),
        other => {
            return Err(AnswerError::Server {
                code: other.to_string(),
            });
        }
    }
    Ok(message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) if r.dns_class == DNSClass::IN => Some(TxtRecord {
                strings: txt.txt_data.iter().map(|s| s.to_vec()).collect(),
            }),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, TXT};

    use super::*;

    const NAME: &str = "_flakeboot.test.lan";

    /// A response as a server would send it to `query`.
    fn respond(query: &[u8], edit: impl FnOnce(&mut Message)) -> Vec<u8> {
        let q = Message::from_vec(query).unwrap();
        let mut m = Message::response(q.metadata.id, OpCode::Query);
        m.add_queries(q.queries.clone());
        edit(&mut m);
        m.to_vec().unwrap()
    }

    fn txt(name: &str, strings: &[&str]) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::TXT(TXT::new(strings.iter().map(|s| (*s).to_owned()).collect())),
        )
    }

    #[test]
    fn the_query_asks_for_txt_recursively() {
        let bytes = txt_query(0x1234, NAME).unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].query_type(), RecordType::TXT);
        assert_eq!(m.queries[0].name().to_ascii(), "_flakeboot.test.lan.");
        // The trailing dot changes nothing.
        assert_eq!(txt_query(0x1234, "_flakeboot.test.lan.").unwrap(), bytes);
        assert!(matches!(txt_query(1, "a..b"), Err(QueryError::Name { .. })));
    }

    #[test]
    fn the_txt_records_of_the_answer_are_read_in_order() {
        let query = txt_query(7, NAME).unwrap();
        let response = respond(&query, |m| {
            m.add_answer(txt("_FLAKEBOOT.test.lan.", &["rev=ab", "cd"]));
            m.add_answer(Record::from_rdata(
                Name::from_ascii("x.test.lan.").unwrap(),
                60,
                RData::A(A::new(10, 0, 0, 1)),
            ));
            m.add_answer(txt("other.test.lan.", &["v=1"]));
        });
        let records = txt_answer(7, NAME, &response).unwrap();
        assert_eq!(
            records,
            vec![
                TxtRecord {
                    strings: vec![b"rev=ab".to_vec(), b"cd".to_vec()]
                },
                TxtRecord {
                    strings: vec![b"v=1".to_vec()]
                },
            ]
        );
        // The question's case does not matter.
        assert!(txt_answer(7, "_flakeboot.TEST.lan", &response).is_ok());
        let empty = respond(&query, |_| {});
        assert_eq!(txt_answer(7, NAME, &empty).unwrap(), vec![]);
    }

    #[test]
    fn a_response_to_something_else_is_refused() {
        let query = txt_query(7, NAME).unwrap();
        let response = respond(&query, |m| {
            m.add_answer(txt("_flakeboot.test.lan.", &["rev=1"]));
        });
        assert_eq!(
            txt_answer(8, NAME, &response),
            Err(AnswerError::OtherId { got: 7, want: 8 })
        );
        assert_eq!(
            txt_answer(7, "_flakeboot.other.lan", &response),
            Err(AnswerError::OtherQuestion)
        );
        // The query itself (a reflection) is not a response.
        assert_eq!(txt_answer(7, NAME, &query), Err(AnswerError::NotAResponse));
        // Another type asked; no question at all.
        let mut other = Message::response(7, OpCode::Query);
        other.add_query(Query::query(fqdn(NAME).unwrap(), RecordType::A));
        assert_eq!(
            txt_answer(7, NAME, &other.to_vec().unwrap()),
            Err(AnswerError::OtherQuestion)
        );
        let bare = Message::response(7, OpCode::Query).to_vec().unwrap();
        assert_eq!(txt_answer(7, NAME, &bare), Err(AnswerError::OtherQuestion));
    }

    #[test]
    fn error_codes_and_truncation_are_errors() {
        let query = txt_query(9, NAME).unwrap();
        let nx = respond(&query, |m| {
            m.metadata.response_code = ResponseCode::NXDomain
        });
        assert_eq!(txt_answer(9, NAME, &nx), Err(AnswerError::NoSuchName));
        let fail = respond(&query, |m| {
            m.metadata.response_code = ResponseCode::ServFail
        });
        assert!(matches!(
            txt_answer(9, NAME, &fail),
            Err(AnswerError::Server { .. })
        ));
        let cut = respond(&query, |m| m.metadata.truncation = true);
        assert_eq!(txt_answer(9, NAME, &cut), Err(AnswerError::Truncated));
    }

    #[test]
    fn garbage_and_truncated_bytes_never_panic() {
        let query = txt_query(7, NAME).unwrap();
        let response = respond(&query, |m| {
            m.add_answer(txt("_flakeboot.test.lan.", &["rev=0123456789", "more"]));
        });
        // Every prefix of a good response: an error (or, for the whole, the records).
        for len in 0..response.len() {
            assert!(
                txt_answer(7, NAME, &response[..len]).is_err(),
                "a response cut at {len} bytes was accepted"
            );
        }
        // Every single-byte corruption: no panic, whatever it decodes to.
        for i in 0..response.len() {
            for v in [0x00, 0xff, 0xc0, 0x3f] {
                let mut bad = response.clone();
                bad[i] = v;
                let _ = txt_answer(7, NAME, &bad);
            }
        }
        // Pseudo-random garbage, and a compression pointer that points at itself.
        let mut x: u32 = 0x9e37_79b9;
        for len in [1usize, 12, 13, 64, 512, 5000] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            assert!(txt_answer(7, NAME, &bytes).is_err());
        }
        let mut looped = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        looped.extend([
            0xc0, 12, 0, 16, 0, 1, 0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 1, 0,
        ]);
        assert!(txt_answer(7, NAME, &looped).is_err());
    }
}
