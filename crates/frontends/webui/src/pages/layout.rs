//! The page frame (header, navigation, styles) and small pieces every page uses.

use std::time::SystemTime;

use maud::{DOCTYPE, Markup, html};

use crate::auth::guard::CSRF_FIELD;

/// The stylesheet, embedded in the binary.
pub const STYLE_CSS: &str = include_str!("../../assets/style.css");
/// The live-update script of the build page, embedded in the binary.
pub const LIVE_JS: &str = include_str!("../../assets/live.js");
/// A file upload with a progress bar, shared by the two scripts below.
pub const UPLOAD_JS: &str = include_str!("../../assets/upload.js");
/// The Firmware page's upload with progress, embedded in the binary.
pub const FIRMWARE_JS: &str = include_str!("../../assets/firmware.js");
/// The setup page's restore of a backup (progress bar, the appliance's answer).
pub const RESTORE_JS: &str = include_str!("../../assets/restore.js");

/// Which navigation entry is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The dashboard.
    Dashboard,
    /// Machines.
    Machines,
    /// Hosts.
    Hosts,
    /// Flakes and builds.
    Flakes,
    /// Remote access over WireGuard.
    RemoteAccess,
    /// Settings.
    Settings,
}

/// What the frame needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The page title.
    pub title: &'a str,
    /// The active navigation entry.
    pub nav: Nav,
    /// The session's CSRF token (for the logout form).
    pub csrf: &'a str,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · flakeboot" }
            link rel="stylesheet" href="/static/style.css";
        }
    }
}

/// A full page with the navigation bar.
pub fn page(frame: Frame<'_>, body: Markup) -> Markup {
    let link = |nav: Nav, href: &str, text: &str| {
        html! { a href=(href) class=[(frame.nav == nav).then_some("active")] { (text) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(frame.title))
            body {
                header.top {
                    div.bar {
                        a.brand href="/" { "flake" span { "boot" } }
                        nav.main {
                            a href="/" class=[(frame.nav == Nav::Dashboard).then_some("active")] {
                                span.wide-only { "Dashboard" } span.phone-only { "Home" }
                            }
                            (link(Nav::Machines, "/machines", "Machines"))
                            (link(Nav::Hosts, "/hosts", "Hosts"))
                            (link(Nav::Flakes, "/flakes", "Flakes"))
                            a href="/vpn" class=[(frame.nav == Nav::RemoteAccess).then_some("active")] {
                                "Remote" span.wide-only { " access" }
                            }
                            (link(Nav::Settings, "/settings", "Settings"))
                        }
                        form.logout method="post" action="/logout" {
                            (csrf_field(frame.csrf))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A centred page without navigation (setup, login, errors).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                div.center-page {
                    div.card {
                        span.brand { "flake" span { "boot" } }
                        (body)
                    }
                }
            }
        }
    }
}

/// A plain message page: what the user sees when something fails.
pub fn message_page(title: &str, message: &str) -> Markup {
    bare_page(
        title,
        html! {
            h1 { (title) }
            p { (message) }
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(csrf); }
}

/// A field's error message, if any.
pub fn field_error(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { div.field-error role="alert" { (e) } }
    }
}

/// "3 min ago" style relative time, or "never".
pub fn ago(at: SystemTime, now: SystemTime) -> String {
    let Ok(d) = now.duration_since(at) else {
        return "just now".into();
    };
    let s = d.as_secs();
    match s {
        0..=9 => "just now".into(),
        10..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A UTC timestamp like `2026-11-22 01:02:03 UTC`.
pub fn timestamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn times_read_like_a_person_wrote_them() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(timestamp(t), "2026-11-18 11:06:40 UTC");
        assert_eq!(timestamp(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(ago(t, t + Duration::from_secs(5)), "just now");
        assert_eq!(ago(t, t + Duration::from_secs(125)), "2 min ago");
        assert_eq!(ago(t, t + Duration::from_secs(7300)), "2 h ago");
        assert_eq!(ago(t + Duration::from_secs(1), t), "just now");
    }

    #[test]
    fn text_is_escaped() {
        let page = message_page("Oops", "<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }
}
