//! Option negotiation (RFC 2347): blksize (RFC 2348), tsize and timeout (RFC 2349), windowsize
//! (RFC 7440). Pure: the request's options and the server's limits in, the transfer parameters
//! and the OACK contents out.

use std::time::Duration;

/// Block size when the client negotiates none (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348's bounds on blksize.
pub const MIN_BLKSIZE: u16 = 8;
/// RFC 2348's upper bound on blksize.
pub const MAX_BLKSIZE: u16 = 65464;
/// IPv4 (20) + UDP (8) + TFTP DATA header (4): a block of `MTU - 32` fills one frame.
pub const HEADER_OVERHEAD: u32 = 32;
/// A window never holds more than this many bytes, whatever the configured limits (it is
/// buffered in memory for retransmission).
pub const MAX_WINDOW_BYTES: u64 = 8 * 1024 * 1024;

/// What the server is willing to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block size granted (config).
    pub max_blksize: u16,
    /// Largest window granted (config); 0 is treated as 1.
    pub max_windowsize: u16,
    /// MTU of the serving interface, when known: blocks are capped to `mtu - 32` so DATA is
    /// never fragmented.
    pub mtu: Option<u32>,
}

impl Limits {
    /// The largest block size this server grants: min(config, MTU - 32), within RFC 2348.
    pub fn blksize_cap(&self) -> u16 {
        let mut cap = u32::from(self.max_blksize.min(MAX_BLKSIZE));
        if let Some(mtu) = self.mtu {
            cap = cap.min(mtu.saturating_sub(HEADER_OVERHEAD));
        }
        u16::try_from(cap).unwrap_or(MAX_BLKSIZE).max(MIN_BLKSIZE)
    }
}

/// The parameters of one transfer after negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    /// The retransmission timeout the client asked for, if accepted.
    pub timeout: Option<Duration>,
    /// Whether the client asked for the transfer size (answered with the real size).
    pub tsize: bool,
    /// Accepted options in the client's order, lower-case names: the OACK's contents. Empty
    /// means no OACK is sent (RFC 2347: only when an option was accepted).
    pub oack: Vec<(String, String)>,
}

impl Negotiated {
    /// RFC 1350 defaults: no options.
    pub fn plain() -> Negotiated {
        Negotiated {
            blksize: DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout: None,
            tsize: false,
            oack: Vec::new(),
        }
    }
}

fn number(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Negotiates the options of a read request for a file of `file_size` bytes.
///
/// Out-of-range values are ignored (not echoed) except a too-large blksize or windowsize, which
/// is lowered to what the server grants (RFC 2348 and 7440 allow a smaller answer). Unknown
/// options and repeats of an option are ignored.
pub fn negotiate(requested: &[(&str, &str)], file_size: u64, limits: &Limits) -> Negotiated {
    let mut n = Negotiated::plain();
    let mut seen: Vec<&'static str> = Vec::new();
    // blksize first: the window's byte cap depends on it, whatever order the client used.
    let mut windowsize_request = None;
    for &(name, value) in requested {
        let name_lc = name.to_ascii_lowercase();
        let key: &'static str = match name_lc.as_str() {
            "blksize" => "blksize",
            "tsize" => "tsize",
            "timeout" => "timeout",
            "windowsize" => "windowsize",
            _ => continue,
        };
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let Some(v) = number(value) else { continue };
        match key {
            "blksize" if v >= u64::from(MIN_BLKSIZE) => {
                let granted = v.min(u64::from(limits.blksize_cap()));
                n.blksize = u16::try_from(granted).unwrap_or(DEFAULT_BLKSIZE);
                n.oack.push((key.into(), n.blksize.to_string()));
            }
            // RFC 2349: a read request carries tsize 0; the server answers with the size.
            "tsize" => {
                n.tsize = true;
                n.oack.push((key.into(), file_size.to_string()));
            }
            "timeout" if (1..=255).contains(&v) => {
                n.timeout = Some(Duration::from_secs(v));
                n.oack.push((key.into(), v.to_string()));
            }
            "windowsize" if (1..=65535).contains(&v) => {
                windowsize_request = Some((n.oack.len(), v));
                n.oack.push((key.into(), String::new()));
            }
            _ => {}
        }
    }
    if let Some((at, v)) = windowsize_request {
        let byte_cap = (MAX_WINDOW_BYTES / u64::from(n.blksize)).max(1);
        let granted = v.min(u64::from(limits.max_windowsize.max(1))).min(byte_cap);
        n.windowsize = u16::try_from(granted).unwrap_or(1);
        if let Some(slot) = n.oack.get_mut(at) {
            slot.1 = n.windowsize.to_string();
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_blksize: 1468,
        max_windowsize: 64,
        mtu: None,
    };

    fn oack(n: &Negotiated) -> Vec<(&str, &str)> {
        n.oack
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect()
    }

    #[test]
    fn negotiation_table() {
        // (request, limits, blksize, windowsize, timeout, oack)
        let mtu1000 = Limits {
            mtu: Some(1000),
            ..LIMITS
        };
        let big = Limits {
            max_blksize: 65535,
            max_windowsize: 65535,
            mtu: None,
        };
        type Row<'a> = (
            &'a [(&'a str, &'a str)],
            Limits,
            u16,
            u16,
            Option<u64>,
            &'a [(&'a str, &'a str)],
        );
        let table: &[Row] = &[
            // No options: RFC 1350, no OACK.
            (&[], LIMITS, 512, 1, None, &[]),
            // tsize probe of a PXE ROM: the real size.
            (
                &[("tsize", "0")],
                LIMITS,
                512,
                1,
                None,
                &[("tsize", "70000")],
            ),
            // blksize within limits is granted as asked.
            (
                &[("blksize", "1024")],
                LIMITS,
                1024,
                1,
                None,
                &[("blksize", "1024")],
            ),
            // Too big: capped to the config.
            (
                &[("blksize", "65464")],
                LIMITS,
                1468,
                1,
                None,
                &[("blksize", "1468")],
            ),
            // Capped to MTU - 32.
            (
                &[("blksize", "1468")],
                mtu1000,
                968,
                1,
                None,
                &[("blksize", "968")],
            ),
            // Above RFC 2348's maximum: capped to it when the config allows everything.
            (
                &[("blksize", "70000")],
                big,
                65464,
                1,
                None,
                &[("blksize", "65464")],
            ),
            // Below 8, not a number, empty: ignored, so no OACK.
            (&[("blksize", "7")], LIMITS, 512, 1, None, &[]),
            (&[("blksize", "abc")], LIMITS, 512, 1, None, &[]),
            (&[("blksize", "")], LIMITS, 512, 1, None, &[]),
            (&[("blksize", "-1")], LIMITS, 512, 1, None, &[]),
            (
                &[("blksize", "99999999999999999999999")],
                LIMITS,
                512,
                1,
                None,
                &[],
            ),
            // Exactly 8 is allowed.
            (&[("blksize", "8")], LIMITS, 8, 1, None, &[("blksize", "8")]),
            // timeout 1..=255 echoed; 0 and 256 ignored.
            (
                &[("timeout", "1")],
                LIMITS,
                512,
                1,
                Some(1),
                &[("timeout", "1")],
            ),
            (
                &[("timeout", "255")],
                LIMITS,
                512,
                1,
                Some(255),
                &[("timeout", "255")],
            ),
            (&[("timeout", "0")], LIMITS, 512, 1, None, &[]),
            (&[("timeout", "256")], LIMITS, 512, 1, None, &[]),
            // windowsize: capped to the config; 0 ignored.
            (
                &[("windowsize", "8")],
                LIMITS,
                512,
                8,
                None,
                &[("windowsize", "8")],
            ),
            (
                &[("windowsize", "65535")],
                LIMITS,
                512,
                64,
                None,
                &[("windowsize", "64")],
            ),
            (&[("windowsize", "0")], LIMITS, 512, 1, None, &[]),
            (&[("windowsize", "65536")], LIMITS, 512, 1, None, &[]),
            // The window's bytes are capped (8 MiB / 65464 = 128 blocks).
            (
                &[("windowsize", "65535"), ("blksize", "65464")],
                big,
                65464,
                128,
                None,
                &[("windowsize", "128"), ("blksize", "65464")],
            ),
            // Unknown options ignored; names are case-insensitive; the first repeat wins.
            (
                &[("multicast", ""), ("BLKSIZE", "1000"), ("blksize", "600")],
                LIMITS,
                1000,
                1,
                None,
                &[("blksize", "1000")],
            ),
            (&[("utimeout", "5000")], LIMITS, 512, 1, None, &[]),
            // Everything at once, in the client's order.
            (
                &[
                    ("tsize", "0"),
                    ("blksize", "1468"),
                    ("timeout", "6"),
                    ("windowsize", "16"),
                ],
                LIMITS,
                1468,
                16,
                Some(6),
                &[
                    ("tsize", "70000"),
                    ("blksize", "1468"),
                    ("timeout", "6"),
                    ("windowsize", "16"),
                ],
            ),
        ];
        for (i, (req, limits, blksize, windowsize, timeout, want_oack)) in table.iter().enumerate()
        {
            let n = negotiate(req, 70000, limits);
            assert_eq!(n.blksize, *blksize, "row {i}: {req:?}");
            assert_eq!(n.windowsize, *windowsize, "row {i}: {req:?}");
            assert_eq!(
                n.timeout,
                timeout.map(Duration::from_secs),
                "row {i}: {req:?}"
            );
            assert_eq!(oack(&n), *want_oack, "row {i}: {req:?}");
            assert_eq!(n.tsize, req.iter().any(|(k, _)| *k == "tsize"), "row {i}");
        }
    }

    #[test]
    fn blksize_cap_bounds() {
        assert_eq!(LIMITS.blksize_cap(), 1468);
        let tiny_mtu = Limits {
            mtu: Some(20),
            ..LIMITS
        };
        assert_eq!(tiny_mtu.blksize_cap(), MIN_BLKSIZE);
        let jumbo = Limits {
            max_blksize: 9000,
            max_windowsize: 1,
            mtu: Some(9000),
        };
        assert_eq!(jumbo.blksize_cap(), 8968);
        let zero_window = Limits {
            max_windowsize: 0,
            ..LIMITS
        };
        assert_eq!(
            negotiate(&[("windowsize", "4")], 0, &zero_window).windowsize,
            1
        );
    }
}
