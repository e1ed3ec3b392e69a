//! Restoring a backup on a fresh appliance from its setup page, while the daemon runs.
//!
//! [`crate::backup::restore`] wants an empty state directory (`flakeboot restore`, the daemon
//! stopped). A fresh appliance's daemon already has one (its store with the setup code, its own
//! TLS key), so [`SetupRestore`] receives the archive into an owner-only file beside it,
//! restores it into a new directory next to it (checked as any restore: paths, the store
//! opens), swaps the two, and asks the daemon to start again on the restored state (the
//! daemon replaces its process with a new one, [`SetupRestore::restart_requested`]). The fresh
//! state is deleted: its setup code, its own TLS key and what it saw on the LAN before setup.
//! Setup's code guards it, checked by the caller before anything is received.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

use flakeboot_store::{AuditRecord, Store};

use crate::backup::{self, BackupError, Restored};
use crate::upload::{self, ReceiveError};

/// The largest archive received (the store of a large site, its logs and keys).
pub const MAX_ARCHIVE: u64 = 2 << 30;

/// Why a restore from the setup page failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupRestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("another restore is running")]
    Busy,
    #[error("the backup was not received: {0}")]
    Receive(#[from] ReceiveError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

fn io_err(what: &Path) -> impl FnOnce(io::Error) -> SetupRestoreError {
    let what = what.display().to_string();
    move |source| SetupRestoreError::Io { what, source }
}

/// Restores onto the running daemon's state directory and asks it to start again.
#[derive(Debug, Clone)]
pub struct SetupRestore {
    state_dir: PathBuf,
    config_file: PathBuf,
    restart: CancellationToken,
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl SetupRestore {
    /// For the daemon serving `state_dir` with the config file `config_file`.
    pub fn new(state_dir: &Path, config_file: &Path) -> SetupRestore {
        SetupRestore {
            state_dir: state_dir.to_owned(),
            config_file: config_file.to_owned(),
            restart: CancellationToken::new(),
            busy: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Cancelled once a restore has replaced the state directory: the daemon stops its
    /// services and starts again on the restored state.
    pub fn restart_requested(&self) -> CancellationToken {
        self.restart.clone()
    }

    /// Receives the archive from `body`, restores it in place of the state directory (and the
    /// config file, when the backup has one of its own) and requests the restart. On any
    /// error the state directory is as it was.
    ///
    /// `audit` (who restored it, from where) is appended to the restored store's audit log.
    pub async fn restore(
        &self,
        mut body: impl AsyncRead + Unpin,
        passphrase: String,
        audit: AuditRecord,
    ) -> Result<Restored, SetupRestoreError> {
        let _held = self.busy.try_lock().map_err(|_| SetupRestoreError::Busy)?;
        backup::check_passphrase(&passphrase)?;
        let upload = beside(&self.state_dir, "upload");
        let received = upload::receive(&mut body, &upload, MAX_ARCHIVE).await;
        let result = match received {
            Ok(_) => {
                let (upload, state, config) = (
                    upload.clone(),
                    self.state_dir.clone(),
                    self.config_file.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    replace(&upload, &passphrase, &state, &config, &audit)
                })
                .await
                .unwrap_or_else(|e| {
                    Err(SetupRestoreError::Io {
                        what: "restoring".into(),
                        source: io::Error::other(e.to_string()),
                    })
                })
            }
            Err(e) => Err(e.into()),
        };
        let _ = fs::remove_file(&upload);
        if result.is_ok() {
            self.restart.cancel();
        }
        result
    }
}

/// `<parent>/.<name>.<what>-<pid>`: a path beside the state directory, on its file system.
fn beside(state_dir: &Path, what: &str) -> PathBuf {
    let name = state_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let parent = state_dir.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{name}.{what}-{}", std::process::id()))
}

/// Restores `archive` into a new directory beside `state_dir`, then swaps the two; the config
/// file the backup carries goes to `config_file`. The replaced state is deleted; a config file
/// that lay inside it and that the backup does not replace is kept.
fn replace(
    archive: &Path,
    passphrase: &str,
    state_dir: &Path,
    config_file: &Path,
    audit: &AuditRecord,
) -> Result<Restored, SetupRestoreError> {
    let fresh = beside(state_dir, "restored");
    let config_copy = beside(state_dir, "config");
    let _ = fs::remove_dir_all(&fresh);
    let input = fs::File::open(archive).map_err(io_err(archive))?;
    let restored = backup::restore(
        io::BufReader::new(input),
        passphrase,
        &fresh,
        Some(&config_copy),
    );
    let mut restored = match restored {
        Ok(restored) => restored,
        Err(e) => {
            let _ = fs::remove_dir_all(&fresh);
            let _ = fs::remove_file(&config_copy);
            return Err(e.into());
        }
    };
    // The restore in the restored audit log (a failure to write it stops nothing).
    match Store::open(&fresh).and_then(|store| store.append_audit(audit)) {
        Ok(()) => {}
        Err(e) => tracing::warn!(error = %e, "the restore was not written to the audit log"),
    }
    let old = beside(state_dir, "replaced");
    let _ = fs::remove_dir_all(&old);
    fs::rename(state_dir, &old).map_err(io_err(state_dir))?;
    if let Err(e) = fs::rename(&fresh, state_dir) {
        let _ = fs::rename(&old, state_dir);
        let _ = fs::remove_dir_all(&fresh);
        let _ = fs::remove_file(&config_copy);
        return Err(io_err(state_dir)(e));
    }
    let inside = config_file
        .strip_prefix(state_dir)
        .ok()
        .map(|rel| old.join(rel));
    let config_from = match restored.config_file.take() {
        Some(_) => {
            restored.config_file = Some(config_file.to_owned());
            Some(config_copy.clone())
        }
        // The daemon's config file lay in the replaced state and the backup has none there:
        // the daemon must find it when it starts again.
        None => inside.filter(|_| !config_file.exists()),
    };
    if let Some(from) = config_from {
        fs::copy(&from, config_file).map_err(io_err(config_file))?;
    }
    let _ = fs::remove_file(&config_copy);
    if let Err(e) = fs::remove_dir_all(&old) {
        tracing::warn!(dir = %old.display(), error = %e, "the replaced state directory was not deleted");
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flakeboot_catalogue::MacAddr;

    const PASS: &str = "a long enough passphrase";
    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 1, 2, 3]);

    /// The backup of a state directory whose store labels [`MAC`], with its TLS key, and the
    /// config file inside it when `config_inside`, else beside it.
    fn archive(dir: &Path, config_inside: bool) -> Vec<u8> {
        let state = dir.join("old-state");
        let store = Store::open(&state).unwrap();
        store.set_machine_label(MAC, Some("rack 2".into())).unwrap();
        fs::create_dir_all(state.join("tls")).unwrap();
        fs::write(state.join("tls/key.pem"), "OLD KEY").unwrap();
        let config = if config_inside {
            state.join("flakeboot.toml")
        } else {
            dir.join("old.toml")
        };
        fs::write(&config, "# the old appliance's config\n").unwrap();
        let mut out = Vec::new();
        backup::write_backup(&store, Some(&config), PASS, &mut out).unwrap();
        out
    }

    /// A fresh appliance's state directory (its own key, its config file inside), and the
    /// restore for it.
    fn fresh(dir: &Path) -> (PathBuf, PathBuf, SetupRestore) {
        let state = dir.join("state");
        drop(Store::open(&state).unwrap());
        fs::create_dir_all(state.join("tls")).unwrap();
        fs::write(state.join("tls/key.pem"), "FRESH KEY").unwrap();
        let config = state.join("flakeboot.toml");
        fs::write(&config, "# the fresh appliance's config\n").unwrap();
        let restore = SetupRestore::new(&state, &config);
        (state, config, restore)
    }

    fn audit() -> AuditRecord {
        AuditRecord {
            at: std::time::SystemTime::now(),
            actor: None,
            action: "setup.restore".into(),
            target: "0.1.0".into(),
            client: Some("10.77.0.50".parse().unwrap()),
            status: 200,
        }
    }

    /// Nothing beside the state directory but what was there before.
    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".state."))
            .collect()
    }

    #[tokio::test]
    async fn a_backup_replaces_the_fresh_state_and_asks_for_the_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = archive(tmp.path(), true);
        let (state, config, restore) = fresh(tmp.path());
        let restart = restore.restart_requested();
        let done = restore
            .restore(bytes.as_slice(), PASS.into(), audit())
            .await
            .unwrap();
        assert!(restart.is_cancelled());
        assert_eq!(
            done.config_file, None,
            "the config file was part of the state"
        );
        assert_eq!(
            fs::read_to_string(state.join("tls/key.pem")).unwrap(),
            "OLD KEY"
        );
        assert_eq!(
            fs::read_to_string(&config).unwrap(),
            "# the old appliance's config\n"
        );
        let store = Store::open(&state).unwrap();
        assert_eq!(
            store.machine(MAC).unwrap().unwrap().label.as_deref(),
            Some("rack 2")
        );
        let log = store.recent_audit(10).unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].action, "setup.restore");
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_config_file_outside_the_old_state_goes_where_the_daemon_reads_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = archive(tmp.path(), false);
        let (_state, config, restore) = fresh(tmp.path());
        let done = restore
            .restore(bytes.as_slice(), PASS.into(), audit())
            .await
            .unwrap();
        assert_eq!(done.config_file.as_deref(), Some(config.as_path()));
        assert_eq!(
            fs::read_to_string(&config).unwrap(),
            "# the old appliance's config\n"
        );
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_refused_restore_leaves_the_fresh_state_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = archive(tmp.path(), true);
        let (state, config, restore) = fresh(tmp.path());
        let restart = restore.restart_requested();
        let cases: [(&[u8], &str); 3] = [
            (&bytes, "the wrong passphrase"),
            (&bytes, "short"),
            (b"not a backup at all", PASS),
        ];
        for (body, pass) in cases {
            let err = restore
                .restore(body, pass.into(), audit())
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    SetupRestoreError::Backup(
                        BackupError::Decrypt(_)
                            | BackupError::WeakPassphrase
                            | BackupError::NotABackup(_)
                    )
                ),
                "{err:?}"
            );
        }
        assert!(!restart.is_cancelled());
        assert_eq!(
            fs::read_to_string(state.join("tls/key.pem")).unwrap(),
            "FRESH KEY"
        );
        assert_eq!(
            fs::read_to_string(&config).unwrap(),
            "# the fresh appliance's config\n"
        );
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    }
}
