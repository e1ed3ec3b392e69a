//! Boot files kept open between requests, and the bodies read from them.
//!
//! # Two ways a body leaves
//! nginx sends a file with `sendfile(2)`: the kernel moves page-cache pages to the socket, no
//! copy through user space and no thread hop. hyper cannot: it owns the socket and writes a
//! body only from the bytes it is handed (`http_body::Body` frames of `Bytes`; the only way to
//! the raw socket is `hyper::upgrade`, for 101 and CONNECT). So the boot port runs its own
//! HTTP/1.1 loop ([`crate::h1`]), which marks each request with
//! [`WritesFileBodies`](crate::WritesFileBodies); a file response then carries the open
//! descriptor and the range ([`FileBody`](crate::FileBody)) and the loop sends it with
//! `sendfile`. Under any other server (hyper, the tests' `axum::serve`) bodies are read as
//! below.
//!
//! # Read bodies, and what both ways share
//! - Open files are cached per path ([`OpenFiles`]): a request costs one `stat(2)` of the path,
//!   not an open, an `fstat` and a seek. An entry is used only while the path still names the
//!   same file: device, inode, length and mtime (to the nanosecond) all equal to what the open
//!   descriptor showed. A file replaced (a new inode, as a rename or a new generation gives) or
//!   rewritten in place (a new length or mtime) is opened again, so its bytes and validators are
//!   never stale. The cache holds at most [`MAX_OPEN`] files and drops one unused for [`IDLE`],
//!   so a deleted generation's files are not held open for long.
//! - Bodies are positioned reads (`pread`, [`FileExt::read_exact_at`]) of up to [`CHUNK`] bytes
//!   on the blocking pool, each becoming one `Bytes` that hyper writes without copying it again:
//!   one thread hop per 512 KiB instead of one per 64 KiB. The lookup, the plan and the first
//!   chunk go in one trip ([`first_chunk`]), so a 64 KiB Range request costs one hop where it
//!   cost four (open, fstat, seek, read). Reads at an offset share the cached descriptor safely
//!   (no seek).
//! - No `mmap`: a mapped file that shrinks under us raises SIGBUS and kills the daemon, the
//!   workspace denies `unsafe_code`, and boot files are not guaranteed immutable (a host's
//!   kernel may be any path in the config). A read of a file that shrank after it was planned
//!   fails with `UnexpectedEof`: the body ends with an error, the connection is cut, and the
//!   boot event says the transfer was cut off, as before. Under `sendfile` the same file makes
//!   the call return 0 before the planned end: the same cut-off.

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io;
use std::ops::RangeInclusive;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};

use crate::file_response::FileError;

/// Bytes read per blocking call, at most: one body chunk.
pub(crate) const CHUNK: usize = 512 * 1024;
/// The smallest chunk, when many bodies are in flight.
pub(crate) const MIN_CHUNK: usize = 64 * 1024;
/// What the chunks of all bodies in flight may hold together: the chunk shrinks from [`CHUNK`]
/// toward [`MIN_CHUNK`] as bodies are added (32 at full size; a 200-client storm gets 80 KiB
/// chunks), so memory stays bounded however many machines boot at once. Each body holds about
/// two chunks (one being written, one read).
pub(crate) const BODY_BUDGET: usize = 16 * 1024 * 1024;
/// Files kept open at most.
pub(crate) const MAX_OPEN: usize = 32;
/// An entry unused this long is closed at the next lookup.
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// What makes an open descriptor still the file a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    fn of(meta: &Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// One open regular file and its metadata as of the last check.
#[derive(Debug)]
pub(crate) struct OpenFile {
    file: File,
    meta: Metadata,
    identity: Identity,
}

impl OpenFile {
    /// The metadata the file was validated with (length, mtime, inode).
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// `len` bytes from `offset`. Blocking. `UnexpectedEof` if the file is now shorter.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }
}

impl std::os::fd::AsFd for OpenFile {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    file: Arc<OpenFile>,
    used: Instant,
}

/// A bounded cache of open boot files, keyed by path and revalidated on every lookup.
#[derive(Debug, Default)]
pub(crate) struct OpenFiles {
    /// Most recently used first; short enough to scan.
    entries: Mutex<VecDeque<Entry>>,
    /// Bodies being sent now (see [`BODY_BUDGET`]).
    bodies: Arc<AtomicUsize>,
}

/// One body in flight, counted while it lives.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// The chunk size for a body now: [`BODY_BUDGET`] shared by the bodies in flight.
    pub(crate) fn chunk(&self) -> usize {
        chunk_for(self.0.load(Ordering::Relaxed))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The chunk size when `bodies` are in flight.
fn chunk_for(bodies: usize) -> usize {
    (BODY_BUDGET / bodies.max(1)).clamp(MIN_CHUNK, CHUNK)
}

impl OpenFiles {
    /// Count a body from now until the returned guard is dropped (with its stream).
    pub(crate) fn in_flight(&self) -> InFlight {
        self.bodies.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(&self.bodies))
    }

    /// Whether the cache has an entry for `path` (still to be checked against the file).
    pub(crate) fn holds(&self, path: &Path) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|e| e.path == path)
    }

    /// The regular file `path` names now, from the cache when it is still the same file.
    /// Blocking (a `stat`, and an `open` on a miss): call it on the blocking pool.
    pub(crate) fn open(&self, path: &Path) -> Result<Arc<OpenFile>, FileError> {
        let now = Instant::now();
        let current = std::fs::metadata(path).map_err(|source| FileError::Open {
            path: path.to_owned(),
            source,
        });
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| now.duration_since(e.used) < IDLE);
        let cached = entries.iter().position(|e| e.path == path);
        // Gone, or no longer a regular file (never opened: a FIFO would block the open until a
        // writer came): the error, and the entry closed.
        let current = match current {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) | Err(_) => {
                if let Some(i) = cached {
                    entries.remove(i);
                }
                return Err(current.err().unwrap_or_else(|| FileError::NotRegular {
                    path: path.to_owned(),
                }));
            }
        };
        // A stale entry is taken out here and dropped (closed) once no body reads from it.
        if let Some(i) = cached
            && let Some(mut entry) = entries.remove(i)
            && entry.file.identity == Identity::of(&current)
        {
            entry.used = now;
            let file = entry.file.clone();
            entries.push_front(entry);
            return Ok(file);
        }
        // Opening may block on the disk: not under the lock.
        drop(entries);
        let file = Arc::new(open_regular(path)?);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| e.path != path);
        entries.truncate(MAX_OPEN - 1);
        entries.push_front(Entry {
            path: path.to_owned(),
            file: file.clone(),
            used: now,
        });
        Ok(file)
    }

    /// How many files are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Open `path` and check it is a regular file. Blocking.
fn open_regular(path: &Path) -> Result<OpenFile, FileError> {
    let file = File::open(path).map_err(|source| FileError::Open {
        path: path.to_owned(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| FileError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_owned(),
        });
    }
    Ok(OpenFile {
        identity: Identity::of(&meta),
        meta,
        file,
    })
}

/// The length of the chunk of at most `chunk` bytes that starts at `pos` of a body ending
/// before `end`.
fn chunk_len(pos: u64, end: u64, chunk: usize) -> usize {
    usize::try_from(end.saturating_sub(pos)).map_or(chunk, |left| left.min(chunk))
}

/// The first chunk of the body `range` of `file`, at most `chunk` bytes. Blocking: read it on
/// the blocking pool with the lookup (one trip for a small Range request).
pub(crate) fn first_chunk(
    file: &OpenFile,
    range: &RangeInclusive<u64>,
    chunk: usize,
) -> io::Result<Bytes> {
    let start = *range.start();
    file.read_at(
        start,
        chunk_len(start, range.end().saturating_add(1), chunk),
    )
}

/// The bytes `range` of `file`: `first` (from [`first_chunk`]), then chunks of at most
/// [`InFlight::chunk`], each read on the blocking pool when the connection asks for it. The
/// body is counted in flight until the stream is dropped.
pub(crate) fn body(
    file: Arc<OpenFile>,
    range: RangeInclusive<u64>,
    first: Bytes,
    counted: InFlight,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let end = range.end().saturating_add(1);
    let next = range.start().saturating_add(first.len() as u64);
    let counted = Arc::new(counted);
    let rest = futures_util::stream::try_unfold((file, next), move |(file, pos)| {
        let counted = Arc::clone(&counted);
        async move {
            if pos >= end {
                return Ok(None);
            }
            let len = chunk_len(pos, end, counted.chunk());
            let reader = file.clone();
            let chunk = tokio::task::spawn_blocking(move || reader.read_at(pos, len))
                .await
                .map_err(io::Error::other)??;
            Ok(Some((chunk, (file, pos + len as u64))))
        }
    });
    futures_util::stream::once(std::future::ready(Ok(first))).chain(rest)
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    async fn collect(file: Arc<OpenFile>, range: RangeInclusive<u64>) -> io::Result<Vec<u8>> {
        let first = first_chunk(&file, &range, CHUNK)?;
        let counted = OpenFiles::default().in_flight();
        let chunks: Vec<Bytes> = body(file, range, first, counted).try_collect().await?;
        Ok(chunks.concat())
    }

    #[test]
    fn a_hit_reuses_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        write(&path, b"0123456789");
        let files = OpenFiles::default();
        let a = files.open(&path).unwrap();
        let b = files.open(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(files.len(), 1);
    }

    /// A new file renamed over the path (a new inode, same length and maybe the same mtime
    /// second) is opened again: its bytes, never the old ones.
    #[tokio::test]
    async fn a_replaced_file_is_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        write(&path, b"old bytes!");
        let files = OpenFiles::default();
        let old = files.open(&path).unwrap();
        let next = dir.path().join("initrd.new");
        write(&next, b"new bytes!");
        std::fs::rename(&next, &path).unwrap();
        let new = files.open(&path).unwrap();
        assert!(!Arc::ptr_eq(&old, &new));
        assert_ne!(old.metadata().ino(), new.metadata().ino());
        assert_eq!(collect(new, 0..=9).await.unwrap(), b"new bytes!");
        assert_eq!(files.len(), 1);
    }

    /// The same inode rewritten in place with a new mtime, or a new length: the cached entry's
    /// metadata (and so the ETag) is refreshed.
    #[test]
    fn a_file_rewritten_in_place_is_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel");
        write(&path, b"aaaa");
        let files = OpenFiles::default();
        let first = files.open(&path).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let later = first.metadata().modified().unwrap() + Duration::from_secs(5);
        f.set_modified(later).unwrap();
        let second = files.open(&path).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.metadata().modified().unwrap(), later);
        f.write_all_at(b"bbbb", 4).unwrap();
        f.set_modified(later).unwrap();
        let third = files.open(&path).unwrap();
        assert_eq!(third.metadata().len(), 8);
    }

    #[test]
    fn a_deleted_file_is_not_found_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        write(&path, b"x");
        let files = OpenFiles::default();
        files.open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        match files.open(&path) {
            Err(e @ FileError::Open { .. }) => {
                assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(files.len(), 0);
        assert!(matches!(
            files.open(dir.path()),
            Err(FileError::NotRegular { .. })
        ));
        // A cached file replaced by a directory: not regular, and the entry is closed.
        write(&path, b"x");
        files.open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(
            files.open(&path),
            Err(FileError::NotRegular { .. })
        ));
        assert_eq!(files.len(), 0);
    }

    #[test]
    fn the_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::default();
        for i in 0..MAX_OPEN + 5 {
            let path = dir.path().join(format!("f{i}"));
            write(&path, b"x");
            files.open(&path).unwrap();
        }
        assert_eq!(files.len(), MAX_OPEN);
        // The most recent is kept.
        let last = dir.path().join(format!("f{}", MAX_OPEN + 4));
        let entries = files.entries.lock().unwrap();
        assert_eq!(entries.front().unwrap().path, last);
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
            .collect()
    }

    /// The chunk shrinks as bodies are added, never below MIN_CHUNK, and grows back as they end.
    #[tokio::test]
    async fn many_bodies_in_flight_share_the_budget() {
        assert_eq!(chunk_for(0), CHUNK);
        assert_eq!(chunk_for(32), CHUNK);
        assert_eq!(chunk_for(200), BODY_BUDGET / 200);
        assert!(chunk_for(200) < 100 * 1024);
        assert_eq!(chunk_for(10_000), MIN_CHUNK);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        let data = pattern(3 * CHUNK);
        write(&path, &data);
        let files = OpenFiles::default();
        let file = files.open(&path).unwrap();
        let others: Vec<InFlight> = (0..199).map(|_| files.in_flight()).collect();
        let all = 0..=data.len() as u64 - 1;
        let counted = files.in_flight();
        assert_eq!(counted.chunk(), BODY_BUDGET / 200);
        let first = first_chunk(&file, &all, counted.chunk()).unwrap();
        let stream = body(file.clone(), all.clone(), first, counted);
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= BODY_BUDGET / 200));
        assert_eq!(chunks.concat(), data);
        // The finished body and the 199 others are no longer counted.
        drop(others);
        assert_eq!(files.in_flight().chunk(), CHUNK);
    }

    /// More than one chunk, an odd length: every byte in order, chunks of at most CHUNK.
    #[tokio::test]
    async fn a_body_longer_than_a_chunk_is_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        let data = pattern(2 * CHUNK + 12_345);
        write(&path, &data);
        let file = OpenFiles::default().open(&path).unwrap();
        let all = 0..=data.len() as u64 - 1;
        let first = first_chunk(&file, &all, CHUNK).unwrap();
        let counted = OpenFiles::default().in_flight();
        let chunks: Vec<Bytes> = body(file.clone(), all, first, counted)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert_eq!(chunks.concat(), data);
        // A range across the chunk boundary, and the last byte alone.
        let from = CHUNK as u64 - 7;
        let got = collect(file.clone(), from..=from + 99).await.unwrap();
        assert_eq!(got, &data[from as usize..from as usize + 100]);
        let last = data.len() as u64 - 1;
        assert_eq!(
            collect(file, last..=last).await.unwrap(),
            &data[data.len() - 1..]
        );
    }

    /// A file cut short after it was planned: the body fails, it is never padded or ended
    /// early as if complete.
    #[tokio::test]
    async fn a_file_that_shrank_fails_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        write(&path, &pattern(CHUNK + 100));
        let file = OpenFiles::default().open(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(CHUNK as u64 + 10)
            .unwrap();
        let err = collect(file.clone(), 0..=CHUNK as u64 + 99)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // The first chunk too (read before the response starts: a 500, see file_response).
        let err = first_chunk(&file, &(CHUNK as u64..=CHUNK as u64 + 99), CHUNK).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
