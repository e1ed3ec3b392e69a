//! Private flakes over `git+ssh://` with the appliance's deploy key: a real `sshd` on a loopback
//! port, whose `authorized_keys` holds only the deploy key's public half, serves the fixture
//! flake's git repository; real nix (through the runner, as the daemon runs it) locks and builds
//! `git+ssh://<user>@127.0.0.1:<port>/<repo>`. Without the key in `authorized_keys`, adding the
//! flake fails and says why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use flakeboot_nix::{FlakeError, Flakes, deploy_key};
use flakeboot_store::BuildState;
use flakeboot_testbed::require_tool;

/// A real `sshd` on 127.0.0.1, killed (by its PID) when dropped.
struct Sshd {
    child: Child,
    port: u16,
    authorized_keys: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sshd {
    /// sshd on a free loopback port, letting in only `authorized_key` (public key lines).
    fn start(authorized_key: &str) -> Sshd {
        let sshd = require_tool("sshd");
        let keygen = require_tool("ssh-keygen");
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_key");
        let out = Command::new(keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, authorized_key).unwrap();
        // sshd's privilege separation directory (the Debian package makes it at service start).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 StrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 UsePAM no\nPidFile none\nLogLevel VERBOSE\n",
                host_key.display(),
                authorized_keys.display()
            ),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut sshd = Sshd {
            child,
            port,
            authorized_keys,
            _dir: dir,
        };
        sshd.wait_for_banner();
        sshd
    }

    fn wait_for_banner(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("sshd exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "sshd did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `git+ssh://` URL of the repository at `path`, as `user` (nix 2.8 fetches `master` from
    /// a remote unless told the branch).
    fn url(&self, user: &str, path: &Path) -> String {
        format!(
            "git+ssh://{user}@127.0.0.1:{}{}?ref=main",
            self.port,
            path.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user the test runs as: sshd lets in existing accounts only.
fn this_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .expect("the test's uid has a passwd entry")
        .name
}

#[tokio::test(flavor = "multi_thread")]
async fn a_git_ssh_flake_is_fetched_with_the_deploy_key_and_builds() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("gitssh");
    let rev = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let (_tmp, state) = state_dir();
    let key = deploy_key::load_or_create(&state, "flakeboot@test").unwrap();
    let sshd = Sshd::start(&format!("{}\n", key.public_key));
    let flakes = Flakes::new(start(&state, runner_config(&state)));
    let url = sshd.url(&this_user(), repo.path());

    let flake = flakes.add(&url, Some("private")).await.unwrap();
    assert_eq!(flake.revision.as_deref(), Some(rev.as_str()));
    assert!(
        flake.hosts.iter().any(|h| h.name == "alpha"),
        "{:?}",
        flake.hosts
    );
    // The host key was trusted on first use, in the appliance's own known_hosts.
    let known = std::fs::read_to_string(state.join("ssh/known_hosts")).unwrap();
    assert!(
        known.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{known}"
    );

    let id = flakes.build("private", "alpha").unwrap();
    let record = tokio::time::timeout(Duration::from_secs(120), flakes.runner().wait(id))
        .await
        .expect("the build finishes")
        .unwrap();
    assert_eq!(record.state, BuildState::Succeeded, "{record:?}");
    assert_eq!(record.revision.as_deref(), Some(rev.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_deploy_key_in_authorized_keys_adding_fails_clearly() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("gitssh-denied");
    let (_tmp, state) = state_dir();
    let key = deploy_key::load_or_create(&state, "flakeboot@test").unwrap();
    // The forge knows some other key only.
    let (_other_tmp, other_state) = state_dir();
    let other = deploy_key::load_or_create(&other_state, "someone@else").unwrap();
    assert_ne!(other.public_key, key.public_key);
    let sshd = Sshd::start(&format!("{}\n", other.public_key));
    let flakes = Flakes::new(start(&state, runner_config(&state)));

    let err = flakes
        .add(&sshd.url(&this_user(), repo.path()), Some("private"))
        .await
        .unwrap_err();
    assert!(matches!(err, FlakeError::Lock(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("Permission denied (publickey)"), "{msg}");
    assert!(flakes.flake("private").is_err());

    // Once the forge has the deploy key, the same URL works (nothing was cached as failed).
    std::fs::write(&sshd.authorized_keys, format!("{}\n", key.public_key)).unwrap();
    let flake = flakes
        .add(&sshd.url(&this_user(), repo.path()), Some("private"))
        .await
        .unwrap();
    assert!(flake.revision.is_some());
}

/// The host key of `sshd` as a `known_hosts` line for `[127.0.0.1]:port`.
fn host_key_line(sshd: &Sshd) -> String {
    let public = std::fs::read_to_string(sshd._dir.path().join("host_key.pub")).unwrap();
    let mut fields = public.split_whitespace();
    let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
    format!("[127.0.0.1]:{} {kind} {key}", sshd.port)
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_host_keys_are_the_only_ones_trusted() {
    let _nix = NIX_STORE_LOCK.read().await;
    let repo = FixtureRepo::new("gitssh-pinned");
    let (_tmp, state) = state_dir();
    let key = deploy_key::load_or_create(&state, "flakeboot@test").unwrap();
    let sshd = Sshd::start(&format!("{}\n", key.public_key));
    let url = sshd.url(&this_user(), repo.path());

    // Another server's key pinned for this address: refused, never trusted on first use.
    let (_other_tmp, other_state) = state_dir();
    let impostor = deploy_key::load_or_create(&other_state, "x").unwrap();
    let mut wrong = runner_config(&state);
    wrong.settings.ssh_known_hosts = vec![format!(
        "[127.0.0.1]:{} {}",
        sshd.port,
        impostor.public_key.rsplit_once(' ').unwrap().0
    )];
    let flakes = Flakes::new(start(&state, wrong));
    let err = flakes.add(&url, Some("pinned")).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Host key verification failed"), "{msg}");
    assert!(!state.join("ssh/known_hosts").exists());

    // The server's own key pinned (a settings change: the next nix run uses it): fetched.
    let mut right = runner_config(&state).settings;
    right.ssh_known_hosts = vec![host_key_line(&sshd)];
    flakes.runner().set_settings(right);
    let flake = flakes.add(&url, Some("pinned")).await.unwrap();
    assert!(flake.revision.is_some());
    assert!(!state.join("ssh/known_hosts").exists());
}
