//! The CLI's human output: the same tables and lines whether the data came from the local
//! daemon (control socket, store) or from the appliance's API (`--server`).

use std::time::SystemTime;

use flakeboot_appliance::wire::{
    self, AuditEntry, BootState, Build, BuildState, Event, Flake, Generation, Lease, LogLine,
    Machine,
};

/// Columns padded to their widest cell (the last one is not padded).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `2025-01-31T12:00:00Z`.
pub fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn short_rev(rev: Option<&str>) -> String {
    rev.map(|r| r.chars().take(12).collect())
        .unwrap_or_else(|| "-".into())
}

fn hosts_of(flake: &Flake) -> String {
    if flake.hosts.is_empty() {
        return "-".into();
    }
    flake
        .hosts
        .iter()
        .map(|h| match h.unbootable {
            None => h.name.clone(),
            Some(_) => format!("{} (no netboot)", h.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `flake list`.
pub fn flakes(list: &[Flake]) -> String {
    if list.is_empty() {
        return "No flakes yet: add one with `flakeboot flake add URL`.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                short_rev(f.revision.as_deref()),
                f.locked_at.map(time).unwrap_or_else(|| "never".into()),
                hosts_of(f),
                f.url.clone(),
            ]
        })
        .collect();
    let mut out = table(&["NAME", "REVISION", "LOCKED", "HOSTS", "URL"], &rows);
    for f in list {
        if let Some(e) = &f.error {
            out.push_str(&format!("{}: the last lock failed: {e}\n", f.name));
        }
    }
    out
}

/// `flake add`.
pub fn flake_added(f: &Flake) -> String {
    format!(
        "Added flake {} ({}) at revision {}; hosts: {}.\n",
        f.name,
        f.url,
        short_rev(f.revision.as_deref()),
        hosts_of(f)
    )
}

/// A word for a build's state (as the web UI says it).
pub fn state_word(state: BuildState) -> &'static str {
    match state {
        BuildState::Queued => "queued",
        BuildState::Running => "building",
        BuildState::Succeeded => "succeeded",
        BuildState::Failed => "failed",
        BuildState::Cancelled => "cancelled",
        BuildState::TimedOut => "timed out",
    }
}

/// `build list`, and the builds `--wait` waited for.
pub fn builds(list: &[Build]) -> String {
    if list.is_empty() {
        return "No builds yet.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|b| {
            let outcome = match (b.generation, &b.error) {
                (Some(g), _) => format!("generation {g}"),
                (None, Some(e)) => e.lines().next().unwrap_or_default().to_owned(),
                (None, None) => String::new(),
            };
            vec![
                b.id.to_string(),
                format!("{}#{}", b.flake, b.host),
                state_word(b.state).to_owned(),
                short_rev(b.revision.as_deref()),
                time(b.queued_at),
                outcome,
            ]
        })
        .collect();
    table(
        &["ID", "HOST", "STATE", "REVISION", "QUEUED", "RESULT"],
        &rows,
    )
}

/// Builds just queued.
pub fn queued(ids: &[u64]) -> String {
    match ids {
        [] => "Nothing to build (no netbootable host).\n".into(),
        [id] => format!("Queued build {id}.\n"),
        ids => format!(
            "Queued builds {}.\n",
            ids.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One generation and whether machines boot it now.
#[derive(Debug, Clone)]
pub struct GenerationRow {
    pub record: Generation,
    /// What machines assigned to the host boot now.
    pub current: bool,
    /// Current because it is pinned (a rollback).
    pub pinned: bool,
}

/// `flake generations HOST`.
pub fn generations(host: &str, rows: &[GenerationRow]) -> String {
    if rows.is_empty() {
        return format!("{host} has no generations yet: build it first.\n");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|g| {
            vec![
                g.record.number.to_string(),
                short_rev(g.record.revision.as_deref()),
                time(g.record.built_at),
                g.record.build_id.to_string(),
                g.record.preflight.summary(),
                match (g.current, g.pinned) {
                    (true, true) => "current (pinned)".into(),
                    (true, false) => "current".into(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    let qualified = rows.first().map(|g| g.record.host.as_str()).unwrap_or(host);
    format!(
        "{qualified}\n{}",
        table(
            &["GEN", "REVISION", "BUILT", "BUILD", "PRE-FLIGHT", "BOOTS"],
            &cells
        )
    )
}

/// `machines`: one line per machine.
pub fn machines(list: &[Machine]) -> String {
    list.iter().map(|m| machine_line(m) + "\n").collect()
}

/// `events`: one line per boot event.
pub fn events(list: &[Event]) -> String {
    list.iter().map(|e| event_line(e) + "\n").collect()
}

/// `machine logs`: one line per log line: time, protocol and severity, program, text.
pub fn log_lines(list: &[LogLine]) -> String {
    list.iter()
        .map(|l| {
            let severity = l
                .severity
                .map(flakeboot_appliance::wire::logs::severity_name)
                .unwrap_or("-");
            format!(
                "{} {} {severity} {} {}{}\n",
                time(l.at),
                l.proto,
                plain(l.app.as_deref().unwrap_or("-")),
                plain(&l.text),
                if l.truncated { " [cut]" } else { "" }
            )
        })
        .collect()
}

/// Text from a user, safe for a terminal: control characters escaped.
fn plain(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// `audit`: the newest first, one line an entry.
pub fn audit(list: &[AuditEntry]) -> String {
    if list.is_empty() {
        return "nothing recorded yet\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                time(e.at),
                e.actor.as_deref().map_or_else(|| "-".to_owned(), plain),
                e.action.clone(),
                if e.target.is_empty() {
                    "-".to_owned()
                } else {
                    plain(&e.target)
                },
                e.client
                    .map_or_else(|| "api socket".to_owned(), |c| c.to_string()),
                e.status.to_string(),
            ]
        })
        .collect();
    table(
        &["WHEN", "WHO", "ACTION", "TARGET", "FROM", "STATUS"],
        &rows,
    )
}

/// `access-token list`: one line a host (`HOST  set here|config file`), or a line saying
/// there is none.
pub fn access_tokens(list: &[flakeboot_appliance::wire::AccessToken]) -> String {
    use flakeboot_appliance::wire::AccessTokenSource;
    if list.is_empty() {
        return "no access token: `flakeboot access-token set HOST < token-file` adds one\n"
            .to_owned();
    }
    list.iter()
        .map(|t| {
            let source = match t.source {
                AccessTokenSource::Appliance => "set here",
                AccessTokenSource::ConfigFile => "config file",
            };
            format!("{}  {source}\n", t.host)
        })
        .collect()
}

/// `lan dhcp-servers`: one line a server, or a line saying there is none.
pub fn dhcp_servers(list: &[flakeboot_appliance::dhcp_servers::DhcpServerView]) -> String {
    if list.is_empty() {
        return "no other DHCP server seen on the LAN\n".to_owned();
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    list.iter()
        .map(|s| {
            format!(
                "{} mac={} kind={}{} range={} router={} boot-file={} first-seen={} last-seen={}\n",
                s.address,
                opt(s.mac.map(|m| m.to_string())),
                s.kind,
                if s.pxe { "+pxe" } else { "" },
                opt(s.range_seen.map(|[a, b]| format!("{a}-{b}"))),
                opt(s.router.map(|r| r.to_string())),
                opt(s.boot_file.clone()),
                humantime::format_rfc3339_seconds(s.first_seen),
                humantime::format_rfc3339_seconds(s.last_seen),
            )
        })
        .collect()
}

/// `leases`: one line per lease.
pub fn leases(list: &[Lease]) -> String {
    list.iter()
        .map(|l| format!("{} {} {:?}\n", l.ip, l.mac, l.state))
        .collect()
}

fn machine_line(m: &Machine) -> String {
    let state = match &m.last_boot {
        Some(b) => match &b.stage {
            Some(stage) if b.state != BootState::Up => format!("{}@{stage}", b.state.as_str()),
            _ => b.state.as_str().to_owned(),
        },
        None => "-".to_owned(),
    };
    format!(
        "{} state={state} firmware={} host={}{} vendor={}",
        m.mac,
        m.firmware.map(|f| f.as_str()).unwrap_or("-"),
        m.host.as_deref().unwrap_or("(menu)"),
        if m.pinned { "(config)" } else { "" },
        m.vendor_class.as_deref().unwrap_or("-")
    )
}

fn event_line(e: &Event) -> String {
    let at =
        e.at.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
    format!(
        "{at:.3} {} {} {:?} {} {}",
        e.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
        e.stage.as_str(),
        e.outcome,
        e.firmware.map(|f| f.as_str()).unwrap_or("-"),
        e.detail
    )
}

/// `flake follow`.
pub fn follow(flake: &str, f: &wire::follow::Follow) -> String {
    if let Some(txt) = &f.notify_txt {
        format!(
            "{flake} follows its branch: updated when the TXT record {txt} names another revision \
             (a revision once acted on, again after {}) and on its webhook.\n",
            f.check_every
        )
    } else if f.follow {
        format!(
            "{flake} follows its branch: re-locked every {} and on its webhook.\n",
            f.check_every
        )
    } else {
        format!("{flake} does not follow its branch (updates only when asked).\n")
    }
}

/// `flake hook`.
pub fn hook(h: &wire::follow::Hook) -> String {
    format!(
        "Webhook of {flake}\n  URL:          {url}\n  Content type: {ct}\n  Secret:       {secret}\n\
         GitHub, Gitea, Forgejo: the secret signs each push (X-Hub-Signature-256).\n\
         GitLab: give it as the secret token (X-Gitlab-Token).\n",
        flake = h.flake,
        url = h.url,
        ct = h.content_type,
        secret = h.secret,
    )
}

fn update_state_word(s: wire::follow::UpdateState) -> &'static str {
    use wire::follow::UpdateState as S;
    match s {
        S::Building => "building",
        S::Unchanged => "unchanged",
        S::Promoted => "promoted",
        S::NotPromoted => "not promoted",
        S::Failed => "failed",
    }
}

fn trigger_word(t: wire::follow::UpdateTrigger) -> &'static str {
    use wire::follow::UpdateTrigger as T;
    match t {
        T::Schedule => "schedule",
        T::Hook => "hook",
        T::Manual => "manual",
        T::Dns => "dns",
    }
}

/// `flake history`.
pub fn history(h: &wire::follow::History) -> String {
    let mut out = match (&h.follow.notify_txt, h.follow.follow) {
        (Some(txt), _) => format!(
            "{} follows its branch (when the TXT record {txt} names another revision).\n",
            h.flake
        ),
        (None, true) => format!(
            "{} follows its branch (every {}).\n",
            h.flake, h.follow.check_every
        ),
        (None, false) => format!("{} does not follow its branch.\n", h.flake),
    };
    if let Some(dns) = &h.dns {
        let said = match (&dns.rev, &dns.error) {
            (Some(rev), _) => format!("rev {}", short_rev(Some(rev))),
            (None, Some(e)) => format!("unreadable: {e}"),
            (None, None) => "nothing".to_owned(),
        };
        out.push_str(&format!(
            "TXT record {} at {}: {said}\n",
            dns.record,
            time(dns.checked_at)
        ));
    }
    if h.updates.is_empty() {
        out.push_str("No update yet.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = h
        .updates
        .iter()
        .map(|u| {
            vec![
                u.seq.to_string(),
                time(u.started_at),
                trigger_word(u.trigger).to_owned(),
                format!(
                    "{} -> {}",
                    short_rev(u.old_revision.as_deref()),
                    short_rev(u.new_revision.as_deref())
                ),
                if u.builds.is_empty() {
                    "-".to_owned()
                } else {
                    u.builds
                        .iter()
                        .map(|b| format!("{} {}", b.id, b.host))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                update_state_word(u.state).to_owned(),
                u.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "#", "STARTED", "TRIGGER", "REVISION", "BUILDS", "RESULT", "WHY",
        ],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_the_last_is_not_padded() {
        let out = table(
            &["A", "LONGER", "Z"],
            &[
                vec!["x".into(), "y".into(), "last".into()],
                vec!["wide-cell".into(), "".into(), "".into()],
            ],
        );
        assert_eq!(
            out,
            "A          LONGER  Z\n\
             x          y       last\n\
             wide-cell\n"
        );
    }

    #[test]
    fn queued_builds_read_as_a_sentence() {
        assert_eq!(queued(&[3]), "Queued build 3.\n");
        assert_eq!(queued(&[3, 4]), "Queued builds 3, 4.\n");
        assert!(queued(&[]).contains("Nothing"));
    }

    #[test]
    fn the_history_says_trigger_revisions_builds_and_why() {
        use wire::follow::{Follow, History, Update, UpdateBuild, UpdateState, UpdateTrigger};
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let update = |seq, trigger, state, builds: Vec<UpdateBuild>, reason: &str| Update {
            seq,
            trigger,
            started_at: at,
            finished_at: Some(at),
            old_revision: Some("1111111111111111".into()),
            new_revision: Some("2222222222222222".into()),
            builds,
            state,
            promoted: state == UpdateState::Promoted,
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
        };
        let view = History {
            flake: "lab".into(),
            follow: Follow {
                follow: true,
                check_every: "15m".into(),
                check_every_secs: 900,
                notify_txt: None,
            },
            dns: None,
            updates: vec![
                update(
                    1,
                    UpdateTrigger::Hook,
                    UpdateState::Promoted,
                    vec![UpdateBuild {
                        id: 7,
                        host: "alpha".into(),
                        state: BuildState::Succeeded,
                        generation: Some(2),
                        promoted: true,
                    }],
                    "",
                ),
                update(
                    2,
                    UpdateTrigger::Schedule,
                    UpdateState::Unchanged,
                    vec![],
                    "revision unchanged",
                ),
            ],
        };
        let out = history(&view);
        assert!(
            out.starts_with("lab follows its branch (every 15m).\n"),
            "{out}"
        );
        assert!(out.contains("1  2027-01-15T08:00:00Z  hook"), "{out}");
        assert!(out.contains("111111111111 -> 222222222222"), "{out}");
        assert!(out.contains("7 alpha  promoted"), "{out}");
        assert!(
            out.contains(
                "schedule  111111111111 -> 222222222222  -        unchanged  revision unchanged"
            ),
            "{out}"
        );

        // A flake a TXT record notifies: the record, what it said, and the dns trigger.
        let mut notified = view.clone();
        notified.follow.notify_txt = Some("_flakeboot.example.org".into());
        notified.dns = Some(wire::follow::DnsCheck {
            record: "_flakeboot.example.org".into(),
            checked_at: at,
            rev: None,
            error: Some("no answer from 192.0.2.53:53 within 3000 ms".into()),
            acted_on: None,
            acted_at: None,
        });
        notified.updates[1].trigger = UpdateTrigger::Dns;
        let out = history(&notified);
        assert!(
            out.starts_with(
                "lab follows its branch (when the TXT record _flakeboot.example.org names another revision).\n\
                 TXT record _flakeboot.example.org at 2027-01-15T08:00:00Z: unreadable: no answer from 192.0.2.53:53 within 3000 ms\n"
            ),
            "{out}"
        );
        assert!(out.contains("  dns  "), "{out}");
        let said = follow("lab", &notified.follow);
        assert!(said.contains("TXT record _flakeboot.example.org"), "{said}");
    }

    /// The generations table says each one's pre-flight, and which one boots (a failed newer
    /// one does not).
    #[test]
    fn generations_show_preflight_and_what_boots() {
        use flakeboot_store::{PreflightRecord, PreflightState};
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let row = |number: u32, state: PreflightState, secs: u64, current: bool| {
            let mut p = PreflightRecord::queued();
            p.state = state;
            p.started_at = Some(at);
            p.finished_at = Some(at + std::time::Duration::from_secs(secs));
            if state == PreflightState::Failed {
                p.reason = Some("no report".into());
            }
            GenerationRow {
                record: Generation {
                    host: "lab#alpha".into(),
                    number,
                    flake_url: "path:/lab".into(),
                    locked_url: "path:/lab".into(),
                    revision: Some("0123456789abcdef".into()),
                    kernel: "/k".into(),
                    initrd: "/i".into(),
                    init: "/t/init".into(),
                    store_paths: vec![],
                    kernel_params: vec![],
                    built_at: at,
                    build_id: u64::from(number),
                    preflight: wire::Preflight::from_record(p, at),
                },
                current,
                pinned: false,
            }
        };
        let out = generations(
            "alpha",
            &[
                row(1, PreflightState::Passed, 42, true),
                row(2, PreflightState::Failed, 312, false),
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].contains("PRE-FLIGHT"), "{out}");
        assert!(
            lines[2].contains("passed in 42 s") && lines[2].ends_with("current"),
            "{out}"
        );
        assert!(lines[3].contains("failed after 312 s: no report"), "{out}");
        assert!(!lines[3].contains("current"), "{out}");
    }
}
