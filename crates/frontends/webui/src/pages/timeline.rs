//! A boot attempt on a page: a picture on a time axis (server-rendered SVG: one bar per stage,
//! the failed stage red, the report or "no report" at the end), the row of stages with their
//! details, and the verdict. The attempts and verdicts themselves are the application layer's
//! ([`flakeboot_appliance::attempts`]); this only draws them.

use std::time::{Duration, SystemTime};

use flakeboot_appliance::attempts::{Attempt, BootState, StageState, Verdict};
use flakeboot_appliance::wire::logs::severity_name;
use flakeboot_store::LogRecord;
use maud::{Markup, html};

use crate::pages::layout::timestamp;

/// The picture's width in SVG units (it scales to the card).
const WIDTH: f64 = 640.0;
/// Where the bars begin (stage names on the left).
const GUTTER: f64 = 64.0;
/// Room at the right for the end's label.
const END_ROOM: f64 = 120.0;
/// One stage's row.
const ROW: f64 = 18.0;
/// The newest log lines shown under a boot.
pub const LINES_SHOWN: usize = 200;

/// A verdict as a badge.
pub fn badge(v: &Verdict) -> Markup {
    let class = match v.state {
        BootState::Up => "badge ok",
        BootState::Failed => "badge bad",
        BootState::NoReport => "badge warn",
        BootState::Booting => "badge run",
        BootState::Offline | BootState::Local | BootState::Never => "badge",
    };
    html! { span class=(class) { (v.state.label()) } }
}

fn class(state: StageState) -> &'static str {
    match state {
        StageState::Ok => "ok",
        StageState::Declined => "declined",
        StageState::Failed => "failed",
        StageState::Skipped => "skipped",
        StageState::NotReached => "missing",
    }
}

fn state_text(state: StageState) -> &'static str {
    match state {
        StageState::Ok => "✓ done",
        StageState::Declined => "declined",
        StageState::Failed => "✗ failed",
        StageState::Skipped => "skipped",
        StageState::NotReached => "not reached",
    }
}

fn fill(state: StageState) -> &'static str {
    match state {
        StageState::Ok => "#2f8f4e",
        StageState::Failed => "#c8372d",
        StageState::Declined => "#c98a06",
        StageState::Skipped | StageState::NotReached => "#b8bec6",
    }
}

/// "850 ms", "4.2 s", "3 min 5 s".
pub fn short_span(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// "1.2 MB", "70 kB", "512 B".
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{} kB", b / 1_000),
        b => format!("{b} B"),
    }
}

/// The attempt on a time axis, as SVG markup: a row per stage it reached, a bar from the
/// stage's start to its end (at least a sliver), and the end (report, no report, waiting) at
/// the right.
pub fn svg(attempt: &Attempt, verdict: &Verdict, now: SystemTime) -> Markup {
    let t0 = attempt.started;
    let end_at = match (&attempt.system, verdict.state) {
        (_, BootState::Failed) if attempt.console.is_some() => {
            verdict.ended.unwrap_or(attempt.ended)
        }
        (Some(r), _) => r.at,
        (None, BootState::Booting) => now.max(attempt.ended),
        _ => attempt.ended,
    };
    let span = end_at.duration_since(t0).unwrap_or_default().as_secs_f64();
    let scale = (WIDTH - GUTTER - END_ROOM) / span.max(0.001);
    let x = |t: SystemTime| GUTTER + t.duration_since(t0).unwrap_or_default().as_secs_f64() * scale;
    let rows: Vec<_> = attempt
        .stages
        .iter()
        .filter(|s| s.started.is_some())
        .collect();
    let height = ROW * (rows.len() as f64 + 1.0) + 16.0;
    let axis_y = ROW * rows.len() as f64 + 6.0;
    let end_x = x(end_at);
    let (end_text, end_fill) = match verdict.state {
        BootState::Up => ("up", "#2f8f4e"),
        BootState::Offline => ("up, now offline", "#5b6470"),
        BootState::Failed if attempt.system.is_some() || attempt.console.is_some() => {
            ("failed", "#c8372d")
        }
        BootState::Failed => ("stopped", "#c8372d"),
        BootState::NoReport => ("no report", "#c98a06"),
        BootState::Booting => ("waiting…", "#3a6fc4"),
        BootState::Local => ("local disk", "#5b6470"),
        BootState::Never => ("", "#b8bec6"),
    };
    let label = format!(
        "Boot on a time axis: {} over {}",
        verdict.detail,
        short_span(Duration::from_secs_f64(span))
    );
    html! {
        svg.timeline-svg viewBox=(format!("0 0 {WIDTH} {height:.0}")) role="img" aria-label=(label)
            xmlns="http://www.w3.org/2000/svg" {
            @for (i, s) in rows.iter().enumerate() {
                @let y = ROW * i as f64 + 2.0;
                @let x1 = s.started.map_or(GUTTER, x);
                @let x2 = s.ended.map_or(x1, x).max(x1 + 3.0);
                // An instant step (one event, no start of its own) gets no label: "0 ms" would
                // claim a measurement.
                @let took = s.duration().filter(|d| !d.is_zero()).map(short_span).unwrap_or_default();
                @let bytes = s.bytes.map(size).unwrap_or_default();
                g class={ "bar " (class(s.state)) } {
                    title { (s.stage.label()) ": " (state_text(s.state)) " " (took) " " (bytes) " — " (s.detail) }
                    text x="0" y=(format!("{:.1}", y + 11.0)) font-size="11" fill="#4a5560" { (s.stage.label()) }
                    rect x=(format!("{x1:.1}")) y=(format!("{y:.1}")) width=(format!("{:.1}", x2 - x1))
                        height="12" rx="2" fill=(fill(s.state)) {}
                    @if !took.is_empty() || !bytes.is_empty() {
                        text x=(format!("{:.1}", x2 + 4.0)) y=(format!("{:.1}", y + 10.5)) font-size="10" fill="#4a5560" {
                            (took) @if !took.is_empty() && !bytes.is_empty() { ", " } (bytes)
                        }
                    }
                }
            }
            line x1=(GUTTER) x2=(format!("{end_x:.1}")) y1=(format!("{axis_y:.1}")) y2=(format!("{axis_y:.1}"))
                stroke="#b8bec6" stroke-width="1" {}
            text x=(GUTTER) y=(format!("{:.1}", axis_y + 12.0)) font-size="10" fill="#6b7580" { "0 s" }
            text x=(format!("{end_x:.1}")) y=(format!("{:.1}", axis_y + 12.0)) font-size="10"
                fill="#6b7580" text-anchor="end" { (short_span(Duration::from_secs_f64(span))) }
            @if !end_text.is_empty() {
                g.end {
                    line x1=(format!("{end_x:.1}")) x2=(format!("{end_x:.1}")) y1="0" y2=(format!("{axis_y:.1}"))
                        stroke=(end_fill) stroke-width="2" {}
                    text x=(format!("{:.1}", end_x + 6.0)) y=(format!("{:.1}", axis_y - 4.0)) font-size="12"
                        font-weight="700" fill=(end_fill) { (end_text) }
                }
            }
        }
    }
}

/// One attempt: its start, badge, picture, stages, verdict and the lines of the machine's
/// console and logs that arrived during it (`lines`, oldest first).
pub fn render(
    attempt: &Attempt,
    verdict: &Verdict,
    now: SystemTime,
    lines: &[&LogRecord],
) -> Markup {
    html! {
        div.attempt {
            div.actions {
                strong { (timestamp(attempt.started)) }
                (badge(verdict))
                @if let Some(d) = verdict.duration() { span.muted.small { (short_span(d)) } }
                @if let Some(fw) = attempt.firmware { span.muted.small { (fw.as_str()) } }
            }
            (svg(attempt, verdict, now))
            ol.timeline {
                @for s in &attempt.stages {
                    li class=(class(s.state)) title=(s.detail) {
                        div.stage { (s.stage.label()) }
                        div.small { (state_text(s.state))
                            @if let Some(b) = s.bytes { " · " (size(b)) } }
                        @if !s.detail.is_empty() { div.detail { (s.detail) } }
                    }
                }
            }
            @if let Some(why) = attempt.stopped.as_ref().filter(|_| stopped_shown(attempt, verdict)) {
                p.small.verdict { (why) }
            }
            @if attempt.complete || attempt.system.is_some() || attempt.console.is_some() {
                p.small.verdict.system { (verdict.detail) }
            } @else if verdict.state == BootState::Booting {
                p.small.verdict { "Booting: " (verdict.detail) "." }
            }
            @if !attempt.other_offers.is_empty() {
                div.other-offers {
                    div.notice.warn { "Other DHCP servers on the LAN answered this machine too: it takes whichever answers first." }
                    ul.small {
                        @for o in &attempt.other_offers {
                            li { span.mono { (timestamp(o.at)) } " " (o.detail) }
                        }
                    }
                }
            }
            @if !lines.is_empty() {
                (log_lines(lines, attempt.console.as_ref().map(|c| c.line.as_str())))
            }
        }
    }
}

/// The boot's log lines, the newest [`LINES_SHOWN`], opened (and the line marked) when the
/// log said it failed (`failure`).
fn log_lines(lines: &[&LogRecord], failure: Option<&str>) -> Markup {
    let skip = lines.len().saturating_sub(LINES_SHOWN);
    html! {
        details.logs open[failure.is_some()] {
            summary.small { "Console and logs: " (lines.len()) " lines"
                @if skip > 0 { " (the newest " (LINES_SHOWN) " shown)" } }
            div.table-wrap {
                table.log {
                    tbody {
                        @for l in lines.iter().skip(skip) {
                            tr class=[(Some(l.text.as_str()) == failure).then_some("bad")] {
                                td.nowrap.mono { (timestamp(l.at)) }
                                td.nowrap.small { (l.proto) @if let Some(s) = l.severity { " " (severity_name(s)) } }
                                td.nowrap.small { (l.app.as_deref().unwrap_or("")) }
                                td.mono.wide { (l.text) @if l.truncated { " …" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether the attempt's "Stopped at/after ..." line says how it ended: a stage failed, or it
/// went quiet before the initrd.
fn stopped_shown(attempt: &Attempt, verdict: &Verdict) -> bool {
    attempt.failed_stage().is_some()
        || (verdict.state == BootState::Failed
            && attempt.system.is_none()
            && attempt.console.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    use flakeboot_appliance::attempts::attempts;
    use flakeboot_catalogue::{BootEvent, BootStage, MacAddr, Outcome};

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn ev(secs: u64, stage: BootStage, outcome: Outcome, detail: &str) -> BootEvent {
        let mut e = BootEvent::new(stage, outcome, detail).mac(MAC);
        e.at = at(secs);
        e
    }

    #[test]
    fn the_picture_has_a_bar_per_stage_the_failed_one_red_and_the_end() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(1, Script, Outcome::Ok, "GET /boot.ipxe 200"),
            ev(2, Kernel, Outcome::Ok, "k")
                .started(at(1))
                .bytes(9_000_000),
            ev(10, Initrd, Outcome::Failed, "cut off")
                .started(at(2))
                .bytes(1_200_000),
        ];
        let a = &attempts(&events)[0];
        let v = Verdict::of(a, at(20), Duration::from_secs(600));
        let svg = svg(a, &v, at(20)).into_string();
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains(r##"class="bar failed""##), "{svg}");
        assert!(svg.contains("#c8372d") && svg.contains("stopped"), "{svg}");
        assert!(svg.contains("8.0 s, 1.2 MB"), "{svg}");
        assert!(svg.contains(">10.0 s<"), "{svg}");
        assert!(
            !svg.contains("0 ms"),
            "instant steps claim no duration: {svg}"
        );
        let html = render(a, &v, at(20), &[]).into_string();
        assert!(
            html.contains("Stopped at Initrd: it failed (cut off)."),
            "{html}"
        );

        let mut events = events[..3].to_vec();
        events.push(ev(4, Initrd, Outcome::Ok, "i"));
        let a = &attempts(&events)[0];
        let v = Verdict::of(a, at(4000), Duration::from_secs(600));
        let html = render(a, &v, at(4000), &[]).into_string();
        assert!(
            html.contains("no report 10 minutes after the initrd"),
            "{html}"
        );
        assert!(html.contains(">no report<"), "{html}");
    }

    /// Another server's offer is shown with the attempt it answered, escaped; it starts no
    /// attempt of its own and changes no stage.
    #[test]
    fn other_servers_offers_are_shown_with_the_attempt() {
        use BootStage::*;
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "proxy offer"),
            ev(
                1,
                OtherDhcp,
                Outcome::Ok,
                "offer from 10.77.0.2 (full DHCP): boot file <b>x</b>",
            ),
            ev(2, Script, Outcome::Ok, "GET /boot.ipxe 200"),
        ];
        let list = attempts(&events);
        assert_eq!(list.len(), 1);
        let a = &list[0];
        assert_eq!(a.other_offers.len(), 1);
        let v = Verdict::of(a, at(3), Duration::from_secs(600));
        let html = render(a, &v, at(3), &[]).into_string();
        assert!(
            html.contains("Other DHCP servers on the LAN answered this machine too"),
            "{html}"
        );
        assert!(
            html.contains("offer from 10.77.0.2 (full DHCP): boot file &lt;b&gt;x&lt;/b&gt;"),
            "{html}"
        );
        let without = attempts(&[events[0].clone(), events[2].clone()]);
        assert_eq!(without[0].stages, a.stages, "the offer changed a stage");
    }

    /// A kernel panic on the console: the boot failed with that line as its reason, and its
    /// log lines are shown with it, the panic marked.
    #[test]
    fn a_console_failure_is_the_reason_and_the_lines_are_shown() {
        use BootStage::*;
        let panic =
            "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)";
        let events = vec![
            ev(0, Dhcp, Outcome::Ok, "router offer"),
            ev(5, Console, Outcome::Failed, panic),
        ];
        let a = &attempts(&events)[0];
        let v = Verdict::of(a, at(6), Duration::from_secs(600));
        let line = |secs, text: &str| LogRecord {
            mac: "52:54:00:12:34:56".parse().unwrap(),
            peer: "10.77.0.100".parse().unwrap(),
            at: at(secs),
            proto: "netconsole".into(),
            severity: Some(0),
            facility: Some(0),
            hostname: None,
            app: Some("kernel".into()),
            text: text.into(),
            truncated: false,
        };
        let (hello, dying) = (line(3, "<b>hello</b>"), line(5, panic));
        let html = render(a, &v, at(6), &[&hello, &dying]).into_string();
        assert!(html.contains(&format!("failed: {panic}")), "{html}");
        assert!(html.contains(">failed<"), "{html}");
        assert!(html.contains("Console and logs: 2 lines"), "{html}");
        assert!(html.contains("&lt;b&gt;hello&lt;/b&gt;"), "escaped: {html}");
        assert!(html.contains(r#"<tr class="bad">"#), "{html}");
        assert!(html.contains("<details class=\"logs\" open>"), "{html}");
        assert!(!html.contains("Stopped after"), "{html}");
    }

    #[test]
    fn sizes_and_spans_read_naturally() {
        assert_eq!(size(1_200_000), "1.2 MB");
        assert_eq!(size(70_500), "70 kB");
        assert_eq!(size(512), "512 B");
        assert_eq!(short_span(Duration::from_millis(850)), "850 ms");
        assert_eq!(short_span(Duration::from_millis(4200)), "4.2 s");
        assert_eq!(short_span(Duration::from_secs(185)), "3 min 5 s");
    }
}
