//! A file body that knows whether it was delivered. The boot event of a kernel, initrd or iPXE
//! download is recorded when its body ends, not when the response starts: `ok` only when every
//! byte was handed to the connection; a client that hangs up part way (a cut-off initrd) is
//! recorded as failed with how far it got.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use flakeboot_catalogue::{BootEvent, BootStage, Catalogue, MacAddr, Outcome};
use futures_util::Stream;

/// The event to record once the body ends.
pub(crate) struct Pending {
    pub catalogue: Arc<dyn Catalogue>,
    pub stage: BootStage,
    pub mac: Option<MacAddr>,
    pub peer: Option<std::net::IpAddr>,
    /// `GET /boot/demo/static/initrd 200 bytes 0-99/100`.
    pub detail: String,
    /// Bytes the body carries.
    pub expected: u64,
    /// When the response started.
    pub started: std::time::SystemTime,
    /// The host whose file this is, for a `GET` of a host's kernel or initrd.
    pub host: Option<String>,
}

impl Pending {
    pub(crate) fn finish(self, sent: u64, error: Option<String>) {
        let (outcome, detail) = match error {
            None if sent == self.expected => (Outcome::Ok, self.detail),
            None => (
                Outcome::Failed,
                format!(
                    "{}: cut off after {sent} of {} bytes",
                    self.detail, self.expected
                ),
            ),
            Some(why) => (
                Outcome::Failed,
                format!(
                    "{}: cut off after {sent} of {} bytes ({why})",
                    self.detail, self.expected
                ),
            ),
        };
        let mut event = BootEvent::new(self.stage, outcome, detail)
            .started(self.started)
            .bytes(sent);
        event.mac = self.mac;
        event.peer = self.peer;
        event.host = self.host;
        self.catalogue.record(event);
    }
}

/// `body` with its delivery recorded through `pending`.
pub(crate) fn tracked(body: Body, pending: Pending) -> Body {
    Body::from_stream(Tracked {
        inner: body.into_data_stream(),
        sent: 0,
        pending: Some(pending),
    })
}

struct Tracked {
    inner: axum::body::BodyDataStream,
    sent: u64,
    pending: Option<Pending>,
}

impl Stream for Tracked {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                self.sent += chunk.len() as u64;
                // hyper stops polling once Content-Length bytes went out: the last byte is the
                // end.
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|p| self.sent >= p.expected)
                    && let Some(p) = self.pending.take()
                {
                    p.finish(self.sent, None);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let why = format!("read error: {e}");
                if let Some(p) = self.pending.take() {
                    p.finish(self.sent, Some(why));
                }
            }
            Poll::Ready(None) => {
                if let Some(p) = self.pending.take() {
                    p.finish(self.sent, None);
                }
            }
            Poll::Pending => {}
        }
        next
    }
}

impl Drop for Tracked {
    /// The connection dropped the body before its end: the client went away.
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish(self.sent, Some("the client closed the connection".into()));
        }
    }
}
