//! A bootable flake in a private git repository: `flakeboot-nix`'s fixture flake
//! (`crates/adapters/nix/tests/fixtures/hosts`, NixOS-shaped hosts without nixpkgs) with busybox-static
//! in `bin/` (its builders' only tool), the scenario's real kernel as `./vmlinuz` and its marker
//! initramfs as `./initrd.img`, so host `alpha` really boots in QEMU. Each commit of `./marker`
//! is a new revision whose initrd and toplevel store paths differ.
//!
//! The fixture also holds hosts made to fail or to build for ten minutes (`broken`, `slow`, ...):
//! the repository's `flake.nix` imports the fixture unchanged (as `fixture.nix`) and exposes only
//! the hosts that build in a moment, so "update and build every host" succeeds quickly.

use std::path::{Path, PathBuf};
use std::process::Command;

use flakeboot_testbed::{require_tool, workspace_root};

/// Where the fixture flake lives (owned by `flakeboot-nix`'s tests; only read here).
const FIXTURE: &str = "crates/adapters/nix/tests/fixtures/hosts";

/// The repository's flake: the fixture's `alpha` and `beta` (netboot) and `diskonly` (no
/// netboot outputs: listed, never built).
const WRAPPER: &str = r#"# flakeboot hil-tests: the netboot fixture's hosts that build in a moment.
{
  description = "flakeboot hil-test flake";
  outputs = { self }:
    let fixture = (import ./fixture.nix).outputs { inherit self; };
    in {
      nixosConfigurations = { inherit (fixture.nixosConfigurations) alpha beta diskonly; };
    };
}
"#;

/// The busybox applets the fixture's builders call (see its flake.nix).
const APPLETS: [&str; 8] = [
    "sh", "mkdir", "cp", "chmod", "cpio", "sleep", "echo", "printf",
];

/// Setting up or committing to the flake repository failed.
#[derive(Debug, thiserror::Error)]
pub enum FlakeRepoError {
    #[error("preparing the flake repository {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("git {args} in {dir} failed: {message}")]
    Git {
        args: String,
        dir: PathBuf,
        message: String,
    },
}

/// The flake's git repository (deleted on drop).
#[derive(Debug)]
pub struct FlakeRepo {
    dir: tempfile::TempDir,
}

impl FlakeRepo {
    /// Copy the fixture flake, busybox, `kernel` (as `vmlinuz`) and `initrd` (as `initrd.img`)
    /// into a new git repository. Nothing is committed yet: call [`FlakeRepo::commit_marker`].
    pub fn new(kernel: &Path, initrd: &Path) -> Result<FlakeRepo, FlakeRepoError> {
        require_tool("git");
        let busybox = require_tool("busybox");
        let dir = tempfile::Builder::new()
            .prefix("fbt-flake-")
            .tempdir()
            .map_err(|source| io_error(Path::new("/tmp"), source))?;
        let root = dir.path();
        let fixture = workspace_root().join(FIXTURE);
        copy(&fixture.join("flake.nix"), &root.join("fixture.nix"))?;
        copy(&fixture.join("kernel"), &root.join("kernel"))?;
        let flake = root.join("flake.nix");
        std::fs::write(&flake, WRAPPER).map_err(|source| io_error(&flake, source))?;
        copy(kernel, &root.join("vmlinuz"))?;
        copy(initrd, &root.join("initrd.img"))?;
        let bin = root.join("bin");
        std::fs::create_dir(&bin).map_err(|source| io_error(&bin, source))?;
        copy(&busybox, &bin.join("busybox"))?;
        for applet in APPLETS {
            let link = bin.join(applet);
            std::os::unix::fs::symlink("busybox", &link)
                .map_err(|source| io_error(&link, source))?;
        }
        let repo = FlakeRepo { dir };
        repo.git(&["init", "-q", "-b", "main"])?;
        Ok(repo)
    }

    /// The repository's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The flake reference a user would add: `git+file://<dir>`.
    pub fn url(&self) -> String {
        format!("git+file://{}", self.path().display())
    }

    /// Write `label` into `./marker` (it ends up in the initrd's and toplevel's store paths) and
    /// commit everything; returns the new revision (40 hex digits).
    pub fn commit_marker(&self, label: &str) -> Result<String, FlakeRepoError> {
        let marker = self.path().join("marker");
        std::fs::write(&marker, format!("{label}\n"))
            .map_err(|source| io_error(&marker, source))?;
        self.git(&["add", "--all", "."])?;
        self.git(&["commit", "-q", "-m", label])?;
        Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_owned())
    }

    /// Run git in the repository with a fixed identity; its stdout.
    fn git(&self, args: &[&str]) -> Result<String, FlakeRepoError> {
        let failed = |message: String| FlakeRepoError::Git {
            args: args.join(" "),
            dir: self.path().to_owned(),
            message,
        };
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "flakeboot hil-test")
            .env("GIT_AUTHOR_EMAIL", "hil-test@flakeboot.invalid")
            .env("GIT_COMMITTER_NAME", "flakeboot hil-test")
            .env("GIT_COMMITTER_EMAIL", "hil-test@flakeboot.invalid")
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), FlakeRepoError> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|source| io_error(from, source))
}

fn io_error(path: &Path, source: std::io::Error) -> FlakeRepoError {
    FlakeRepoError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::{ApplianceConfig, Mode};

    /// Each commit is a new revision, with the fixture, the boot files and busybox tracked.
    #[test]
    fn commits_make_new_revisions_with_every_file_tracked() {
        let files = tempfile::tempdir().unwrap();
        let (kernel, initrd) = (files.path().join("k"), files.path().join("i"));
        std::fs::write(&kernel, b"kernel").unwrap();
        std::fs::write(&initrd, b"initrd").unwrap();
        let repo = FlakeRepo::new(&kernel, &initrd).unwrap();
        let rev1 = repo.commit_marker("rev1").unwrap();
        let rev2 = repo.commit_marker("rev2").unwrap();
        assert_eq!(rev1.len(), 40, "{rev1}");
        assert_ne!(rev1, rev2);
        let tracked = repo.git(&["ls-files"]).unwrap();
        for f in [
            "flake.nix",
            "fixture.nix",
            "vmlinuz",
            "initrd.img",
            "marker",
            "bin/busybox",
            "bin/sh",
        ] {
            assert!(tracked.lines().any(|l| l == f), "{f} untracked:\n{tracked}");
        }
        assert_eq!(
            std::fs::read(repo.path().join("vmlinuz")).unwrap(),
            b"kernel"
        );
        assert!(repo.url().starts_with("git+file:///"), "{}", repo.url());
    }

    /// A config with a flake, nix offline and a machine assigned to a flake host is one the
    /// daemon's config crate accepts.
    #[test]
    fn flake_configs_pass_the_config_crate() {
        let text = ApplianceConfig::new(Mode::Router)
            .flake("git+file:///tmp/x", "lab")
            .machine("52:54:00:fb:00:01", "alpha", "fbt.marker=alpha")
            .to_toml();
        let parsed = flakeboot_config::Config::parse(&text, Path::new("generated.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.flakes[0].url, "git+file:///tmp/x");
        assert_eq!(parsed.nix.allowed_paths, [PathBuf::from("/tmp/x")]);
        assert_eq!(parsed.flakes[0].name.as_deref(), Some("lab"));
        assert_eq!(parsed.nix.substituters, Some(vec![]));
        assert_eq!(parsed.nix.extra_options["build-users-group"], "");
        assert_eq!(parsed.machines[0].host.as_deref(), Some("alpha"));
    }
}
