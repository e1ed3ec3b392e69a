//! A small blocking client for the appliance's JSON API (`/api/v1`): over HTTPS with a bearer
//! token from a laptop (hyper over tokio-rustls, ring), or over the daemon's owner-only Unix
//! socket on the appliance (no token: the socket's permissions are the authentication). One
//! HTTP/1.1 connection per call; errors say what to do (a refused token, a certificate that
//! does not match, an address that does not answer, a daemon that is not running).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use crate::api_tls::{self, Trust, TrustError, WHERE_FINGERPRINT};

/// Connecting (TCP and TLS) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A call's answer (adding a flake locks it with nix: it can take a while).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
/// A stream with nothing for this long has stalled (the API sends keep-alives every 15 s).
const STREAM_IDLE: Duration = Duration::from_secs(60);

const TOKEN_HINT: &str = "create one under Settings > API tokens on the appliance's page and \
     pass it with --token-file FILE (or in the FLAKEBOOT_TOKEN variable)";

/// Where a call went: the appliance's address, or the daemon's socket on this machine.
#[derive(Debug, Clone)]
pub enum Peer {
    Tcp(SocketAddr),
    Socket(PathBuf),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Socket(path) => write!(f, "the daemon's socket {}", path.display()),
        }
    }
}

/// Why a call to the appliance failed, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "--server {given:?}: {why}; give the appliance's management address like \
         https://10.0.0.2 or https://10.0.0.2:8443"
    )]
    BadServer { given: String, why: &'static str },
    #[error("no API token: {TOKEN_HINT}")]
    NoToken,
    #[error("cannot read the token file {}: {err}", path.display())]
    ReadToken { path: PathBuf, err: std::io::Error },
    #[error("the token in {what} is not one line of text: {TOKEN_HINT}")]
    BadToken { what: String },
    #[error(
        "how should the appliance's certificate be trusted? Pass --pin SHA256 ({WHERE_FINGERPRINT}) \
         or --cacert FILE (the appliance's certificate, or the CA that signed an uploaded one)"
    )]
    NoTrust,
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("cannot find the address of {host}: {err}")]
    Resolve { host: String, err: std::io::Error },
    #[error(
        "cannot reach the appliance at {addr}: {reason}. Its web UI and API listen only on its \
         LAN and VPN addresses, over HTTPS (port 443 unless [web] port says otherwise): check \
         --server and that this machine is on that LAN or VPN"
    )]
    Unreachable { addr: SocketAddr, reason: String },
    #[error(
        "cannot reach the flakeboot daemon through {}: {reason}. Is `flakeboot serve` running \
         with this state directory (--state-dir, default /var/lib/flakeboot)? From another \
         machine, use --server",
        socket.display()
    )]
    NoDaemon { socket: PathBuf, reason: String },
    #[error(
        "the appliance's certificate does not match --pin: it presented SHA-256 {got}, the pin \
         is {expected}. Compare with the fingerprint {WHERE_FINGERPRINT}; if the certificate \
         was replaced, pin the new one"
    )]
    PinMismatch { expected: String, got: String },
    #[error(
        "the appliance's certificate is not trusted by --cacert {}: {reason}. Use the \
         appliance's own certificate (or the CA that signed an uploaded one), or --pin the \
         SHA-256 {WHERE_FINGERPRINT}",
        cacert.display()
    )]
    Untrusted { cacert: PathBuf, reason: String },
    #[error("TLS with {addr} failed: {err}")]
    Tls { addr: Peer, err: std::io::Error },
    #[error("the connection to {addr} failed: {reason}")]
    Http { addr: Peer, reason: String },
    #[error("{addr} did not answer within {} s", waited.as_secs())]
    Timeout { addr: Peer, waited: Duration },
    #[error("the token was refused: {TOKEN_HINT}")]
    Unauthorized,
    /// The API's own error message (`{"error": ...}`).
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    #[error("the appliance's answer to {path} is not what the API sends ({status}): {why}")]
    BadAnswer {
        path: String,
        status: StatusCode,
        why: String,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The appliance's management address, from `--server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// An IP address or a name (no brackets).
    pub host: String,
    pub port: u16,
}

impl Server {
    /// `https://ADDR[:PORT]` (a trailing `/` is fine; `https://` may be left out).
    pub fn parse(given: &str) -> Result<Server, ClientError> {
        let bad = |why| ClientError::BadServer {
            given: given.to_owned(),
            why,
        };
        let rest = match given.trim().split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            Some(_) => return Err(bad("the API is served over HTTPS only")),
            None => given.trim(),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("give only the address and port, no path"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address inside [ ]"))?;
            (host, after.strip_prefix(':'))
        } else if rest.matches(':').count() > 1 {
            return Err(bad(
                "write an IPv6 address in brackets, like https://[fd00::2]",
            ));
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no address"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
            None => 443,
        };
        Ok(Server {
            host: host.to_owned(),
            port,
        })
    }

    fn server_name(&self) -> Result<ServerName<'static>, ClientError> {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
            Err(_) => ServerName::try_from(self.host.clone()).map_err(|_| ClientError::BadServer {
                given: self.host.clone(),
                why: "not a valid host name",
            }),
        }
    }

    /// `host[:port]` for the Host header.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 443 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.authority())
    }
}

/// An API token; never printed.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// From `--token-file`, else the `FLAKEBOOT_TOKEN` variable's value.
    pub fn find(file: Option<&Path>, env: Option<String>) -> Result<Token, ClientError> {
        match (file, env) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|err| ClientError::ReadToken {
                    path: path.to_owned(),
                    err,
                })?;
                Token::new(&text, &path.display().to_string())
            }
            (None, Some(value)) => Token::new(&value, "FLAKEBOOT_TOKEN"),
            (None, None) => Err(ClientError::NoToken),
        }
    }

    fn new(text: &str, what: &str) -> Result<Token, ClientError> {
        let token = text.trim();
        if token.is_empty() {
            return Err(ClientError::NoToken);
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ClientError::BadToken {
                what: what.to_owned(),
            });
        }
        Ok(Token(token.to_owned()))
    }

    fn header(&self) -> Result<HeaderValue, ClientError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            ClientError::BadToken {
                what: "the token".into(),
            }
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// How the client reaches the API.
enum Endpoint {
    /// A laptop: HTTPS to the appliance's management address with a token (none for a fresh
    /// appliance's setup routes).
    Https {
        server: Server,
        token: Option<Token>,
        trust: Trust,
        tls: TlsConnector,
    },
    /// On the appliance: the daemon's owner-only socket.
    Local { socket: PathBuf },
}

/// A client for one appliance.
pub struct ApiClient {
    endpoint: Endpoint,
    /// What request paths are under: `/api/v1`, or nothing for the setup routes.
    prefix: &'static str,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ApiClient");
        match &self.endpoint {
            Endpoint::Https { server, trust, .. } => {
                d.field("server", server).field("trust", trust)
            }
            Endpoint::Local { socket } => d.field("socket", socket),
        };
        d.finish_non_exhaustive()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

impl ApiClient {
    /// A client of the appliance at `server` over HTTPS.
    pub fn new(server: Server, token: Token, trust: Trust) -> Result<ApiClient, ClientError> {
        let tls = TlsConnector::from(Arc::new(trust.client_config()?));
        Ok(ApiClient {
            endpoint: Endpoint::Https {
                server,
                token: Some(token),
                trust,
                tls,
            },
            prefix: "/api/v1",
            runtime: runtime()?,
        })
    }

    /// A client of a fresh appliance's setup routes (`/setup/...`) at `server`, before any
    /// token exists: its paths are the routes' own, and it sends no token.
    pub fn setup(server: Server, trust: Trust) -> Result<ApiClient, ClientError> {
        let tls = TlsConnector::from(Arc::new(trust.client_config()?));
        Ok(ApiClient {
            endpoint: Endpoint::Https {
                server,
                token: None,
                trust,
                tls,
            },
            prefix: "",
            runtime: runtime()?,
        })
    }

    /// The request URI of `path`.
    fn uri(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// A client of the daemon on this machine, over its API socket.
    pub fn local(socket: PathBuf) -> Result<ApiClient, ClientError> {
        Ok(ApiClient {
            endpoint: Endpoint::Local { socket },
            prefix: "/api/v1",
            runtime: runtime()?,
        })
    }

    /// GET `path` (under `/api/v1`) as JSON.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None)
    }

    /// POST `body` to `path` (under `/api/v1`); the answer as JSON.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body))
    }

    /// PUT `body` to `path` (under `/api/v1`); the answer as JSON.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::PUT, path, Some(body))
    }

    /// DELETE `path` (under `/api/v1`); the answer as JSON (`null` for `204 No Content`).
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::DELETE, path, None)
    }

    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.runtime.block_on(async {
            let (peer, sender) = self.connect().await?;
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
                let response = self.send(&peer, sender, method, path, body).await?;
                read_answer(&peer, &self.uri(path), response).await
            })
            .await;
            answer.unwrap_or(Err(ClientError::Timeout {
                addr: peer,
                waited: ANSWER_TIMEOUT,
            }))
        })
    }

    /// GET `path` and hand every chunk of the body to `chunk` until the server ends it.
    pub fn stream(&self, path: &str, chunk: impl FnMut(&[u8])) -> Result<(), ClientError> {
        self.stream_with(path, &[], chunk)
    }

    /// [`ApiClient::stream`] with more request headers.
    pub fn stream_with(
        &self,
        path: &str,
        extra: &[(&str, &str)],
        mut chunk: impl FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        self.runtime.block_on(async {
            let (peer, sender) = self.connect().await?;
            let empty = Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed();
            let response = tokio::time::timeout(
                ANSWER_TIMEOUT,
                self.send_body(&peer, sender, Method::GET, path, extra, empty),
            )
            .await
            .unwrap_or(Err(ClientError::Timeout {
                addr: peer.clone(),
                waited: ANSWER_TIMEOUT,
            }))?;
            if !response.status().is_success() {
                return read_answer(&peer, &self.uri(path), response)
                    .await
                    .map(drop);
            }
            let mut body = response.into_body();
            loop {
                let frame = tokio::time::timeout(STREAM_IDLE, body.frame())
                    .await
                    .map_err(|_| ClientError::Timeout {
                        addr: peer.clone(),
                        waited: STREAM_IDLE,
                    })?;
                match frame {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(http_error(&peer, &e)),
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            chunk(data);
                        }
                    }
                }
            }
        })
    }

    /// One HTTP/1.1 connection to the API.
    async fn connect(&self) -> Result<(Peer, Sender), ClientError> {
        match &self.endpoint {
            Endpoint::Https {
                server, trust, tls, ..
            } => {
                let addr = resolve(server).await?;
                let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .map_err(|_| ClientError::Unreachable {
                        addr,
                        reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                    })?
                    .map_err(|e| ClientError::Unreachable {
                        addr,
                        reason: e.to_string(),
                    })?;
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(server.server_name()?, tcp))
                        .await
                        .map_err(|_| ClientError::Unreachable {
                            addr,
                            reason: "the TLS handshake did not finish".into(),
                        })?
                        .map_err(|e| tls_error(trust, addr, e))?;
                let peer = Peer::Tcp(addr);
                let sender = handshake(&peer, stream).await?;
                Ok((peer, sender))
            }
            Endpoint::Local { socket } => {
                let no_daemon = |reason: String| ClientError::NoDaemon {
                    socket: socket.clone(),
                    reason,
                };
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket))
                    .await
                    .map_err(|_| {
                        no_daemon(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))
                    })?
                    .map_err(|e| no_daemon(e.to_string()))?;
                let peer = Peer::Socket(socket.clone());
                let sender = handshake(&peer, stream).await?;
                Ok((peer, sender))
            }
        }
    }

    async fn send(
        &self,
        peer: &Peer,
        sender: Sender,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let (content_type, bytes) = match body {
            Some(v) => (
                Some("application/json"),
                Bytes::from(serde_json::to_vec(v).map_err(|e| ClientError::Http {
                    addr: peer.clone(),
                    reason: e.to_string(),
                })?),
            ),
            None => (None, Bytes::new()),
        };
        let body = Full::new(bytes).map_err(|never| match never {}).boxed();
        let headers: &[(&str, &str)] = match content_type {
            Some(t) => &[("content-type", t)],
            None => &[],
        };
        self.send_body(peer, sender, method, path, headers, body)
            .await
    }

    async fn send_body(
        &self,
        peer: &Peer,
        mut sender: Sender,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let uri = self.uri(path);
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("flakeboot-cli/", env!("CARGO_PKG_VERSION")),
            );
        request = match &self.endpoint {
            Endpoint::Https { server, token, .. } => {
                let request = request.header(header::HOST, server.authority());
                match token {
                    Some(token) => request.header(header::AUTHORIZATION, token.header()?),
                    None => request,
                }
            }
            Endpoint::Local { .. } => request.header(header::HOST, "localhost"),
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).map_err(|e| ClientError::Http {
            addr: peer.clone(),
            reason: format!("cannot make the request for {uri}: {e}"),
        })?;
        sender
            .send_request(request)
            .await
            .map_err(|e| http_error(peer, &e))
    }

    /// POSTs the file at `file` (its `len` bytes) to `path` as `application/octet-stream`,
    /// telling `progress` the bytes sent so far; the answer as JSON. Waits up to `wait` for
    /// the answer after the last byte.
    pub fn upload(
        &self,
        path: &str,
        file: std::fs::File,
        len: u64,
        wait: Duration,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Value, ClientError> {
        self.upload_with(path, &[], file, len, wait, progress)
    }

    /// [`upload`](Self::upload) with more request headers.
    pub fn upload_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        file: std::fs::File,
        len: u64,
        wait: Duration,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Value, ClientError> {
        use futures_util::TryStreamExt;
        self.runtime.block_on(async {
            let (peer, sender) = self.connect().await?;
            let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let chunks = tokio_util::io::ReaderStream::with_capacity(
                tokio::fs::File::from_std(file),
                1 << 20,
            )
            .inspect_ok(move |chunk| {
                let total =
                    sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                progress(total + chunk.len() as u64);
            })
            .map_ok(hyper::body::Frame::data);
            let body = http_body_util::StreamBody::new(chunks).boxed();
            let body = BodyWithLength { inner: body, len };
            let answer = tokio::time::timeout(wait, async {
                let response = self
                    .send_body(
                        &peer,
                        sender,
                        Method::POST,
                        path,
                        &[&[("content-type", "application/octet-stream")], headers].concat(),
                        body.boxed(),
                    )
                    .await?;
                read_answer(&peer, &self.uri(path), response).await
            })
            .await;
            answer.unwrap_or(Err(ClientError::Timeout {
                addr: peer,
                waited: wait,
            }))
        })
    }
}

/// A request body.
type ReqBody = BoxBody<Bytes, std::io::Error>;

/// A streamed body whose length is known, so it is sent with `Content-Length`.
struct BodyWithLength {
    inner: ReqBody,
    len: u64,
}

impl hyper::body::Body for BodyWithLength {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

type Sender = hyper::client::conn::http1::SendRequest<ReqBody>;

async fn handshake<IO>(peer: &Peer, io: IO) -> Result<Sender, ClientError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| http_error(peer, &e))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "API connection ended");
        }
    });
    Ok(sender)
}

async fn resolve(server: &Server) -> Result<SocketAddr, ClientError> {
    let resolve_err = |err| ClientError::Resolve {
        host: server.host.clone(),
        err,
    };
    tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .map_err(resolve_err)?
        .next()
        .ok_or_else(|| {
            resolve_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address",
            ))
        })
}

fn tls_error(trust: &Trust, addr: SocketAddr, err: std::io::Error) -> ClientError {
    let rustls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    if let Some(mismatch) = rustls_err.and_then(api_tls::pin_mismatch) {
        return ClientError::PinMismatch {
            expected: mismatch.expected.clone(),
            got: mismatch.got.clone(),
        };
    }
    if let (Some(rustls::Error::InvalidCertificate(reason)), Trust::CaFile(cacert)) =
        (rustls_err, trust)
    {
        return ClientError::Untrusted {
            cacert: cacert.clone(),
            reason: reason.to_string(),
        };
    }
    ClientError::Tls {
        addr: Peer::Tcp(addr),
        err,
    }
}

fn http_error(addr: &Peer, err: &dyn std::error::Error) -> ClientError {
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    ClientError::Http {
        addr: addr.clone(),
        reason,
    }
}

/// The whole answer from `addr` to a request for `uri`, read as [`answer`] does.
async fn read_answer(
    addr: &Peer,
    uri: &str,
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Value, ClientError> {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| http_error(addr, &e))?
        .to_bytes();
    answer(uri, status, &bytes)
}

/// A call's answer (to `uri`): the JSON of a success, else the API's error message.
fn answer(uri: &str, status: StatusCode, body: &[u8]) -> Result<Value, ClientError> {
    let bad = |why: String| ClientError::BadAnswer {
        path: uri.to_owned(),
        status,
        why,
    };
    if status == StatusCode::UNAUTHORIZED {
        return Err(ClientError::Unauthorized);
    }
    let json = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            Err(e) => {
                let start = String::from_utf8_lossy(body.get(..body.len().min(80)).unwrap_or(body))
                    .into_owned();
                return Err(bad(format!("{e} (it starts with {start:?})")));
            }
        }
    };
    if status.is_success() {
        return Ok(json);
    }
    match error_message(&json) {
        Some(message) => Err(ClientError::Api { status, message }),
        None => Err(bad("no error message".into())),
    }
}

/// `{"error": m}`, `{"error": m, "field": f}` or `{"error": m, "fields": {f: m2, ...}}` as one
/// line: "m", "f: m", "m: f: m2; g: m3".
fn error_message(json: &Value) -> Option<String> {
    let message = json.get("error")?.as_str()?.to_owned();
    if let Some(field) = json.get("field").and_then(Value::as_str) {
        return Some(format!("{field}: {message}"));
    }
    if let Some(fields) = json.get("fields").and_then(Value::as_object) {
        let list: Vec<String> = fields
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|m| format!("{k}: {m}")))
            .collect();
        if !list.is_empty() {
            return Some(format!("{message}: {}", list.join("; ")));
        }
    }
    Some(message)
}

/// `s` for a URL path segment or query value (everything but unreserved characters escaped).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_parse_with_and_without_scheme_and_port() {
        for (text, host, port) in [
            ("https://10.0.0.2", "10.0.0.2", 443),
            ("10.0.0.2:8443/", "10.0.0.2", 8443),
            ("HTTPS://flakeboot.lan", "flakeboot.lan", 443),
            ("https://[fd00::2]:444", "fd00::2", 444),
        ] {
            let want = Server {
                host: host.into(),
                port,
            };
            assert_eq!(Server::parse(text).unwrap(), want, "{text}");
        }
        assert_eq!(
            Server::parse("https://[fd00::2]:444").unwrap().to_string(),
            "https://[fd00::2]:444"
        );
        for bad in [
            "http://10.0.0.2",
            "https://10.0.0.2/api/v1",
            "fd00::2",
            "https://",
            "https://10.0.0.2:x",
            "https://10.0.0.2:70000",
            "https://user@10.0.0.2",
        ] {
            let err = Server::parse(bad).unwrap_err();
            assert!(matches!(err, ClientError::BadServer { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("https://10.0.0.2"), "{err}");
        }
    }

    #[test]
    fn tokens_come_from_the_file_first_and_never_show_in_debug_output() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("token");
        std::fs::write(&file, "fbt_secret123\n").unwrap();
        let t = Token::find(Some(&file), Some("fbt_env".into())).unwrap();
        assert_eq!(t.0, "fbt_secret123");
        assert!(!format!("{t:?}").contains("secret"));
        assert_eq!(
            Token::find(None, Some(" fbt_env ".into())).unwrap().0,
            "fbt_env"
        );
        assert!(matches!(Token::find(None, None), Err(ClientError::NoToken)));
        std::fs::write(&file, "fbt_a fbt_b").unwrap();
        assert!(matches!(
            Token::find(Some(&file), None),
            Err(ClientError::BadToken { .. })
        ));
        let err = Token::find(Some(&tmp.path().join("nope")), None).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(
            ClientError::Unauthorized
                .to_string()
                .contains("Settings > API tokens")
        );
    }

    #[test]
    fn api_errors_become_their_message_with_the_fields() {
        let err = answer(
            "/flakes",
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"error":"nix cannot lock the flake","field":"url"}"#,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "url: nix cannot lock the flake");
        let err = answer(
            "/machines/x",
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"error":"invalid input","fields":{"host":"There is no host named x.","label":null}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input: host: There is no host named x."
        );
        let err = answer(
            "/builds/9",
            StatusCode::NOT_FOUND,
            br#"{"error":"build 9 not found"}"#,
        )
        .unwrap_err();
        assert!(matches!(err, ClientError::Api { status, .. } if status == StatusCode::NOT_FOUND));
        assert!(matches!(
            answer("/flakes", StatusCode::UNAUTHORIZED, b""),
            Err(ClientError::Unauthorized)
        ));
        let err = answer("/api/v1/flakes", StatusCode::OK, b"<html>").unwrap_err();
        assert!(err.to_string().contains("/api/v1/flakes"), "{err}");
        assert_eq!(answer("/x", StatusCode::OK, b"").unwrap(), Value::Null);
    }

    #[test]
    fn path_parts_are_escaped() {
        assert_eq!(encode("lab#alpha"), "lab%23alpha");
        assert_eq!(encode("52:54:00:12:34:56"), "52%3A54%3A00%3A12%3A34%3A56");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
