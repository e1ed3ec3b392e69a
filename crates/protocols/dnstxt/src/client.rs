//! One TXT lookup over UDP: a query with a random id to each name server in turn, each given
//! `timeout`; the first answer to that query ([`txt_answer`]: id and question match) ends it.
//! Datagrams that do not answer it (stray, spoofed, malformed) are dropped and logged at
//! debug; the wait goes on until the timeout. No retries over TCP (a truncated answer is an
//! error: the record must fit a UDP response).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::debug;

use crate::message::{AnswerError, MAX_RESPONSE, QueryError, TxtRecord, txt_answer, txt_query};

/// Why a lookup found no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The name cannot be asked.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// No name server to ask.
    #[error("no name server to ask")]
    NoServer,
    /// The socket failed (no route, the server's port closed: ICMP unreachable).
    #[error("asking {server}: {source}")]
    Io {
        /// The server asked.
        server: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("no answer from {server} within {} ms{}", timeout.as_millis(), dropped.as_ref().map(|e| format!(" (dropped a datagram: {e})")).unwrap_or_default())]
    Timeout {
        /// The server asked.
        server: SocketAddr,
        /// How long it was given.
        timeout: Duration,
        /// The last datagram that came and was not the answer.
        dropped: Option<AnswerError>,
    },
    /// The server answered with an error (no such name, a failure, a truncated answer).
    #[error("{server}: {error}")]
    Answer {
        /// The server.
        server: SocketAddr,
        /// Its answer.
        error: AnswerError,
    },
}

/// The TXT records of `name`, asked of `servers` one after another (the next when one fails
/// or says SERVFAIL/REFUSED; not after "no such name" or a truncated answer), each given
/// `timeout`. The error is the last server's.
pub async fn lookup_txt(
    servers: &[SocketAddr],
    name: &str,
    timeout: Duration,
) -> Result<Vec<TxtRecord>, LookupError> {
    let mut last = LookupError::NoServer;
    for server in servers {
        match ask(*server, name, timeout).await {
            Ok(records) => return Ok(records),
            Err(e @ LookupError::Query(_)) => return Err(e),
            Err(
                e @ LookupError::Answer {
                    error: AnswerError::NoSuchName | AnswerError::Truncated,
                    ..
                },
            ) => return Err(e),
            Err(e) => {
                debug!(%server, "TXT lookup of {name} failed: {e}");
                last = e;
            }
        }
    }
    Err(last)
}

/// One server.
async fn ask(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<TxtRecord>, LookupError> {
    let id: u16 = rand::random();
    let query = txt_query(id, name)?;
    let io = |source| LookupError::Io { server, source };
    let local = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    // Connected: the kernel drops datagrams from any other address and port.
    socket.connect(server).await.map_err(io)?;
    socket.send(&query).await.map_err(io)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_RESPONSE];
    let mut dropped = None;
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
        let len = match received {
            Err(_) => {
                return Err(LookupError::Timeout {
                    server,
                    timeout,
                    dropped,
                });
            }
            Ok(result) => result.map_err(io)?,
        };
        let datagram = buf.get(..len).unwrap_or_default();
        match txt_answer(id, name, datagram) {
            Ok(records) => return Ok(records),
            Err(
                error @ (AnswerError::NoSuchName
                | AnswerError::Server { .. }
                | AnswerError::Truncated),
            ) => return Err(LookupError::Answer { server, error }),
            Err(e) => {
                debug!(%server, len, "dropped a datagram that does not answer the TXT query: {e}");
                dropped = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{Name, RData, Record};

    use super::*;

    /// A one-shot server on loopback: answers the first query with what `reply` makes of it.
    async fn server(reply: impl FnOnce(&Message) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            let (len, from) = socket.recv_from(&mut buf).await.unwrap();
            let query = Message::from_vec(&buf[..len]).unwrap();
            for datagram in reply(&query) {
                socket.send_to(&datagram, from).await.unwrap();
            }
        });
        addr
    }

    fn answer(query: &Message, id: u16, text: &str) -> Vec<u8> {
        let mut m = Message::response(id, OpCode::Query);
        m.add_queries(query.queries.clone());
        m.add_answer(Record::from_rdata(
            Name::from_ascii("_flakeboot.test.lan.").unwrap(),
            60,
            RData::TXT(TXT::new(vec![text.to_owned()])),
        ));
        m.to_vec().unwrap()
    }

    #[tokio::test]
    async fn the_answer_to_the_query_is_taken_and_others_dropped() {
        let addr = server(|q| {
            let id = q.metadata.id;
            vec![
                b"garbage".to_vec(),
                answer(q, id.wrapping_add(1), "rev=spoofed"),
                answer(q, id, "rev=real"),
            ]
        })
        .await;
        let records = lookup_txt(&[addr], "_flakeboot.test.lan", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].strings, vec![b"rev=real".to_vec()]);
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_the_next_one_is_asked() {
        let silent = server(|_| vec![b"garbage".to_vec()]).await;
        let good = server(|q| vec![answer(q, q.metadata.id, "rev=x")]).await;
        let start = std::time::Instant::now();
        let err = lookup_txt(&[silent], "_flakeboot.test.lan", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(
            matches!(
                err,
                LookupError::Timeout {
                    dropped: Some(AnswerError::Malformed { .. }),
                    ..
                }
            ),
            "{err}"
        );
        let silent = server(|_| Vec::new()).await;
        let records = lookup_txt(
            &[silent, good],
            "_flakeboot.test.lan",
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        assert_eq!(records.len(), 1);
        assert!(matches!(
            lookup_txt(&[], "x.lan", Duration::from_secs(1)).await,
            Err(LookupError::NoServer)
        ));
    }
}
