//! Serving one file from disk: validators, conditional requests, a single byte range, streamed.
//!
//! [`plan`] is the pure part (metadata and request headers in, what to send out); [`serve_file`]
//! looks the file up (an open descriptor kept per path, see [`crate::open_files`]), plans, and
//! streams the planned bytes in positioned reads of up to 512 KiB: a file is never read into
//! memory whole.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::conditional::{Conditions, Precondition, Validators};
use crate::file_body::FileBody;
use crate::open_files::{InFlight, OpenFile, OpenFiles, body, first_chunk};
use crate::range::{RangeDecision, content_range, unsatisfied_range};

/// Why a file from the catalogue could not be served.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the metadata of {path}: {source}")]
    Metadata {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("cannot read {path} at byte {offset}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        source: std::io::Error,
    },
    #[error("the blocking task opening {path} failed: {source}")]
    Task {
        path: PathBuf,
        source: tokio::task::JoinError,
    },
}

impl FileError {
    /// The status a client gets: missing files are 404, anything else is the server's fault.
    pub fn status(&self) -> StatusCode {
        match self {
            FileError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                StatusCode::NOT_FOUND
            }
            FileError::NotRegular { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The parts of a request that shape a file response.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRequest<'a> {
    /// HEAD: headers only.
    pub head: bool,
    /// The raw `Range` header.
    pub range: Option<&'a [u8]>,
    pub conditions: Conditions<'a>,
}

/// What to send, decided from the file's size and validators and the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// 304, no body.
    NotModified,
    /// 200, the whole file.
    Full,
    /// 206, these bytes.
    Partial(RangeInclusive<u64>),
    /// 416, `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decide the response for a file of `len` bytes with validators `v`. Pure.
pub fn plan(len: u64, v: &Validators, req: &FileRequest<'_>) -> Plan {
    match req.conditions.evaluate(v) {
        Precondition::NotModified => Plan::NotModified,
        Precondition::Send { use_range: false } => Plan::Full,
        Precondition::Send { use_range: true } => match RangeDecision::decide(req.range, len) {
            RangeDecision::Full => Plan::Full,
            RangeDecision::Partial(r) => Plan::Partial(r),
            RangeDecision::Unsatisfiable => Plan::Unsatisfiable,
        },
    }
}

/// A response and a short description of it for the boot event (`206 bytes 100-199/8388608`).
#[derive(Debug)]
pub struct Served {
    pub response: Response,
    pub status: StatusCode,
    pub detail: String,
    /// The body, when the connection writes it (the response's own body is then empty).
    pub file_body: Option<FileBody>,
}

/// A [`FileRequest`] that owns its header values, to take to the blocking pool.
#[derive(Debug, Clone, Default)]
struct OwnedRequest {
    head: bool,
    range: Option<Vec<u8>>,
    if_none_match: Option<Vec<u8>>,
    if_modified_since: Option<Vec<u8>>,
    if_range: Option<Vec<u8>>,
}

impl OwnedRequest {
    fn of(req: &FileRequest<'_>) -> OwnedRequest {
        let own = |v: Option<&[u8]>| v.map(<[u8]>::to_vec);
        OwnedRequest {
            head: req.head,
            range: own(req.range),
            if_none_match: own(req.conditions.if_none_match),
            if_modified_since: own(req.conditions.if_modified_since),
            if_range: own(req.conditions.if_range),
        }
    }

    fn borrow(&self) -> FileRequest<'_> {
        FileRequest {
            head: self.head,
            range: self.range.as_deref(),
            conditions: Conditions {
                if_none_match: self.if_none_match.as_deref(),
                if_modified_since: self.if_modified_since.as_deref(),
                if_range: self.if_range.as_deref(),
            },
        }
    }
}

/// The body [`look_up`] prepared.
#[derive(Debug)]
enum ToSend {
    /// Read in chunks by this process: the first chunk is read already.
    Chunks(RangeInclusive<u64>, Bytes, InFlight),
    /// Written from the descriptor by the connection ([`FileBody`]): nothing read here.
    Descriptor(RangeInclusive<u64>),
}

/// What [`look_up`] found and decided.
#[derive(Debug)]
struct LookedUp {
    file: Arc<OpenFile>,
    len: u64,
    validators: Validators,
    plan: Plan,
    /// `None` without a body.
    body: Option<ToSend>,
}

/// The file, its plan and (unless the connection writes the body itself) the first chunk of
/// its body, in one trip to the blocking pool.
fn look_up(
    files: &OpenFiles,
    path: &Path,
    req: &OwnedRequest,
    by_connection: bool,
) -> Result<LookedUp, FileError> {
    let file = files.open(path)?;
    let meta = file.metadata();
    let len = meta.len();
    let mtime = meta.modified().map_err(|source| FileError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    let validators = Validators::new(len, mtime, std::os::unix::fs::MetadataExt::ino(meta));
    let plan = plan(len, &validators, &req.borrow());
    let range = match &plan {
        _ if req.head => None,
        Plan::Full => (len > 0).then(|| 0..=len - 1),
        Plan::Partial(r) => Some(r.clone()),
        Plan::NotModified | Plan::Unsatisfiable => None,
    };
    let body = match range {
        Some(r) if by_connection => Some(ToSend::Descriptor(r)),
        Some(r) => {
            let counted = files.in_flight();
            let first =
                first_chunk(&file, &r, counted.chunk()).map_err(|source| FileError::Read {
                    path: path.to_owned(),
                    offset: *r.start(),
                    source,
                })?;
            Some(ToSend::Chunks(r, first, counted))
        }
        None => None,
    };
    Ok(LookedUp {
        file,
        len,
        validators,
        plan,
        body,
    })
}

/// Answer `req` from the file at `path`, opened through `files` (a cached descriptor while the
/// path still names the same file). With `by_connection` (the server writes file bodies
/// itself) the body is left in [`Served::file_body`] and the response's body is empty.
pub(crate) async fn serve_file(
    files: &Arc<OpenFiles>,
    path: &Path,
    req: &FileRequest<'_>,
    by_connection: bool,
) -> Result<Served, FileError> {
    // A file the cache holds is one `stat` away from its answer when the connection sends the
    // body: done here, as nginx's open-file cache does on its event loop (the inode of a file
    // served moments ago is in memory), instead of two thread switches per request. Anything
    // that may open a file or read a chunk goes to the blocking pool.
    let found = if by_connection && files.holds(path) {
        look_up(files, path, &OwnedRequest::of(req), true)?
    } else {
        let files = files.clone();
        let owned = path.to_owned();
        let req = OwnedRequest::of(req);
        tokio::task::spawn_blocking(move || look_up(&files, &owned, &req, by_connection))
            .await
            .map_err(|source| FileError::Task {
                path: path.to_owned(),
                source,
            })??
    };
    let LookedUp {
        file,
        len,
        validators: v,
        plan,
        body: to_send,
    } = found;
    let (status, body_range) = match &plan {
        Plan::NotModified => (StatusCode::NOT_MODIFIED, None),
        Plan::Full => (StatusCode::OK, (len > 0).then(|| 0..=len - 1)),
        Plan::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r.clone())),
        Plan::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, None),
    };
    let content_length = match &plan {
        Plan::NotModified => None,
        Plan::Unsatisfiable => Some(0),
        _ => Some(body_range.as_ref().map_or(0, |r| r.end() - r.start() + 1)),
    };
    let detail = match &plan {
        Plan::NotModified => format!("304 not modified ({len} bytes)"),
        Plan::Full => format!("200 bytes 0-{}/{len}", len.saturating_sub(1)),
        Plan::Partial(r) => format!("206 bytes {}-{}/{len}", r.start(), r.end()),
        Plan::Unsatisfiable => format!("416 range not satisfiable ({len} bytes)"),
    };

    let mut builder = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &v.etag)
        .header(header::LAST_MODIFIED, v.last_modified_header());
    if let Some(n) = content_length {
        builder = builder.header(header::CONTENT_LENGTH, n);
    }
    if plan != Plan::NotModified {
        builder = builder.header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    match &plan {
        Plan::Partial(r) => builder = builder.header(header::CONTENT_RANGE, content_range(r, len)),
        Plan::Unsatisfiable => {
            builder = builder.header(header::CONTENT_RANGE, unsatisfied_range(len));
        }
        _ => {}
    }

    let (body, file_body) = match to_send {
        Some(ToSend::Chunks(r, first, counted)) => {
            (Body::from_stream(body(file, r, first, counted)), None)
        }
        Some(ToSend::Descriptor(r)) => (Body::empty(), Some(FileBody::new(file, &r))),
        None => (Body::empty(), None),
    };
    let response = match builder.body(body) {
        Ok(response) => response,
        // Every header above is a valid value by construction; keep a safe answer anyway.
        Err(_) => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::empty())
            .unwrap_or_default(),
    };
    Ok(Served {
        response,
        status,
        detail,
        file_body,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn v() -> Validators {
        Validators::new(1000, UNIX_EPOCH + Duration::from_secs(1_700_000_000), 7)
    }

    #[test]
    fn plans() {
        let v = v();
        let none = FileRequest::default();
        assert_eq!(plan(1000, &v, &none), Plan::Full);
        let ranged = FileRequest {
            range: Some(b"bytes=10-19"),
            ..Default::default()
        };
        assert_eq!(plan(1000, &v, &ranged), Plan::Partial(10..=19));
        let past_end = FileRequest {
            range: Some(b"bytes=1000-"),
            ..Default::default()
        };
        assert_eq!(plan(1000, &v, &past_end), Plan::Unsatisfiable);
        let cached = FileRequest {
            range: Some(b"bytes=10-19"),
            conditions: Conditions {
                if_none_match: Some(v.etag.as_bytes()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(plan(1000, &v, &cached), Plan::NotModified);
        let stale_if_range = FileRequest {
            range: Some(b"bytes=10-19"),
            conditions: Conditions {
                if_range: Some(b"\"old\""),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(plan(1000, &v, &stale_if_range), Plan::Full);
        let fresh_if_range = FileRequest {
            range: Some(b"bytes=10-19"),
            conditions: Conditions {
                if_range: Some(v.etag.as_bytes()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(plan(1000, &v, &fresh_if_range), Plan::Partial(10..=19));
    }

    /// Thousands of random and mutated header values: every parser answers, none panics.
    #[test]
    fn garbage_headers_never_panic() {
        let v = v();
        let seeds: [&[u8]; 6] = [
            b"bytes=100-199",
            b"bytes=-500",
            b"bytes=0-1,2-3",
            b"Tue, 14 Nov 2023 22:13:20 GMT",
            b"W/\"2a-800000\", *",
            b"mac=52:54:00:12:34:56",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000u64 {
            let mut h = seeds[(i % 6) as usize].to_vec();
            for _ in 0..(next() % 4) {
                let pos = (next() as usize) % (h.len() + 1);
                match next() % 3 {
                    0 if pos < h.len() => h[pos] = next() as u8,
                    1 => h.insert(pos, b"-,=0123456789 \"W/*\0\xff"[(next() % 16) as usize]),
                    _ => h.truncate(pos),
                }
            }
            for len in [0, 1, 1000, u64::MAX] {
                let req = FileRequest {
                    head: false,
                    range: Some(&h),
                    conditions: Conditions {
                        if_none_match: Some(&h),
                        if_modified_since: Some(&h),
                        if_range: Some(&h),
                    },
                };
                if let Plan::Partial(r) = plan(len, &v, &req) {
                    assert!(r.start() <= r.end() && *r.end() < len, "{h:?} {len}: {r:?}");
                }
            }
            if let Ok(text) = std::str::from_utf8(&h) {
                let _ = crate::query::mac_param(Some(text));
                let _ = crate::ipxe_text::sanitize_display(text, 60);
            }
        }
    }

    #[test]
    fn error_statuses() {
        let missing = FileError::Open {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let denied = FileError::Open {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(denied.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            FileError::NotRegular { path: "/".into() }.status(),
            StatusCode::NOT_FOUND
        );
        // A file cut short between its lookup and its first read: our side, not a 404.
        let short = FileError::Read {
            path: "/x".into(),
            offset: 0,
            source: std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        };
        assert_eq!(short.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// Through `serve_file`, sharing one cache of open files as the router does.
    mod served {
        use std::sync::Arc;

        use axum::http::{StatusCode, header};

        use super::super::{FileRequest, serve_file};
        use crate::open_files::{CHUNK, OpenFiles};

        fn pattern(len: usize) -> Vec<u8> {
            (0..len)
                .map(|i| (i % 253) as u8 ^ (i >> 16) as u8)
                .collect()
        }

        struct Got {
            status: StatusCode,
            headers: axum::http::HeaderMap,
            body: Vec<u8>,
        }

        async fn get(files: &Arc<OpenFiles>, path: &std::path::Path, range: Option<&str>) -> Got {
            let req = FileRequest {
                range: range.map(str::as_bytes),
                ..Default::default()
            };
            let served = serve_file(files, path, &req, false).await.unwrap();
            let (parts, body) = served.response.into_parts();
            assert_eq!(parts.status, served.status);
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap()
                .to_vec();
            Got {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        }

        fn header(g: &Got, name: header::HeaderName) -> &str {
            g.headers.get(name).unwrap().to_str().unwrap()
        }

        #[tokio::test]
        async fn a_file_larger_than_a_chunk_is_served_byte_exact() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("initrd");
            let data = pattern(3 * CHUNK + 4097);
            std::fs::write(&path, &data).unwrap();
            let files = Arc::new(OpenFiles::default());
            let full = get(&files, &path, None).await;
            assert_eq!(full.status, StatusCode::OK);
            assert_eq!(
                header(&full, header::CONTENT_LENGTH),
                data.len().to_string()
            );
            assert!(full.body == data, "the body differs from the file");
            // Again from the cached descriptor, and a range across a chunk boundary.
            let from = 2 * CHUNK - 1000;
            let to = 2 * CHUNK + 1000;
            let part = get(&files, &path, Some(&format!("bytes={from}-{to}"))).await;
            assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
            assert!(
                part.body == data[from..=to],
                "the range differs from the file"
            );
        }

        #[tokio::test]
        async fn a_range_at_the_end_of_the_file() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("initrd");
            let data = pattern(CHUNK + 777);
            let len = data.len();
            std::fs::write(&path, &data).unwrap();
            let files = Arc::new(OpenFiles::default());
            let suffix = get(&files, &path, Some("bytes=-10")).await;
            assert_eq!(suffix.status, StatusCode::PARTIAL_CONTENT);
            assert_eq!(
                header(&suffix, header::CONTENT_RANGE),
                format!("bytes {}-{}/{len}", len - 10, len - 1)
            );
            assert_eq!(suffix.body, &data[len - 10..]);
            let last = get(&files, &path, Some(&format!("bytes={}-", len - 1))).await;
            assert_eq!(last.body, &data[len - 1..]);
            assert_eq!(header(&last, header::CONTENT_LENGTH), "1");
            // Past the end runs to the end; starting past it is 416.
            let over = get(
                &files,
                &path,
                Some(&format!("bytes={}-{}", len - 3, len + 50)),
            )
            .await;
            assert_eq!(over.body, &data[len - 3..]);
            let beyond = get(&files, &path, Some(&format!("bytes={len}-"))).await;
            assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
            assert!(beyond.body.is_empty());
        }

        #[tokio::test]
        async fn an_empty_file() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("empty");
            std::fs::write(&path, b"").unwrap();
            let files = Arc::new(OpenFiles::default());
            let full = get(&files, &path, None).await;
            assert_eq!(full.status, StatusCode::OK);
            assert_eq!(header(&full, header::CONTENT_LENGTH), "0");
            assert!(full.body.is_empty());
            let ranged = get(&files, &path, Some("bytes=0-")).await;
            assert_eq!(ranged.status, StatusCode::RANGE_NOT_SATISFIABLE);
            assert_eq!(header(&ranged, header::CONTENT_RANGE), "bytes */0");
        }

        /// The router keeps one cache for all requests: a file replaced between two requests is
        /// served new, bytes and validators, never from the old descriptor.
        #[tokio::test]
        async fn a_replaced_file_is_never_served_stale() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("kernel");
            let old = pattern(CHUNK + 5);
            std::fs::write(&path, &old).unwrap();
            let files = Arc::new(OpenFiles::default());
            let first = get(&files, &path, None).await;
            assert!(first.body == old);
            let new: Vec<u8> = old.iter().map(|b| !b).collect();
            let tmp = dir.path().join("kernel.new");
            std::fs::write(&tmp, &new).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            let second = get(&files, &path, None).await;
            assert!(second.body == new, "served the replaced file's bytes");
            assert_ne!(header(&second, header::ETAG), header(&first, header::ETAG));
            // Removed: 404, not the last descriptor.
            std::fs::remove_file(&path).unwrap();
            let gone = serve_file(&files, &path, &FileRequest::default(), false).await;
            assert_eq!(gone.unwrap_err().status(), StatusCode::NOT_FOUND);
        }
    }
}
