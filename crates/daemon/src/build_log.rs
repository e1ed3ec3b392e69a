//! Builds over the API: follow one's log and progress (the server-sent events of
//! `/api/v1/builds/{id}/events`) until it ends, or wait for several to end.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use flakeboot_appliance::wire::{Build, BuildState};
use serde_json::Value;

use crate::api_client::ApiClient;
use crate::tables;

/// How often `--wait` asks for the builds' states.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits a `text/event-stream` body into events, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(SseEvent {
                        event: if self.event.is_empty() {
                            "message".into()
                        } else {
                            std::mem::take(&mut self.event)
                        },
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                self.event.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_owned(),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

/// "building: 2/3 done, 1 running (alpha-toplevel)" from a `status` event's data.
fn progress_text(status: &Value) -> String {
    let state = status.get("state").and_then(Value::as_str).unwrap_or("?");
    let Some(p) = status.get("progress").filter(|p| !p.is_null()) else {
        return state.to_owned();
    };
    let n = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
    if n("total") == 0 && n("running") == 0 {
        return state.to_owned();
    }
    let mut text = format!(
        "{state}: {}/{} done, {} running",
        n("done"),
        n("total"),
        n("running")
    );
    if let Some(current) = p.get("current").and_then(Value::as_str) {
        text.push_str(&format!(" ({current})"));
    }
    text
}

fn build_record(client: &ApiClient, id: u64) -> anyhow::Result<(Value, Build)> {
    let json = client.get(&format!("/builds/{id}"))?;
    let record = serde_json::from_value(json.clone())
        .with_context(|| format!("the appliance's answer for build {id} is not a build"))?;
    Ok((json, record))
}

fn summary(b: &Build) -> String {
    let mut s = format!(
        "build {} ({}#{}) {}",
        b.id,
        b.flake,
        b.host,
        tables::state_word(b.state)
    );
    if let Some(g) = b.generation {
        s.push_str(&format!(": generation {g}"));
    }
    if let Some(e) = &b.error {
        s.push_str(&format!(": {e}"));
    }
    s
}

/// `flakeboot build log ID`: the log on stdout, progress and the outcome on stderr (with
/// `--json`: each event as one JSON line). Fails unless the build succeeded.
pub fn follow(client: &ApiClient, id: u64, json: bool) -> anyhow::Result<ExitCode> {
    let mut parser = SseParser::default();
    let mut last_progress = String::new();
    client.stream(&format!("/builds/{id}/events"), |chunk| {
        for ev in parser.push(chunk) {
            if json {
                let data = serde_json::from_str::<Value>(&ev.data)
                    .ok()
                    .filter(|_| ev.event == "status")
                    .unwrap_or(Value::String(ev.data));
                println!("{}", serde_json::json!({ "event": ev.event, "data": data }));
                continue;
            }
            match ev.event.as_str() {
                "line" => println!("{}", ev.data),
                "status" => {
                    let status = serde_json::from_str::<Value>(&ev.data).unwrap_or(Value::Null);
                    let text = progress_text(&status);
                    if text != last_progress {
                        eprintln!("-- {text}");
                        last_progress = text;
                    }
                }
                _ => {}
            }
        }
    })?;
    let (_, record) = build_record(client, id)?;
    if record.state.is_active() {
        bail!(
            "the log stream ended while build {id} is still {}: run `flakeboot build log {id}` \
             again",
            tables::state_word(record.state)
        );
    }
    if !json {
        eprintln!("{}", summary(&record));
    }
    Ok(if record.state == BuildState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Waits until every build has ended (for `--wait`): their JSON and records, in order.
pub fn wait(client: &ApiClient, ids: &[u64]) -> anyhow::Result<Vec<(Value, Build)>> {
    let mut done = Vec::with_capacity(ids.len());
    for &id in ids {
        loop {
            let (json, record) = build_record(client, id)?;
            if !record.state.is_active() {
                done.push((json, record));
                break;
            }
            std::thread::sleep(POLL_EVERY);
        }
    }
    Ok(done)
}

/// Prints the builds `--wait` waited for; fails when one did not succeed.
pub fn report(builds: &[(Value, Build)], json: bool) -> anyhow::Result<ExitCode> {
    if json {
        let list: Vec<&Value> = builds.iter().map(|(v, _)| v).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        let records: Vec<Build> = builds.iter().map(|(_, r)| r.clone()).collect();
        print!("{}", tables::builds(&records));
    }
    let failed: Vec<String> = builds
        .iter()
        .filter(|(_, r)| r.state != BuildState::Succeeded)
        .map(|(_, r)| summary(r))
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("flakeboot: {}", failed.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_whole_whatever_the_chunks() {
        let stream = b": keep-alive\n\nevent: line\ndata: building alpha\n\nevent: status\r\ndata: {\"state\":\"building\"}\r\n\r\ndata: a\ndata: b\n\n";
        let expected = vec![
            SseEvent {
                event: "line".into(),
                data: "building alpha".into(),
            },
            SseEvent {
                event: "status".into(),
                data: "{\"state\":\"building\"}".into(),
            },
            SseEvent {
                event: "message".into(),
                data: "a\nb".into(),
            },
        ];
        for size in [1, 3, 7, stream.len()] {
            let mut p = SseParser::default();
            let got: Vec<SseEvent> = stream.chunks(size).flat_map(|c| p.push(c)).collect();
            assert_eq!(got, expected, "chunks of {size}");
        }
    }

    #[test]
    fn progress_reads_as_counts_and_the_current_step() {
        let s = serde_json::json!({"state": "building", "progress": {"done": 2, "total": 3, "running": 1, "current": "alpha-toplevel"}});
        assert_eq!(
            progress_text(&s),
            "building: 2/3 done, 1 running (alpha-toplevel)"
        );
        assert_eq!(
            progress_text(&serde_json::json!({"state": "queued", "progress": null})),
            "queued"
        );
        let nothing_yet = serde_json::json!({"state": "building", "progress": {"done": 0, "total": 0, "running": 0, "current": null}});
        assert_eq!(progress_text(&nothing_yet), "building");
    }
}
