//! The one way flakeboot runs nix: [`nix_command`] builds the command (arguments only, never a
//! shell; settings as `--option k v`; structured log on stderr; its own process group) and
//! [`run_nix`] runs it to the end, feeding stderr line by line to a callback, and kills nix with
//! everything it started on cancel or timeout.
//!
//! As root on a machine without the `nixbld` group (Debian's `nix-bin` creates none), nix's
//! default `build-users-group = nixbld` makes every build fail; unless the user set
//! `build-users-group`, [`nix_command`] then passes `--option build-users-group ''` (builds run
//! as root without build users) and says so once in the log.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flakeboot_config::{DEFAULT_SUBSTITUTERS, DEFAULT_TRUSTED_PUBLIC_KEYS, NixConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::conf::{ConfError, NixFiles, read_access_tokens, render};
use crate::git_ssh::GitSsh;
use crate::procs::ProcessGroup;
use crate::progress::{NixLogEvent, parse_line};

/// How long nix gets to stop its builders after SIGTERM before everything is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Longest stderr line kept (a builder may print megabytes without a newline).
const MAX_LINE: usize = 64 * 1024;

/// How nix is run: the binary, every setting it gets and where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixSettings {
    /// The `nix` binary (default: `nix` from `PATH`).
    pub nix_bin: PathBuf,
    /// Settings as `key`, `value` pairs, in order (later ones win in nix).
    pub options: Vec<(String, String)>,
    /// Where nix's configuration file, HOME and cache live. Set: the settings and access tokens
    /// go into that owner-only `nix.conf` (`NIX_USER_CONF_FILES`); unset (tests): the settings
    /// are `--option` arguments and access tokens are not used.
    pub files: Option<NixFiles>,
    /// `[nix] access_tokens_file`, read before each nix run.
    pub access_tokens_file: Option<PathBuf>,
    /// How nix's git runs ssh for `git+ssh://` flakes: the deploy key (set with the files, see
    /// [`crate::git_ssh`]).
    pub git_ssh: Option<GitSsh>,
    /// `[nix] ssh_known_hosts`: set, the only SSH host keys trusted.
    pub ssh_known_hosts: Vec<String>,
}

impl Default for NixSettings {
    fn default() -> Self {
        NixSettings {
            nix_bin: PathBuf::from("nix"),
            options: Vec::new(),
            files: None,
            access_tokens_file: None,
            git_ssh: None,
            ssh_known_hosts: Vec::new(),
        }
    }
}

impl NixSettings {
    /// The settings `[nix]` asks for; unset caches and keys are cache.nixos.org's.
    pub fn from_config(config: &NixConfig) -> NixSettings {
        let mut s = NixSettings {
            access_tokens_file: config.access_tokens_file.clone(),
            ssh_known_hosts: config.ssh_known_hosts.clone(),
            ..NixSettings::default()
        };
        let or_default = |set: &Option<Vec<String>>, default: &[&str]| match set {
            Some(v) => v.join(" "),
            None => default.join(" "),
        };
        s.options.push((
            "substituters".into(),
            or_default(&config.substituters, DEFAULT_SUBSTITUTERS),
        ));
        s.options.push((
            "trusted-public-keys".into(),
            or_default(&config.trusted_public_keys, DEFAULT_TRUSTED_PUBLIC_KEYS),
        ));
        if !config.builders.is_empty() {
            s.options
                .push(("builders".into(), config.builders.join(";")));
        }
        if let Some(jobs) = config.max_jobs {
            s.options.push(("max-jobs".into(), jobs.to_string()));
        }
        for (k, v) in &config.extra_options {
            s.options.push((k.clone(), v.clone()));
        }
        s
    }

    /// nix's configuration file, HOME and cache under `<state>/nix` (see [`crate::conf`]), and
    /// git over ssh with the deploy key in `<state>/ssh` (see [`crate::deploy_key`]; left out,
    /// with a warning, when the state directory's path cannot be carried in its command line).
    pub fn with_files(mut self, state_dir: &std::path::Path) -> NixSettings {
        self.files = Some(NixFiles::under(state_dir));
        self.git_ssh = match GitSsh::under(state_dir) {
            Ok(ssh) => Some(ssh),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        self
    }

    /// Write `nix.conf` from these settings (and the access tokens of `[nix] access_tokens_file`
    /// and of `<state>/nix/access-tokens`), and the pinned SSH host
    /// keys, when nix's files are set.
    pub fn write_files(&self) -> Result<(), ConfError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        if let Some(ssh) = &self.git_ssh
            && !self.ssh_known_hosts.is_empty()
        {
            ssh.write_pinned(&self.ssh_known_hosts)
                .map_err(|source| ConfError::Write {
                    path: ssh.pinned_file(),
                    source,
                })?;
        }
        let mut tokens = match &self.access_tokens_file {
            Some(path) => read_access_tokens(path)?,
            None => Vec::new(),
        };
        // Those set from the UI, API or CLI; the config file's win for a host in both.
        for (host, token) in files.tokens().read()? {
            if !tokens.iter().any(|(h, _)| *h == host) {
                tokens.push((host, token));
            }
        }
        files.write(&render(&self.options, &tokens)?)
    }

    /// One more `--option key value` (later ones win in nix).
    pub fn with_option(mut self, key: &str, value: &str) -> NixSettings {
        self.options.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// The nix setting that names the group whose members run builds.
const BUILD_USERS_GROUP: &str = "build-users-group";

/// The group nix builds as by default.
const DEFAULT_BUILD_GROUP: &str = "nixbld";

/// What decides whether nix may use its default build users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildUsers {
    /// flakeboot runs as root (nix then builds as members of `build-users-group`).
    pub is_root: bool,
    /// The group `nixbld` exists.
    pub group_exists: bool,
}

impl BuildUsers {
    /// This process's, looked up once (effective uid; `getgrnam("nixbld")`).
    pub fn of_this_process() -> BuildUsers {
        static FACTS: OnceLock<BuildUsers> = OnceLock::new();
        *FACTS.get_or_init(|| BuildUsers {
            is_root: nix::unistd::Uid::effective().is_root(),
            group_exists: match nix::unistd::Group::from_name(DEFAULT_BUILD_GROUP) {
                Ok(group) => group.is_some(),
                Err(e) => {
                    // Cannot tell: leave nix's own setting alone.
                    tracing::debug!("cannot look up group {DEFAULT_BUILD_GROUP:?}: {e}");
                    true
                }
            },
        })
    }

    /// Whether nix needs `--option build-users-group ''` (pure): as root without the `nixbld`
    /// group, unless the user set `build-users-group` themselves.
    pub fn need_empty_group(self, options: &[(String, String)]) -> bool {
        self.is_root && !self.group_exists && !options.iter().any(|(k, _)| k == BUILD_USERS_GROUP)
    }
}

/// Why running nix did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// nix could not be started at all.
    #[error("cannot run {}: {source} (is nix installed?)", program.display())]
    Spawn {
        /// The binary.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// nix ran and failed; `message` is nix's own error message.
    #[error("nix {subcommand} failed ({status}): {message}")]
    Failed {
        /// `build`, `eval`, `flake metadata` ...
        subcommand: String,
        /// The exit status.
        status: String,
        /// nix's error message (or the end of its output when it printed none).
        message: String,
    },
    /// Cancelled: nix and everything it started were killed.
    #[error("cancelled")]
    Cancelled,
    /// Ran longer than allowed: nix and everything it started were killed.
    #[error("timed out after {}s", after.as_secs())]
    TimedOut {
        /// The limit.
        after: Duration,
    },
    /// Reading nix's output failed.
    #[error("reading nix's output: {0}")]
    Io(#[from] std::io::Error),
    /// flakeboot refused to start nix (e.g. the disk is below `[nix] min_free`).
    #[error("{0}")]
    Refused(String),
    /// nix's configuration file could not be written.
    #[error(transparent)]
    Config(#[from] ConfError),
}

/// Build the command for `nix <args>`: the only place a nix command line is made.
///
/// Every argument is passed as one argv entry (no shell). nix gets the flake features, the
/// settings as `--option`s and `--log-format internal-json`; it starts in a new process group
/// (see [`run_nix`] for how that group is ended).
/// As root without a `nixbld` group, `--option build-users-group ''` is added unless the settings
/// name `build-users-group` (see [`BuildUsers`]).
pub fn nix_command(settings: &NixSettings, args: &[OsString]) -> Command {
    command_for(settings, args, BuildUsers::of_this_process())
}

/// [`nix_command`] for a machine described by `build_users`.
fn command_for(settings: &NixSettings, args: &[OsString], build_users: BuildUsers) -> Command {
    let mut cmd = Command::new(&settings.nix_bin);
    cmd.arg("--extra-experimental-features")
        .arg("nix-command flakes");
    match &settings.files {
        Some(files) => {
            cmd.env("NIX_USER_CONF_FILES", files.conf())
                .env("HOME", files.home())
                .env("XDG_CACHE_HOME", files.cache());
        }
        None => {
            for (key, value) in &settings.options {
                cmd.arg("--option").arg(key).arg(value);
            }
        }
    }
    if let Some(ssh) = &settings.git_ssh {
        // git runs it for `git+ssh://` (and `git@host:` remotes); no terminal prompts either.
        let pinned = !settings.ssh_known_hosts.is_empty();
        cmd.env("GIT_SSH_COMMAND", ssh.command(pinned))
            .env("GIT_TERMINAL_PROMPT", "0");
    }
    if build_users.need_empty_group(&settings.options) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "running as root and the group {DEFAULT_BUILD_GROUP:?} (nix's build-users-group) \
                 does not exist: nix runs with --option build-users-group '' (builds run as \
                 root, without build users); create the group and its build users, or set \
                 [nix] extra_options build-users-group, to choose otherwise"
            );
        }
        cmd.arg("--option").arg(BUILD_USERS_GROUP).arg("");
    }
    cmd.arg("--log-format").arg("internal-json");
    cmd.args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// Run `nix <args>` to completion and return its stdout. Each stderr line goes to `on_line` as
/// it arrives. On `cancel` or after `timeout`, nix and every process it started are ended
/// (SIGTERM, then SIGKILL after a grace period) before this returns.
pub async fn run_nix(
    settings: &NixSettings,
    args: &[OsString],
    cancel: &CancellationToken,
    timeout: Option<Duration>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<u8>, CommandError> {
    let subcommand = subcommand_of(args);
    settings.write_files()?;
    let mut child = nix_command(settings, args)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            program: settings.nix_bin.clone(),
            source,
        })?;
    let mut group = ProcessGroup::new(child.id().unwrap_or(0));
    let mut stdout = child.stdout.take();
    let stdout_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(out) = stdout.as_mut() {
            out.read_to_end(&mut buf).await?;
        }
        Ok::<_, std::io::Error>(buf)
    });
    let (line_tx, mut line_rx) = mpsc::channel::<String>(256);
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        buf.truncate(MAX_LINE);
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end_matches(['\n', '\r']).to_owned();
                        if line_tx.send(line).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }

    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let mut errors = ErrorCollector::default();
    let mut stderr_open = true;
    let mut status = None;
    let stopped = loop {
        tokio::select! {
            line = line_rx.recv(), if stderr_open => match line {
                Some(line) => {
                    errors.observe(&line);
                    on_line(&line);
                }
                None => stderr_open = false,
            },
            exit = child.wait(), if status.is_none() => {
                status = Some(exit?);
                group.disarm();
                if !stderr_open {
                    break None;
                }
            },
            () = cancel.cancelled() => break Some(CommandError::Cancelled),
            () = &mut expired => break Some(CommandError::TimedOut {
                after: timeout.unwrap_or_default(),
            }),
        }
        if !stderr_open && status.is_some() {
            break None;
        }
    };
    if let Some(reason) = stopped {
        group
            .terminate(STOP_GRACE, async {
                let _ = child.wait().await;
            })
            .await;
        // Keep what nix said while stopping (e.g. "interrupted by the user").
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(200), line_rx.recv()).await
        {
            on_line(&line);
        }
        stdout_task.abort();
        return Err(reason);
    }
    let stdout = stdout_task
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    match status {
        Some(s) if s.success() => Ok(stdout),
        other => Err(CommandError::Failed {
            subcommand,
            status: other.map_or_else(|| "unknown status".into(), |s| s.to_string()),
            message: errors.message(),
        }),
    }
}

/// The words before the first option: `flake metadata`, `build`, `eval`.
fn subcommand_of(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .take_while(|a| !a.starts_with('-'))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Remembers what nix said went wrong.
#[derive(Debug, Default)]
struct ErrorCollector {
    errors: Vec<String>,
    tail: Vec<String>,
}

impl ErrorCollector {
    fn observe(&mut self, line: &str) {
        match parse_line(line) {
            Some(Ok(NixLogEvent::Message { level: 0, text })) => {
                if let Some(msg) = text.strip_prefix("error:") {
                    self.errors.push(msg.trim().to_owned());
                }
            }
            Some(_) => {}
            None => {
                self.tail.push(line.to_owned());
                if self.tail.len() > 5 {
                    self.tail.remove(0);
                }
            }
        }
    }

    fn message(&self) -> String {
        if let Some(last) = self.errors.last() {
            // A program nix ran (git, ssh through git) failed: what it printed says why
            // ("Permission denied (publickey)", "Host key verification failed").
            if last.starts_with("program '") && !self.tail.is_empty() {
                return format!("{last}: {}", self.tail.join("\n"));
            }
            last.clone()
        } else if self.tail.is_empty() {
            "nix printed no error message".into()
        } else {
            self.tail.join("\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_options_in_order() {
        let config = NixConfig {
            substituters: Some(vec![]),
            trusted_public_keys: Some(vec!["a:1".into(), "b:2".into()]),
            builders: vec!["ssh://b1 aarch64-linux".into(), "ssh://b2".into()],
            max_jobs: Some(2),
            extra_options: [("sandbox".to_owned(), "false".to_owned())].into(),
            ..NixConfig::default()
        };
        let s = NixSettings::from_config(&config);
        assert_eq!(
            s.options,
            vec![
                ("substituters".into(), String::new()),
                ("trusted-public-keys".into(), "a:1 b:2".into()),
                ("builders".into(), "ssh://b1 aarch64-linux;ssh://b2".into()),
                ("max-jobs".into(), "2".into()),
                ("sandbox".into(), "false".into()),
            ]
        );
        assert_eq!(
            NixSettings::from_config(&NixConfig::default()).options,
            vec![
                ("substituters".into(), "https://cache.nixos.org".into()),
                (
                    "trusted-public-keys".into(),
                    "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=".into()
                ),
            ]
        );
    }

    #[test]
    fn with_files_settings_go_to_the_conf_not_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "github.com=ghp_secret\n").unwrap();
        std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let config = NixConfig {
            max_jobs: Some(3),
            access_tokens_file: Some(tokens),
            ..NixConfig::default()
        };
        let s = NixSettings::from_config(&config).with_files(dir.path());
        s.write_files().unwrap();
        let cmd = command_for(
            &s,
            &["build".into()],
            BuildUsers {
                is_root: true,
                group_exists: false,
            },
        );
        let std = cmd.as_std();
        let args: Vec<_> = std.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "--extra-experimental-features",
                "nix-command flakes",
                "--option",
                "build-users-group",
                "",
                "--log-format",
                "internal-json",
                "build"
            ]
        );
        let envs: Vec<_> = std
            .get_envs()
            .map(|(k, v)| (k.to_string_lossy(), v.map(|v| v.to_string_lossy())))
            .collect();
        let conf = dir.path().join("nix/nix.conf");
        assert!(envs.contains(&("NIX_USER_CONF_FILES".into(), Some(conf.to_string_lossy()))));
        let git_ssh = envs
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .and_then(|(_, v)| v.clone())
            .unwrap();
        let key = dir.path().join("ssh/deploy_key");
        assert!(git_ssh.starts_with(&format!("ssh -F /dev/null -i {} ", key.display())));
        assert!(envs.contains(&(
            "HOME".into(),
            Some(dir.path().join("nix/home").to_string_lossy())
        )));
        let text = std::fs::read_to_string(conf).unwrap();
        assert!(text.contains("max-jobs = 3\n"), "{text}");
        assert!(
            text.contains("access-tokens = github.com=ghp_secret\n"),
            "{text}"
        );
        assert!(!format!("{s:?}").contains("ghp_secret"));
    }

    #[test]
    fn tokens_set_from_the_ui_join_the_config_files_which_win_for_a_host_in_both() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(
            &tokens,
            "github.com=ghp_from_file
",
        )
        .unwrap();
        std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let config = NixConfig {
            access_tokens_file: Some(tokens),
            ..NixConfig::default()
        };
        let s = NixSettings::from_config(&config).with_files(dir.path());
        let managed = crate::tokens::TokenFile::under(dir.path());
        managed.set("github.com", "ghp_from_ui").unwrap();
        managed.set("gitlab.com", "PAT:glpat_ui").unwrap();
        s.write_files().unwrap();
        let text = std::fs::read_to_string(dir.path().join("nix/nix.conf")).unwrap();
        assert!(
            text.ends_with("access-tokens = github.com=ghp_from_file gitlab.com=PAT:glpat_ui\n"),
            "{text}"
        );
        // Removed from the UI: gone from the next run's nix.conf.
        managed.remove("gitlab.com").unwrap();
        s.write_files().unwrap();
        let text = std::fs::read_to_string(dir.path().join("nix/nix.conf")).unwrap();
        assert!(!text.contains("gitlab.com"), "{text}");
    }

    #[test]
    fn the_command_has_arguments_only_and_its_own_group() {
        let s = NixSettings::default().with_option("substituters", "");
        let cmd = command_for(
            &s,
            &["eval".into(), "--json".into(), "a b; rm -rf /".into()],
            BuildUsers {
                is_root: false,
                group_exists: false,
            },
        );
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "nix");
        let args: Vec<_> = std.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "--extra-experimental-features",
                "nix-command flakes",
                "--option",
                "substituters",
                "",
                "--log-format",
                "internal-json",
                "eval",
                "--json",
                "a b; rm -rf /"
            ]
        );
    }

    #[test]
    fn build_users_group_is_emptied_only_for_root_without_nixbld_and_unset() {
        let root_alone = BuildUsers {
            is_root: true,
            group_exists: false,
        };
        let none: Vec<(String, String)> = vec![];
        let unrelated = vec![("substituters".to_owned(), String::new())];
        let set = |v: &str| vec![("build-users-group".to_owned(), v.to_owned())];
        assert!(root_alone.need_empty_group(&none));
        assert!(root_alone.need_empty_group(&unrelated));
        // The user's own choice wins, whatever it is.
        assert!(!root_alone.need_empty_group(&set("")));
        assert!(!root_alone.need_empty_group(&set("builders")));
        // With the group, or not as root (nix then builds as this user), nix's default works.
        for facts in [(true, true), (false, false), (false, true)] {
            let b = BuildUsers {
                is_root: facts.0,
                group_exists: facts.1,
            };
            assert!(!b.need_empty_group(&none), "{b:?}");
        }

        let args = |s: &NixSettings| -> Vec<String> {
            command_for(s, &["build".into()], root_alone)
                .as_std()
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let offline = NixSettings::default().with_option("substituters", "");
        assert_eq!(
            args(&offline)[2..],
            [
                "--option",
                "substituters",
                "",
                "--option",
                "build-users-group",
                "",
                "--log-format",
                "internal-json",
                "build"
            ]
        );
        let chosen = NixSettings::default().with_option("build-users-group", "mybld");
        assert_eq!(
            args(&chosen)[2..],
            [
                "--option",
                "build-users-group",
                "mybld",
                "--log-format",
                "internal-json",
                "build"
            ]
        );
    }

    #[test]
    fn errors_are_nix_messages_without_colours() {
        let mut c = ErrorCollector::default();
        for line in include_str!("../tests/fixtures/logs/build-failed.log").lines() {
            c.observe(line);
        }
        let m = c.message();
        assert!(m.starts_with("builder for '/nix/store/"), "{m}");
        assert!(m.ends_with("failed with exit code 3"), "{m}");
        let mut git = ErrorCollector::default();
        git.observe("git@forge: Permission denied (publickey).");
        git.observe("fatal: Could not read from remote repository.");
        git.observe(
            r#"@nix {"action":"msg","level":0,"msg":"error: program 'git' failed with exit code 128"}"#,
        );
        assert_eq!(
            git.message(),
            "program 'git' failed with exit code 128: git@forge: Permission denied (publickey).\n\
             fatal: Could not read from remote repository."
        );
        let mut plain = ErrorCollector::default();
        plain.observe("something odd");
        assert_eq!(plain.message(), "something odd");
    }

    #[test]
    fn subcommand_is_named_in_errors() {
        let args: Vec<OsString> = ["flake", "metadata", "--json", "x"]
            .map(OsString::from)
            .into();
        assert_eq!(subcommand_of(&args), "flake metadata");
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_spawn_error() {
        let s = NixSettings {
            nix_bin: "/nonexistent/nix".into(),
            ..NixSettings::default()
        };
        let err = run_nix(&s, &[], &CancellationToken::new(), None, &mut |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
    }
}
