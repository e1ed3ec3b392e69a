//! `POST /boot/report`: a booted system says it came up (or why it did not).
//!
//! The body is a form: `mac=52:54:00:12:34:56&stage=up`, or
//! `mac=...&stage=failed&detail=<text>`. The parser is pure; the handler asks the catalogue
//! whether the peer may report for that MAC (the address the machine holds or last booted
//! from), records a `system` boot event and answers 204. A peer that may not report gets 403;
//! a malformed body 400; a body over [`MAX_BODY`] bytes 413.

use std::net::IpAddr;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use flakeboot_catalogue::{BootEvent, BootStage, MacAddr, Outcome};

use crate::query::percent_decode;
use crate::routes::{App, Peer, plain};
use crate::stats::HttpBootStats;

/// Most bytes of a report body read; a longer one is refused (413) without reading it all.
pub const MAX_BODY: usize = 4096;

/// Most bytes of a failure's detail kept; a longer detail is cut there (at a character
/// boundary) and marked with `…`: the report still counts.
pub const MAX_DETAIL: usize = 1024;

/// What a booted system reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub mac: MacAddr,
    pub status: SystemStatus,
}

/// The system's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemStatus {
    /// `stage=up`: it reached its target.
    Up,
    /// `stage=failed`: it did not, and why (possibly empty).
    Failed { detail: String },
}

/// Why a report body was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("field {0:?} is not validly percent-encoded")]
    BadEncoding(String),
    #[error("field {0:?} is given twice")]
    Duplicate(&'static str),
    #[error("field {0:?} is missing")]
    Missing(&'static str),
    #[error("mac {0:?} is not a machine's MAC address")]
    BadMac(String),
    #[error("stage {0:?} is neither \"up\" nor \"failed\"")]
    BadStage(String),
}

/// Parse a report body. Unknown fields are ignored (a newer reporter may send more); a known
/// field given twice is an error, as is a missing `mac` or `stage`. Control characters in the
/// detail become spaces (it is shown in logs and pages), and it is cut to [`MAX_DETAIL`] bytes.
pub fn parse_report(body: &[u8]) -> Result<Report, ReportError> {
    let text = std::str::from_utf8(body).map_err(|_| ReportError::NotUtf8)?;
    let (mut mac, mut stage, mut detail) = (None, None, None);
    for pair in text.trim_end_matches(['\r', '\n']).split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, slot) = match key {
            "mac" => ("mac", &mut mac),
            "stage" => ("stage", &mut stage),
            "detail" => ("detail", &mut detail),
            _ => continue,
        };
        if slot.is_some() {
            return Err(ReportError::Duplicate(name));
        }
        let value = percent_decode(raw).ok_or_else(|| ReportError::BadEncoding(name.into()))?;
        *slot = Some(value);
    }
    let mac_text = mac.ok_or(ReportError::Missing("mac"))?;
    let mac = mac_text
        .parse::<MacAddr>()
        .ok()
        .filter(MacAddr::is_station)
        .ok_or_else(|| ReportError::BadMac(shorten(&mac_text, 64)))?;
    let status = match stage.ok_or(ReportError::Missing("stage"))?.as_str() {
        "up" => SystemStatus::Up,
        "failed" => SystemStatus::Failed {
            detail: clean_detail(detail.as_deref().unwrap_or("")),
        },
        other => return Err(ReportError::BadStage(shorten(other, 64))),
    };
    Ok(Report { mac, status })
}

/// One line, at most [`MAX_DETAIL`] bytes (then `…`).
fn clean_detail(detail: &str) -> String {
    let line: String = detail
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() <= MAX_DETAIL {
        return line;
    }
    let mut cut = MAX_DETAIL;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = line.get(..cut).unwrap_or_default().to_owned();
    out.push('…');
    out
}

/// At most `max` characters, for error messages and logs.
fn shorten(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Report {
    /// The boot event of this report, from `peer`.
    pub fn event(&self, peer: IpAddr) -> BootEvent {
        let (outcome, detail) = match &self.status {
            SystemStatus::Up => (Outcome::Ok, "up".to_owned()),
            SystemStatus::Failed { detail } if detail.is_empty() => {
                (Outcome::Failed, "no detail given".to_owned())
            }
            SystemStatus::Failed { detail } => (Outcome::Failed, detail.clone()),
        };
        BootEvent::new(BootStage::System, outcome, detail)
            .mac(self.mac)
            .peer(peer)
    }
}

/// `POST /boot/report`.
pub(crate) async fn report(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let stats = &app.stats;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        tracing::debug!(?peer, ?declared, "boot report: body too large");
        HttpBootStats::bump(&stats.bad_requests);
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "report body too large\n");
    }
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::debug!(?peer, "boot report: body unreadable or too large: {e}");
            HttpBootStats::bump(&stats.bad_requests);
            return plain(StatusCode::BAD_REQUEST, "bad report body\n");
        }
    };
    let report = match parse_report(&bytes) {
        Ok(report) => report,
        Err(e) => {
            tracing::debug!(?peer, "boot report refused: {e}");
            HttpBootStats::bump(&stats.bad_requests);
            return plain(
                StatusCode::BAD_REQUEST,
                "bad report: expected mac=<MAC>&stage=up, or stage=failed&detail=<text>\n",
            );
        }
    };
    // The check may read the store (router-mode leases): off the async threads.
    let catalogue = &app.boot.catalogue;
    let (check, mac) = (catalogue.clone(), report.mac);
    let accepted = match peer {
        Some(p) => tokio::task::spawn_blocking(move || check.accept_report(mac, p))
            .await
            .unwrap_or(false),
        None => false,
    };
    let Some(peer) = peer.filter(|_| accepted) else {
        tracing::info!(
            ?peer,
            mac = %report.mac,
            "boot report refused: the address is not the one this MAC holds or last booted from"
        );
        HttpBootStats::bump(&stats.refused_reports);
        return plain(
            StatusCode::FORBIDDEN,
            "this address may not report for that machine\n",
        );
    };
    tracing::debug!(%peer, mac = %report.mac, status = ?report.status, "boot report");
    HttpBootStats::bump(&stats.reports);
    catalogue.record(report.event(peer));
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn ok(body: &str) -> Report {
        parse_report(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn parses_up_and_failed() {
        assert_eq!(
            ok("mac=52:54:00:12:34:56&stage=up"),
            Report {
                mac: MAC,
                status: SystemStatus::Up
            }
        );
        assert_eq!(ok("stage=up&mac=52%3A54%3A00%3A12%3A34%3A56\n").mac, MAC);
        assert_eq!(
            ok("mac=52-54-00-12-34-56&stage=failed&detail=sshd.service+failed%3A+exit%0A1&x=y")
                .status,
            SystemStatus::Failed {
                detail: "sshd.service failed: exit 1".into()
            }
        );
        assert_eq!(
            ok("mac=52:54:00:12:34:56&stage=failed").status,
            SystemStatus::Failed {
                detail: String::new()
            }
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        let cases: [(&[u8], ReportError); 11] = [
            (b"", ReportError::Missing("mac")),
            (b"stage=up", ReportError::Missing("mac")),
            (b"mac=52:54:00:12:34:56", ReportError::Missing("stage")),
            (b"mac=nope&stage=up", ReportError::BadMac("nope".into())),
            (
                b"mac=ff:ff:ff:ff:ff:ff&stage=up",
                ReportError::BadMac("ff:ff:ff:ff:ff:ff".into()),
            ),
            (
                b"mac=01-00-5e-00-00-01&stage=up",
                ReportError::BadMac("01-00-5e-00-00-01".into()),
            ),
            (
                b"mac=52:54:00:12:34:56&stage=down",
                ReportError::BadStage("down".into()),
            ),
            (
                b"mac=52:54:00:12:34:56&stage=up&stage=failed",
                ReportError::Duplicate("stage"),
            ),
            (
                b"mac=52:54:00:12:34:56&stage=failed&detail=%zz",
                ReportError::BadEncoding("detail".into()),
            ),
            (b"mac=\xff&stage=up", ReportError::NotUtf8),
            (
                b"{\"mac\":\"52:54:00:12:34:56\",\"stage\":\"up\"}",
                ReportError::Missing("mac"),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                parse_report(body),
                Err(expected),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_long_detail_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_DETAIL);
        let body = format!("mac=52:54:00:12:34:56&stage=failed&detail={long}");
        let SystemStatus::Failed { detail } = ok(&body).status else {
            panic!()
        };
        assert!(detail.ends_with('…'));
        assert!(detail.len() <= MAX_DETAIL + '…'.len_utf8());
        assert!(detail.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_event_says_up_or_why_not() {
        let peer: IpAddr = "10.77.0.50".parse().unwrap();
        let up = ok("mac=52:54:00:12:34:56&stage=up").event(peer);
        assert_eq!(
            (up.stage, up.outcome, up.mac, up.peer, up.detail.as_str()),
            (BootStage::System, Outcome::Ok, Some(MAC), Some(peer), "up")
        );
        let failed = ok("mac=52:54:00:12:34:56&stage=failed&detail=disk+full").event(peer);
        assert_eq!(
            (failed.outcome, failed.detail.as_str()),
            (Outcome::Failed, "disk full")
        );
        let bare = ok("mac=52:54:00:12:34:56&stage=failed").event(peer);
        assert_eq!(bare.detail, "no detail given");
    }
}
