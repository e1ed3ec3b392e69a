//! How nix's git runs ssh for `git+ssh://` flakes ([`GitSsh`]): the `GIT_SSH_COMMAND` with the
//! deploy key ([`crate::deploy_key`]) only (`IdentitiesOnly`, no agent, no ssh configuration
//! files, `BatchMode`: no prompts), and the host keys it trusts: trusted on first use in
//! `<state>/ssh/known_hosts` (`StrictHostKeyChecking=accept-new`), or, when
//! `[nix] ssh_known_hosts` is set, those alone (`known_hosts.pinned`, `StrictHostKeyChecking=yes`).
//!
//! git hands `GIT_SSH_COMMAND` to `sh -c`, so the paths in it must mean the same to a shell.
//! [`GitSsh::under`] refuses a state directory with any character other than letters, digits
//! and `/._+-` rather than quoting it: nothing to get wrong. (`GIT_SSH` naming a wrapper script
//! would carry the same path through a shell, and put an executable file in the state directory.)

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::deploy_key::{DeployKeyError, KEY_FILE, KNOWN_HOSTS_FILE, PINNED_FILE, ssh_dir};

/// How nix's git runs ssh for `git+ssh://` flakes: with the deploy key in `<state>/ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSsh {
    /// `<state>/ssh`, a path a shell reads as it is.
    dir: PathBuf,
}

impl GitSsh {
    /// ssh with the deploy key under `state_dir`; refused when the path would need quoting in
    /// `GIT_SSH_COMMAND` (see the module's documentation).
    pub fn under(state_dir: &Path) -> Result<GitSsh, DeployKeyError> {
        let dir = ssh_dir(state_dir);
        let plain = dir.to_str().is_some_and(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '+' | '-'))
        });
        if !plain {
            return Err(DeployKeyError::UnsafePath {
                path: state_dir.to_owned(),
            });
        }
        Ok(GitSsh { dir })
    }

    /// `<state>/ssh/known_hosts.pinned`: `[nix] ssh_known_hosts`, written before each nix run.
    pub fn pinned_file(&self) -> PathBuf {
        self.dir.join(PINNED_FILE)
    }

    /// The `GIT_SSH_COMMAND`: the deploy key only, no prompts, no ssh configuration files; host
    /// keys from the pinned file alone when `pinned`, else trusted on first use in
    /// `<state>/ssh/known_hosts`.
    pub fn command(&self, pinned: bool) -> String {
        let (known, check) = if pinned {
            (self.pinned_file(), "yes")
        } else {
            (self.dir.join(KNOWN_HOSTS_FILE), "accept-new")
        };
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
             -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile={} \
             -o StrictHostKeyChecking={check}",
            self.dir.join(KEY_FILE).display(),
            known.display()
        )
    }

    /// Writes `lines` (`[nix] ssh_known_hosts`) to [`GitSsh::pinned_file`] (0600, atomically;
    /// the directory made 0700 if missing).
    pub fn write_pinned(&self, lines: &[String]) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let mut text = String::new();
        for line in lines {
            text.push_str(line.trim());
            text.push('\n');
        }
        // One temporary file per process and thread: concurrent nix runs never share one.
        let tmp = self.dir.join(format!(
            ".{PINNED_FILE}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.pinned_file())
        };
        write().inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::deploy_key::SSH_DIR;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn git_ssh_uses_only_the_deploy_key_and_plain_paths() {
        let ssh = GitSsh::under(Path::new("/var/lib/flakeboot")).unwrap();
        assert_eq!(
            ssh.command(false),
            "ssh -F /dev/null -i /var/lib/flakeboot/ssh/deploy_key -o IdentitiesOnly=yes \
             -o IdentityAgent=none -o BatchMode=yes -o GlobalKnownHostsFile=/dev/null \
             -o UserKnownHostsFile=/var/lib/flakeboot/ssh/known_hosts \
             -o StrictHostKeyChecking=accept-new"
        );
        assert!(ssh.command(true).ends_with(
            "-o UserKnownHostsFile=/var/lib/flakeboot/ssh/known_hosts.pinned \
             -o StrictHostKeyChecking=yes"
        ));
        for bad in [
            "/var/lib/flake boot",
            "/tmp/$(reboot)",
            "/tmp/a;b",
            "/tmp/it's",
            "/tmp/a\nb",
            "/tmp/*",
        ] {
            assert!(
                matches!(
                    GitSsh::under(Path::new(bad)),
                    Err(DeployKeyError::UnsafePath { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pinned_host_keys_are_written_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = GitSsh::under(tmp.path()).unwrap();
        ssh.write_pinned(&["  a ssh-ed25519 AAAA ".into(), "b ssh-rsa BBBB".into()])
            .unwrap();
        let file = ssh.pinned_file();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "a ssh-ed25519 AAAA\nb ssh-rsa BBBB\n"
        );
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&tmp.path().join(SSH_DIR)), 0o700);
        assert_eq!(
            std::fs::read_dir(tmp.path().join(SSH_DIR)).unwrap().count(),
            1
        );
    }
}
