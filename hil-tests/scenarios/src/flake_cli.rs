//! `flakeboot flake ...`: the CLI a user drives the running appliance's flakes with (through its
//! control socket `<state_dir>/control.sock`), run as a black box and its JSON read back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flakeboot_testbed::flakeboot_bin;
use serde_json::Value;

/// A `flakeboot flake` command failed or printed something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum FlakeCliError {
    #[error("cannot run `flakeboot flake {args}`: {source}")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`flakeboot flake {args}` failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("`flakeboot flake {args}` printed unexpected JSON ({reason}): {output}")]
    Output {
        args: String,
        reason: String,
        output: String,
    },
    #[error("{host} had no generation {number} after {waited:?}; last answer: {last}")]
    NoGeneration {
        host: String,
        number: u32,
        waited: Duration,
        last: String,
    },
}

/// One generation of a host, from `flakeboot flake generations HOST --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// 1, 2, ... per host.
    pub number: u32,
    /// The flake's locked git revision.
    pub revision: Option<String>,
    /// `<toplevel>/init`: what the booted command line's `init=` must name.
    pub init: PathBuf,
    /// Whether machines assigned to the host boot this one now (`None`: not reported).
    pub current: Option<bool>,
}

impl Generation {
    /// Parse one generation of the API's list.
    fn from_json(v: &Value) -> Option<Generation> {
        Some(Generation {
            number: u32::try_from(v.get("number")?.as_u64()?).ok()?,
            revision: v.get("revision").and_then(Value::as_str).map(str::to_owned),
            init: PathBuf::from(v.get("init").and_then(Value::as_str).unwrap_or_default()),
            current: v.get("current").and_then(Value::as_bool),
        })
    }
}

/// The API's answer for one host, `{"flake#host": {"generations": [...], "pinned": n|null}}`
/// (`{}` before its first build), as generations oldest first, each marked current or not (the
/// pinned one, else the newest).
fn generations_from_api(json: &Value) -> Option<Vec<Generation>> {
    let Some(view) = json.as_object()?.values().next() else {
        return Some(Vec::new());
    };
    let pinned = view.get("pinned").and_then(Value::as_u64);
    let mut gens: Vec<Generation> = view
        .get("generations")?
        .as_array()?
        .iter()
        .map(Generation::from_json)
        .collect::<Option<_>>()?;
    let current = pinned.or_else(|| gens.iter().map(|g| u64::from(g.number)).max());
    for g in &mut gens {
        g.current = Some(Some(u64::from(g.number)) == current);
    }
    Some(gens)
}

/// The CLI pointed at one appliance's state directory.
#[derive(Debug, Clone)]
pub struct FlakeCli {
    state_dir: PathBuf,
}

impl FlakeCli {
    /// Commands for the daemon whose state directory is `state_dir`.
    pub fn new(state_dir: &Path) -> FlakeCli {
        FlakeCli {
            state_dir: state_dir.to_owned(),
        }
    }

    /// `flakeboot flake <args> --state-dir DIR`: its stdout, or an error with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, FlakeCliError> {
        let out = Command::new(flakeboot_bin())
            .arg("flake")
            .args(args)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .output()
            .map_err(|source| FlakeCliError::Spawn {
                args: args.join(" "),
                source,
            })?;
        if !out.status.success() {
            return Err(FlakeCliError::Failed {
                args: args.join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `flakeboot flake generations HOST --json`, oldest first.
    pub fn generations(&self, host: &str) -> Result<Vec<Generation>, FlakeCliError> {
        let args = ["generations", host, "--json"];
        let text = self.run(&args)?;
        let bad = |reason: &str| FlakeCliError::Output {
            args: args.join(" "),
            reason: reason.to_owned(),
            output: text.clone(),
        };
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        generations_from_api(&json).ok_or_else(|| bad("not the API's generations of one host"))
    }

    /// Poll until `host` has generation `number` (the daemon adds, locks and builds config flakes
    /// in the background after it starts serving); all its generations then.
    pub fn wait_for_generation(
        &self,
        host: &str,
        number: u32,
        timeout: Duration,
    ) -> Result<Vec<Generation>, FlakeCliError> {
        let start = Instant::now();
        loop {
            let answer = self.generations(host);
            if let Ok(gens) = &answer
                && gens.iter().any(|g| g.number == number)
            {
                return Ok(gens.clone());
            }
            if start.elapsed() > timeout {
                return Err(FlakeCliError::NoGeneration {
                    host: host.to_owned(),
                    number,
                    waited: start.elapsed(),
                    last: match answer {
                        Ok(gens) => format!("{gens:?}"),
                        Err(e) => e.to_string(),
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `flakeboot flake update FLAKE --wait`: re-lock to the newest revision and build.
    pub fn update(&self, flake: &str) -> Result<String, FlakeCliError> {
        self.run(&["update", flake, "--wait"])
    }

    /// `flakeboot flake rollback HOST GENERATION`: pin the host to that generation.
    pub fn rollback(&self, host: &str, generation: u32) -> Result<String, FlakeCliError> {
        self.run(&["rollback", host, &generation.to_string()])
    }

    /// `flakeboot flake unpin HOST`: boot the newest generation again.
    pub fn unpin(&self, host: &str) -> Result<String, FlakeCliError> {
        self.run(&["unpin", host])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields the scenario relies on, from the API's answer (`flakeboot flake generations
    /// HOST --json`): the pinned generation is current, else the newest.
    #[test]
    fn generation_json_is_read() {
        let json = r#"{"lab#alpha": {"generations": [
            {"host":"lab#alpha","number":2,"revision":"0123456789abcdef",
             "init":"/nix/store/x-alpha-toplevel/init"},
            {"host":"lab#alpha","number":3,"revision":null,"init":"/i"}], "pinned": 2}}"#;
        let gens = generations_from_api(&serde_json::from_str(json).unwrap()).unwrap();
        assert_eq!(gens[0].number, 2);
        assert_eq!(gens[0].revision.as_deref(), Some("0123456789abcdef"));
        assert_eq!(gens[0].init, Path::new("/nix/store/x-alpha-toplevel/init"));
        assert_eq!(gens[0].current, Some(true));
        assert_eq!(gens[1].revision, None);
        assert_eq!(gens[1].current, Some(false));
        let unpinned = json.replace("\"pinned\": 2", "\"pinned\": null");
        let gens = generations_from_api(&serde_json::from_str(&unpinned).unwrap()).unwrap();
        assert_eq!(gens[1].current, Some(true));
        assert_eq!(generations_from_api(&serde_json::json!({})), Some(vec![]));
        assert!(Generation::from_json(&serde_json::json!({"revision": "r"})).is_none());
    }
}
