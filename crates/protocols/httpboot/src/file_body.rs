//! File bodies a connection writes itself, with `sendfile(2)`.
//!
//! hyper writes a body from the bytes it is handed and never gives the socket away (see
//! [`crate::open_files`]). A server with its own HTTP/1.1 loop (the daemon's boot port) marks each
//! request with [`WritesFileBodies`]; the file routes then read nothing: the response carries
//! the headers, an empty body and a [`FileBodySlot`] in its extensions, from which the
//! connection takes the [`FileBody`] (the open descriptor and the byte range) and moves the
//! bytes from the page cache to the socket. The boot event is recorded when the connection
//! says how the body ended ([`FileBody::finish`]), or, if it never says, when the body is
//! dropped: as cut off after the bytes counted so far.

use std::fmt;
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, PoisonError};

use crate::delivery::Pending;
use crate::open_files::OpenFile;

/// A request extension: the connection writes a response's [`FileBody`] itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct WritesFileBodies;

/// A response extension holding the body to send. `Clone` because extensions must be; the
/// body is taken once.
#[derive(Clone)]
pub struct FileBodySlot(Arc<Mutex<Option<FileBody>>>);

impl FileBodySlot {
    pub(crate) fn new(body: FileBody) -> Self {
        FileBodySlot(Arc::new(Mutex::new(Some(body))))
    }

    /// The body, the first time it is asked for.
    pub fn take(&self) -> Option<FileBody> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl fmt::Debug for FileBodySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBodySlot").finish_non_exhaustive()
    }
}

/// The bytes `start..end` of an open boot file, and the boot event to record once they went.
pub struct FileBody {
    file: Arc<OpenFile>,
    start: u64,
    end: u64,
    sent: u64,
    pending: Option<Pending>,
}

impl FileBody {
    pub(crate) fn new(file: Arc<OpenFile>, range: &RangeInclusive<u64>) -> Self {
        FileBody {
            file,
            start: *range.start(),
            end: range.end().saturating_add(1),
            sent: 0,
            pending: None,
        }
    }

    pub(crate) fn record_with(&mut self, pending: Pending) {
        self.pending = Some(pending);
    }

    /// The file to read from (with `pread` or `sendfile` at an offset: never seek it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The first byte to send.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last byte to send.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Counts bytes the connection handed to the socket.
    pub fn sent(&mut self, n: u64) {
        self.sent = self.sent.saturating_add(n);
    }

    /// The body ended: every byte went (`None`), or it stopped for `error`. Records the event.
    pub fn finish(mut self, error: Option<String>) {
        if let Some(p) = self.pending.take() {
            p.finish(self.sent, error);
        }
    }
}

impl Drop for FileBody {
    /// Dropped unfinished: the connection ended before the body did.
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish(
                self.sent,
                Some("the connection ended before the body".into()),
            );
        }
    }
}

impl fmt::Debug for FileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBody")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}
