//! nix's structured log (`--log-format internal-json`): `@nix {json}` lines on stderr, turned
//! into build progress (derivations done / total, what is building now) and human log lines.
//! Pure: lines in, events and state out.
//!
//! Activity and result types are nix's (`src/libutil/logging.hh`): activity 104 "builds" carries
//! the counters as result 105 "progress" `[done, expected, running, failed]`; activity 105 "build"
//! is one derivation (`fields[0]` is its `.drv`); result 101 is a line of builder output.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The prefix of every structured line.
const PREFIX: &str = "@nix ";

const ACT_BUILDS: u64 = 104;
const ACT_BUILD: u64 = 105;
const RES_BUILD_LOG_LINE: u64 = 101;
const RES_SET_PHASE: u64 = 104;
const RES_PROGRESS: u64 = 105;
/// nix's `lvlInfo`: activities above it are chatter (copying sources, querying paths).
const LEVEL_INFO: u64 = 3;

/// One structured event from nix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NixLogEvent {
    /// An activity began (`type` says what: 105 = building one derivation).
    Start {
        /// Activity id.
        id: u64,
        /// Activity type.
        activity: u64,
        /// nix's verbosity level of the activity (0 = error ... 3 = info ... 7 = vomit).
        level: u64,
        /// What nix would print, e.g. `building '/nix/store/...-alpha-kernel.drv'`.
        text: String,
    },
    /// An activity ended.
    Stop {
        /// Activity id.
        id: u64,
    },
    /// Counters of an activity: for activity 104, derivations done / expected / running / failed.
    Progress {
        /// Activity id.
        id: u64,
        /// Finished.
        done: u64,
        /// Expected in all.
        expected: u64,
        /// Running now.
        running: u64,
        /// Failed.
        failed: u64,
    },
    /// A line a builder printed.
    BuildLogLine {
        /// The build activity.
        id: u64,
        /// The line.
        line: String,
    },
    /// A builder entered a phase (nixpkgs' `stdenv` reports them).
    Phase {
        /// The build activity.
        id: u64,
        /// The phase name.
        phase: String,
    },
    /// A message (errors are level 0, warnings level 1), without terminal colours.
    Message {
        /// nix's verbosity level.
        level: u64,
        /// The text.
        text: String,
    },
    /// A structured line of a kind flakeboot does not use.
    Other,
}

/// Why a `@nix` line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgressError {
    /// The JSON after `@nix ` does not parse or lacks the fields its action needs.
    #[error("unreadable structured log line from nix: {reason}")]
    BadLine {
        /// What was wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct RawLine {
    action: String,
    id: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<u64>,
    level: Option<u64>,
    text: Option<String>,
    msg: Option<String>,
    #[serde(default)]
    fields: Vec<Value>,
}

/// Parse one stderr line: `None` when it is not structured (plain text nix or a builder
/// printed), else the event or why the structured line is unreadable.
pub fn parse_line(line: &str) -> Option<Result<NixLogEvent, ProgressError>> {
    let json = line.strip_prefix(PREFIX)?;
    Some(parse_json(json))
}

fn parse_json(json: &str) -> Result<NixLogEvent, ProgressError> {
    let raw: RawLine = serde_json::from_str(json).map_err(|e| ProgressError::BadLine {
        reason: e.to_string(),
    })?;
    let missing = |what: &str| ProgressError::BadLine {
        reason: format!("{:?} without {what}", raw.action),
    };
    let number = |i: usize| raw.fields.get(i).and_then(Value::as_u64).unwrap_or(0);
    let text = |i: usize| {
        raw.fields
            .get(i)
            .and_then(Value::as_str)
            .map(strip_ansi)
            .unwrap_or_default()
    };
    Ok(match raw.action.as_str() {
        "start" => NixLogEvent::Start {
            id: raw.id.ok_or_else(|| missing("id"))?,
            activity: raw.kind.ok_or_else(|| missing("type"))?,
            level: raw.level.unwrap_or(LEVEL_INFO),
            text: strip_ansi(raw.text.as_deref().unwrap_or_default()),
        },
        "stop" => NixLogEvent::Stop {
            id: raw.id.ok_or_else(|| missing("id"))?,
        },
        "result" => {
            let id = raw.id.ok_or_else(|| missing("id"))?;
            match raw.kind.ok_or_else(|| missing("type"))? {
                RES_PROGRESS => NixLogEvent::Progress {
                    id,
                    done: number(0),
                    expected: number(1),
                    running: number(2),
                    failed: number(3),
                },
                RES_BUILD_LOG_LINE => NixLogEvent::BuildLogLine { id, line: text(0) },
                RES_SET_PHASE => NixLogEvent::Phase { id, phase: text(0) },
                _ => NixLogEvent::Other,
            }
        }
        "msg" => NixLogEvent::Message {
            level: raw.level.unwrap_or(0),
            text: strip_ansi(raw.msg.as_deref().unwrap_or_default()),
        },
        _ => NixLogEvent::Other,
    })
}

/// Remove terminal colour sequences (`ESC [ ... letter`) nix puts in messages.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a build is: derivations done / total, running, failed, and what nix is doing now.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildProgress {
    /// Derivations built.
    pub done: u64,
    /// Derivations to build in all (grows while nix discovers dependencies).
    pub total: u64,
    /// Derivations building now.
    pub running: u64,
    /// Derivations that failed.
    pub failed: u64,
    /// The newest activity still running, e.g. `building alpha-kernel`.
    pub current: Option<String>,
}

/// Folds nix's events into a [`BuildProgress`] and renders the lines worth keeping in a log.
#[derive(Debug, Default)]
pub struct ProgressTracker {
    progress: BuildProgress,
    /// Activities at info level or above that are running, by id, with their short text.
    running: BTreeMap<u64, String>,
    /// The "builds" activity (104), whose progress results count derivations.
    builds_activity: Option<u64>,
    /// The last error message nix printed (a failed build's reason).
    last_error: Option<String>,
}

impl ProgressTracker {
    /// A tracker for a build that has not started.
    pub fn new() -> ProgressTracker {
        ProgressTracker::default()
    }

    /// The progress so far.
    pub fn progress(&self) -> &BuildProgress {
        &self.progress
    }

    /// The last error message nix printed, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Feed one stderr line; returns the line for the human log, if it is worth one.
    /// Unstructured lines are kept as they are; unreadable structured lines are kept verbatim.
    pub fn feed(&mut self, line: &str) -> Option<String> {
        match parse_line(line) {
            None => Some(strip_ansi(line)),
            Some(Err(_)) => Some(line.to_owned()),
            Some(Ok(event)) => self.apply(&event),
        }
    }

    /// Apply one event; returns the line for the human log, if it is worth one.
    pub fn apply(&mut self, event: &NixLogEvent) -> Option<String> {
        match event {
            NixLogEvent::Start {
                id,
                activity,
                level,
                text,
            } => {
                if *activity == ACT_BUILDS {
                    self.builds_activity = Some(*id);
                }
                if *level > LEVEL_INFO || text.is_empty() {
                    return None;
                }
                let short = if *activity == ACT_BUILD {
                    format!("building {}", derivation_name(text))
                } else {
                    text.clone()
                };
                self.running.insert(*id, short.clone());
                self.progress.current = Some(short);
                Some(text.clone())
            }
            NixLogEvent::Stop { id } => {
                if self.running.remove(id).is_some() {
                    self.progress.current = self.running.values().next_back().cloned();
                }
                None
            }
            NixLogEvent::Progress {
                id,
                done,
                expected,
                running,
                failed,
            } => {
                // Only the "builds" activity counts derivations; nix also reports copy counters.
                if self.builds_activity == Some(*id) {
                    self.progress.done = *done;
                    self.progress.total = *expected;
                    self.progress.running = *running;
                    self.progress.failed = *failed;
                }
                None
            }
            NixLogEvent::BuildLogLine { line, .. } => Some(line.clone()),
            NixLogEvent::Phase { phase, .. } => Some(format!("phase: {phase}")),
            NixLogEvent::Message { level, text } => {
                if *level == 0 && text.starts_with("error:") {
                    self.last_error = Some(text.trim_start_matches("error:").trim().to_owned());
                }
                Some(text.clone())
            }
            NixLogEvent::Other => None,
        }
    }
}

/// `building '/nix/store/<hash>-alpha-kernel.drv'` -> `alpha-kernel`.
fn derivation_name(text: &str) -> &str {
    let path = text.split('\'').nth(1).unwrap_or(text);
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.strip_suffix(".drv").unwrap_or(base);
    match base.split_once('-') {
        Some((hash, name)) if hash.len() == 32 => name,
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = include_str!("../tests/fixtures/logs/build-ok.log");
    const FAILED: &str = include_str!("../tests/fixtures/logs/build-failed.log");
    const INTERRUPTED: &str = include_str!("../tests/fixtures/logs/build-interrupted.log");

    fn run(log: &str) -> (ProgressTracker, Vec<String>) {
        let mut t = ProgressTracker::new();
        let lines = log.lines().filter_map(|l| t.feed(l)).collect();
        (t, lines)
    }

    #[test]
    fn parses_each_action() {
        assert_eq!(
            parse_line(r#"@nix {"action":"result","fields":[2,3,1,0],"id":7,"type":105}"#),
            Some(Ok(NixLogEvent::Progress {
                id: 7,
                done: 2,
                expected: 3,
                running: 1,
                failed: 0
            }))
        );
        assert_eq!(
            parse_line(r#"@nix {"action":"stop","id":9}"#),
            Some(Ok(NixLogEvent::Stop { id: 9 }))
        );
        assert_eq!(parse_line("plain text from nix"), None);
        assert!(matches!(
            parse_line("@nix {not json"),
            Some(Err(ProgressError::BadLine { .. }))
        ));
        assert!(matches!(
            parse_line(r#"@nix {"action":"start"}"#),
            Some(Err(ProgressError::BadLine { .. }))
        ));
    }

    #[test]
    fn a_successful_build_counts_to_three_of_three() {
        let (t, lines) = run(OK);
        assert_eq!(
            t.progress(),
            &BuildProgress {
                done: 3,
                total: 3,
                running: 0,
                failed: 0,
                current: None
            }
        );
        assert!(t.last_error().is_none());
        assert!(
            lines.iter().any(|l| l.contains("alpha-kernel.drv")),
            "{lines:?}"
        );
        // Chatter (copying sources, level 4+) stays out of the log.
        assert!(!lines.iter().any(|l| l.contains("copying")), "{lines:?}");
    }

    #[test]
    fn current_activity_follows_the_running_derivation() {
        let mut t = ProgressTracker::new();
        for line in OK.lines() {
            t.feed(line);
            if line.contains("alpha-netboot-ramdisk.drv") && line.contains("\"start\"") {
                break;
            }
        }
        assert_eq!(
            t.progress().current.as_deref(),
            Some("building alpha-netboot-ramdisk")
        );
        assert_eq!(t.progress().done, 1);
        assert_eq!(t.progress().total, 3);
    }

    #[test]
    fn a_failed_build_keeps_the_builder_output_and_the_error() {
        let (t, lines) = run(FAILED);
        assert_eq!(t.progress().failed, 1);
        assert!(
            lines.contains(&"broken-toplevel: about to fail".to_owned()),
            "{lines:?}"
        );
        let err = t.last_error().unwrap();
        assert!(err.contains("failed with exit code 3"), "{err}");
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }

    #[test]
    fn an_interrupted_build_says_so() {
        let (t, _) = run(INTERRUPTED);
        assert_eq!(t.last_error(), Some("interrupted by the user"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut t = ProgressTracker::new();
        for line in [
            "@nix ",
            "@nix null",
            "@nix []",
            r#"@nix {"action":"result","id":1,"type":105,"fields":["x",-1]}"#,
            r#"@nix {"action":"result","id":1,"type":101,"fields":[]}"#,
            "@nix {\"action\":\"msg\",\"msg\":\"\u{1b}[\"}",
            "\u{1b}",
        ] {
            t.feed(line);
        }
        assert_eq!(derivation_name("building ''"), "");
        assert_eq!(strip_ansi("\u{1b}[31;1merror:\u{1b}[0m x"), "error: x");
    }
}
