//! The boot port's own HTTP/1.1 connection ([`serve_connection`]): request heads parsed with
//! `httparse`, answered by an axum router (the boot routes), and file bodies ([`FileBody`])
//! moved from the page cache to the socket with `sendfile(2)`, as nginx does: no read into
//! this process, no thread hop per chunk.
//!
//! Why not hyper here: hyper writes a body from the bytes it is handed and owns the socket
//! (see [`crate::open_files`]). The daemon's management port keeps hyper (TLS, HTTP/2); boot
//! clients (iPXE, UEFI HTTP boot, curl) speak HTTP/1.x. The accept loop, the per-address cap
//! and the counters are the daemon's (`flakeboot_appliance::http_serve`).
//!
//! What this loop accepts and refuses:
//! - a request head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (431 beyond),
//!   complete within the header-read timeout (408 if some of it came, silence if none);
//! - a request body only with `Content-Length`, at most [`MAX_BODY`] bytes (413 beyond); a
//!   chunked one is 501 (boot clients send none: a system's report has a length);
//! - keep-alive as HTTP/1.1 says (HTTP/1.0 only when asked), pipelined requests in order;
//! - a response the router builds is at most [`MAX_RESPONSE`] bytes (scripts and menus);
//! - a write that makes no progress for the idle timeout closes the connection (a client
//!   that stopped reading its download).
//!
//! `sendfile` reads the page cache in the runtime's worker thread: a boot file not in memory
//! blocks that worker for the disk read, as it does nginx without `aio threads`. Boot files
//! are read again and again by every machine that boots, so they stay cached; a machine's
//! first boot after a build pays the disk once.
//!
//! A connection closes by shutting down its write side; after refusing a request whose bytes
//! may still be coming it also reads them away for a moment, so the answer is not lost to a
//! reset. A slow client's 408 closes at once (its address's slot is free as soon as it is
//! answered).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::file_body::{FileBody, FileBodySlot, WritesFileBodies};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING};
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use rustix::net::SendFlags;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The longest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// The most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// The longest request body (a system's report is at most 4 KiB; its route says 413 beyond).
pub const MAX_BODY: usize = 64 * 1024;
/// The longest response the router may build (boot scripts and menus are a few KiB).
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;
/// The most one `sendfile` call moves (Linux moves at most 0x7ffff000 bytes per call).
const SENDFILE_MAX: usize = 0x7fff_f000;
/// Bodies longer than this are sent corked (`TCP_CORK`).
const CORK_FROM: u64 = 256 * 1024;
/// How long a closing connection reads what its client still sends.
const LINGER: Duration = Duration::from_secs(1);

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// Bytes the head took in the buffer.
    pub len: usize,
}

/// What the bytes so far hold.
#[derive(Debug)]
pub enum Parsed {
    Complete(Box<Head>),
    /// Not a whole head yet.
    Partial,
    /// Refused with this status.
    Bad(StatusCode),
}

/// Parses a request head from the start of `buf`. Pure.
pub fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Bad(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Parsed::Bad(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad(StatusCode::BAD_REQUEST),
    };
    let bad = Parsed::Bad(StatusCode::BAD_REQUEST);
    let Some(method) = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
    else {
        return bad;
    };
    let Some(uri) = req.path.and_then(|p| Uri::try_from(p).ok()) else {
        return bad;
    };
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Parsed::Bad(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
    };
    let mut map = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return bad;
        };
        map.append(name, value);
    }
    Parsed::Complete(Box::new(Head {
        method,
        uri,
        version,
        headers: map,
        len,
    }))
}

/// The length of the request's body, or the status that refuses it. Pure.
pub fn body_len(headers: &HeaderMap) -> Result<usize, StatusCode> {
    if headers.contains_key(TRANSFER_ENCODING) {
        return Err(StatusCode::NOT_IMPLEMENTED);
    }
    let mut len = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let n = value
            .to_str()
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(StatusCode::BAD_REQUEST)?;
        if len.is_some_and(|l| l != n) {
            return Err(StatusCode::BAD_REQUEST);
        }
        len = Some(n);
    }
    match len {
        None => Ok(0),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_BODY)
            .ok_or(StatusCode::PAYLOAD_TOO_LARGE),
    }
}

/// Whether the connection stays open after this request. Pure.
pub fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match version {
        Version::HTTP_11 => !has("close"),
        _ => has("keep-alive"),
    }
}

/// The status line and headers of a response. Pure but for the `Date` it adds.
pub fn response_head(
    status: StatusCode,
    headers: &HeaderMap,
    keep: bool,
    version: Version,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    if !headers.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == CONNECTION || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A status with no body by definition.
fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The time limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time for a whole request head, from when the server waits for it (the connection's
    /// start, or the end of the previous response).
    pub header_read: Duration,
    /// Time a write (or a request body's read) may make no progress.
    pub idle: Duration,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed it, it asked to, an answer refused a request, or the server shut down.
    Closed,
    /// A timeout of [`Timeouts`] closed it.
    TimedOut,
    /// A read or write failed (a reset, a file that shrank).
    Failed,
}

/// Serves HTTP/1.x on `stream` with `router` until the connection ends or `shutdown` (then
/// the request being answered is finished, and the connection closed). Every request carries
/// `ConnectInfo(peer)` and [`WritesFileBodies`].
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Timeouts,
    shutdown: CancellationToken,
) -> Ended {
    let mut conn = Conn {
        stream,
        buf: Vec::with_capacity(4096),
        idle: limits.idle,
    };
    loop {
        let head = tokio::select! {
            () = shutdown.cancelled() => return Ended::Closed,
            head = tokio::time::timeout(limits.header_read, conn.read_head()) => head,
        };
        let head = match head {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return Ended::Closed,
            Ok(Err(ReadError::Refused(status))) => {
                tracing::debug!(%peer, "request refused: {status}");
                conn.refuse(status).await;
                return Ended::Closed;
            }
            Ok(Err(ReadError::Io(e))) => {
                tracing::debug!(%peer, "connection ended: {e}");
                return Ended::Failed;
            }
            Err(_) => {
                tracing::debug!(%peer, "connection closed: no request head within {} ms", limits.header_read.as_millis());
                // A client this slow is not sending more: answered and closed at once, its
                // address's slot freed now (no lingering read).
                if !conn.buf.is_empty()
                    && conn.send_error(StatusCode::REQUEST_TIMEOUT).await.is_ok()
                {
                    conn.close().await;
                }
                return Ended::TimedOut;
            }
        };
        match conn.handle(head, peer, &router, &shutdown).await {
            Ok(true) => {}
            Ok(false) => {
                conn.close().await;
                return Ended::Closed;
            }
            Err(e) => {
                tracing::debug!(%peer, "connection ended: {e}");
                return match e.kind() {
                    io::ErrorKind::TimedOut => Ended::TimedOut,
                    _ => Ended::Failed,
                };
            }
        }
    }
}

#[derive(Debug)]
enum ReadError {
    Refused(StatusCode),
    Io(io::Error),
}

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet used: the next head (and any pipelined requests).
    buf: Vec<u8>,
    idle: Duration,
}

impl Conn {
    /// Reads until `buf` holds a whole head; `None` when the client closed between requests.
    async fn read_head(&mut self) -> Result<Option<Box<Head>>, ReadError> {
        loop {
            if !self.buf.is_empty() {
                match parse_head(&self.buf) {
                    Parsed::Complete(head) => return Ok(Some(head)),
                    Parsed::Bad(status) => return Err(ReadError::Refused(status)),
                    Parsed::Partial => {}
                }
            }
            let n = self.read_some().await.map_err(ReadError::Io)?;
            if n == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
                };
            }
        }
    }

    async fn read_some(&mut self) -> io::Result<usize> {
        self.buf.reserve(4096);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Answers one request; `Ok(true)` when the connection stays open.
    async fn handle(
        &mut self,
        head: Box<Head>,
        peer: SocketAddr,
        router: &Router,
        shutdown: &CancellationToken,
    ) -> io::Result<bool> {
        self.buf.drain(..head.len);
        let len = match body_len(&head.headers) {
            Ok(len) => len,
            Err(status) => {
                // The refused body may still be on its way: read it away before closing.
                self.send_error(status).await?;
                self.linger().await;
                return Ok(false);
            }
        };
        let body = self.read_body(len, &head.headers).await?;
        let head_only = head.method == Method::HEAD;
        let keep = keep_alive(head.version, &head.headers);
        let version = head.version;
        let mut req = Request::new(Body::from(body));
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = head.version;
        *req.headers_mut() = head.headers;
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(WritesFileBodies);
        let response = match router.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let keep = keep && !shutdown.is_cancelled();
        self.respond(response, head_only, keep, version).await?;
        Ok(keep)
    }

    /// The request's `len` body bytes (answering `Expect: 100-continue` first).
    async fn read_body(&mut self, len: usize, headers: &HeaderMap) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let expects = headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects && self.buf.len() < len {
            self.send_all(b"HTTP/1.1 100 Continue\r\n\r\n", false)
                .await?;
        }
        while self.buf.len() < len {
            let n = tokio::time::timeout(self.idle, self.read_some())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request body stalled"))??;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let rest = self.buf.split_off(len);
        Ok(Bytes::from(std::mem::replace(&mut self.buf, rest)))
    }

    /// Writes `response`: its head, then its body or its [`FileBody`].
    async fn respond(
        &mut self,
        response: Response<Body>,
        head_only: bool,
        keep: bool,
        version: Version,
    ) -> io::Result<()> {
        let (mut parts, body) = response.into_parts();
        let file = parts
            .extensions
            .get::<FileBodySlot>()
            .and_then(FileBodySlot::take);
        let no_body = head_only || bodiless(parts.status);
        let payload = match file {
            Some(_) => Bytes::new(),
            None => axum::body::to_bytes(body, MAX_RESPONSE)
                .await
                .map_err(io::Error::other)?,
        };
        if !parts.headers.contains_key(CONTENT_LENGTH) && !bodiless(parts.status) {
            parts.headers.insert(CONTENT_LENGTH, payload.len().into());
        }
        let mut out = response_head(parts.status, &parts.headers, keep, version);
        match file {
            // A failed head write drops `file`: its event says it was cut off at 0 bytes.
            Some(file) if !no_body => {
                // Corked (nginx's `tcp_nopush`): only full segments leave while the body
                // goes, not one short segment per `sendfile` call that found a little room.
                // A small body leaves in one call: no cork, two system calls fewer.
                let corked = file.end() - file.start() > CORK_FROM
                    && rustix::net::sockopt::set_tcp_cork(&self.stream, true).is_ok();
                self.send_all(&out, true).await?;
                let sent = self.send_file(file).await;
                if corked {
                    // Uncorking sends what is left at once.
                    rustix::net::sockopt::set_tcp_cork(&self.stream, false)?;
                }
                sent
            }
            _ => {
                if !no_body {
                    out.extend_from_slice(&payload);
                }
                self.send_all(&out, false).await
            }
        }
    }

    /// Sends `buf` whole; `more` holds it back for what follows (`MSG_MORE`, nginx's
    /// `tcp_nopush`), so a head and its file's first bytes leave in one segment.
    async fn send_all(&self, mut buf: &[u8], more: bool) -> io::Result<()> {
        let flags = match more {
            true => SendFlags::MORE | SendFlags::NOSIGNAL,
            false => SendFlags::NOSIGNAL,
        };
        while !buf.is_empty() {
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                rustix::net::send(&self.stream, buf, flags).map_err(io::Error::from)
            });
            match sent {
                Ok(n) => buf = buf.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends the file's bytes with `sendfile(2)` and records how the body ended.
    async fn send_file(&self, mut file: FileBody) -> io::Result<()> {
        let result = self.sendfile_loop(&mut file).await;
        match &result {
            Ok(()) => file.finish(None),
            Err(e) => file.finish(Some(e.to_string())),
        }
        result
    }

    async fn sendfile_loop(&self, file: &mut FileBody) -> io::Result<()> {
        let mut offset = file.start();
        let end = file.end();
        while offset < end {
            let count = usize::try_from(end - offset).map_or(SENDFILE_MAX, |n| n.min(SENDFILE_MAX));
            let moved = self.stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.stream, file.fd(), Some(&mut offset), count)
                    .map_err(io::Error::from)
            });
            match moved {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than when its response was planned",
                    ));
                }
                Ok(n) => {
                    file.sent(n as u64);
                    // A fast client never makes the socket block: let other connections on
                    // this worker run between calls.
                    tokio::task::consume_budget().await;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until the socket takes bytes again, at most the idle timeout.
    async fn writable(&self) -> io::Result<()> {
        tokio::time::timeout(self.idle, self.stream.writable())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))?
    }

    /// A short plain-text answer for a refused request; the connection then closes.
    async fn send_error(&self, status: StatusCode) -> io::Result<()> {
        let text = format!("{status}\n");
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, text.len().into());
        let mut out = response_head(status, &headers, false, Version::HTTP_11);
        out.extend_from_slice(text.as_bytes());
        self.send_all(&out, false).await
    }

    /// Answers `status` and closes.
    async fn refuse(&mut self, status: StatusCode) {
        if self.send_error(status).await.is_ok() {
            self.linger().await;
        }
    }

    /// Closes the write side (the connection itself closes when dropped).
    async fn close(&mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.shutdown().await;
    }

    /// Closes the write side, then reads what the client still sends for a moment so the
    /// answer is not destroyed by a reset (a close with unread bytes sends one): after refusing
    /// a request whose bytes may still be coming (a head too large, a body refused).
    async fn linger(&mut self) {
        use tokio::io::AsyncWriteExt;
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let mut sink = [0u8; 4096];
        let drain = async {
            let mut left = MAX_BODY;
            while left > 0 {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> Box<Head> {
        match parse_head(raw) {
            Parsed::Complete(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn heads_parse_and_refuse() {
        let h = head(b"GET /boot.ipxe?mac=x HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\n\r\nrest");
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.uri.path(), "/boot.ipxe");
        assert_eq!(h.uri.query(), Some("mac=x"));
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.headers.get_all("x").iter().count(), 2);
        assert_eq!(h.len, 54);
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            Parsed::Partial
        ));
        let bad = |raw: &[u8]| match parse_head(raw) {
            Parsed::Bad(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bad(b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(bad(b"\x00\x01\x02\r\n\r\n"), StatusCode::BAD_REQUEST);
        let many: Vec<u8> = [&b"GET / HTTP/1.1\r\n"[..]]
            .into_iter()
            .chain(std::iter::repeat_n(&b"A: b\r\n"[..], MAX_HEADERS + 1))
            .chain([&b"\r\n"[..]])
            .flatten()
            .copied()
            .collect();
        assert_eq!(bad(&many), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let long = vec![b'a'; MAX_HEAD];
        assert_eq!(
            bad(&[b"GET /".as_slice(), &long].concat()),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn body_lengths() {
        let map = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            m
        };
        assert_eq!(body_len(&map(&[])), Ok(0));
        assert_eq!(body_len(&map(&[("content-length", "12")])), Ok(12));
        assert_eq!(
            body_len(&map(&[("content-length", "12"), ("content-length", "12")])),
            Ok(12)
        );
        assert_eq!(
            body_len(&map(&[("content-length", "12"), ("content-length", "13")])),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            body_len(&map(&[("content-length", "+12")])),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            body_len(&map(&[("content-length", "")])),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            body_len(&map(&[("content-length", "99999999999999999999999")])),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            body_len(&map(&[("content-length", "65537")])),
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(
            body_len(&map(&[("transfer-encoding", "chunked")])),
            Err(StatusCode::NOT_IMPLEMENTED)
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let with = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(CONNECTION, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(keep_alive(Version::HTTP_11, &HeaderMap::new()));
        assert!(!keep_alive(Version::HTTP_11, &with("Close")));
        assert!(!keep_alive(Version::HTTP_11, &with("upgrade, close")));
        assert!(!keep_alive(Version::HTTP_10, &HeaderMap::new()));
        assert!(keep_alive(Version::HTTP_10, &with("Keep-Alive")));
    }

    #[test]
    fn response_heads() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from(5));
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        let text =
            String::from_utf8(response_head(StatusCode::OK, &h, true, Version::HTTP_11)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ndate: "), "{text}");
        assert!(text.ends_with("content-length: 5\r\n\r\n"), "{text}");
        assert!(
            !text.contains("upgrade"),
            "the handler's Connection is not passed on: {text}"
        );
        let text = String::from_utf8(response_head(
            StatusCode::NOT_FOUND,
            &h,
            false,
            Version::HTTP_11,
        ))
        .unwrap();
        assert!(
            text.ends_with("content-length: 5\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
        let text =
            String::from_utf8(response_head(StatusCode::OK, &h, true, Version::HTTP_10)).unwrap();
        assert!(text.ends_with("connection: keep-alive\r\n\r\n"), "{text}");
    }

    /// Random and mutated heads: every one parses, waits or is refused; none panics.
    #[test]
    fn garbage_heads_never_panic() {
        let seeds: [&[u8]; 4] = [
            b"GET /boot/demo/static/initrd?mac=52:54:00:12:34:56 HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\n\r\n",
            b"POST /boot/report HTTP/1.0\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
            b"HEAD / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
            b"GET http://x/y HTTP/1.1\r\n\r\n",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000u64 {
            let mut h = seeds[(i % 4) as usize].to_vec();
            for _ in 0..(next() % 6) {
                let pos = (next() as usize) % (h.len() + 1);
                match next() % 3 {
                    0 if pos < h.len() => h[pos] = next() as u8,
                    1 => h.insert(pos, b"\r\n: /?%\0\xff\x7f HTTP"[(next() % 15) as usize]),
                    _ => h.truncate(pos),
                }
            }
            if let Parsed::Complete(head) = parse_head(&h) {
                assert!(head.len <= h.len());
                let _ = body_len(&head.headers);
                let _ = keep_alive(head.version, &head.headers);
            }
        }
    }
}
