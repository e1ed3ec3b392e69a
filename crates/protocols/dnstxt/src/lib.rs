//! DNS notification of new revisions (issue #16): many appliances watch one repository by
//! asking a TXT record (`_flakeboot.example.org TXT "rev=<commit>"`) instead of the git
//! server.
//!
//! - [`message`]: the query and its answer's TXT strings, once the answer is known to answer
//!   it (id, question, response code, truncation); over hickory-proto's codec, pure;
//! - [`notice`]: what the record says (`rev=<40 hex digits>`, other `key=value` pairs ignored),
//!   pure;
//! - [`resolv_conf`]: the system's name servers from `/etc/resolv.conf`'s text, pure;
//! - [`client`]: one lookup over UDP with a timeout, to one server after another (the only
//!   I/O here).

pub mod client;
pub mod message;
pub mod notice;
pub mod resolv_conf;

pub use client::{LookupError, lookup_txt};
pub use message::{AnswerError, MAX_RESPONSE, QueryError, TxtRecord, txt_answer, txt_query};
pub use notice::{Notice, NoticeError, read_notice};
pub use resolv_conf::{DEFAULT_NAMESERVER, RESOLV_CONF, nameservers};
