//! A diskless QEMU netboot client on a tap device inside a test namespace. The command line
//! comes from `qemu/client.sh` (shared with the demo); this side only picks the accelerator,
//! captures the serial console with timestamps and ends the VM by its PID.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::artifacts::{self, ArtifactError, qemu_dir};
use crate::kvm::{Accel, accel};
use crate::netns::Netns;
use crate::serial::{SerialConsole, SerialError, SerialLine};

/// Which firmware boots the client (the first argument of `qemu/client.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// SeaBIOS, virtio-net with QEMU's iPXE option ROM.
    Bios,
    /// OVMF, virtio-net with the iPXE EFI option ROM.
    Uefi,
    /// OVMF's own PXE client (no option ROM): TFTP's ipxe.efi first.
    UefiPxe,
}

impl ClientKind {
    /// The `qemu/client.sh` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Bios => "bios",
            ClientKind::Uefi => "uefi",
            ClientKind::UefiPxe => "uefi-pxe",
        }
    }
}

/// Starting a client failed.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("artifacts for {name}: {source}")]
    Artifact {
        name: String,
        #[source]
        source: ArtifactError,
    },
    #[error("cannot start QEMU client {name}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// A running client VM. Dropping it ends QEMU (SIGTERM, then SIGKILL, by PID).
#[derive(Debug)]
pub struct QemuClient {
    name: String,
    kind: ClientKind,
    mac: String,
    accel: Accel,
    child: Child,
    console: SerialConsole,
    reader: Option<JoinHandle<()>>,
    started: Instant,
    started_at: SystemTime,
    dir: tempfile::TempDir,
}

impl QemuClient {
    /// Power on a `kind` client named `name` with NIC address `mac`, attached to `tap` in `ns`
    /// (with `qemu/client.sh`'s default memory).
    pub fn start(
        ns: &Netns,
        name: &str,
        kind: ClientKind,
        tap: &str,
        mac: &str,
    ) -> Result<QemuClient, QemuError> {
        QemuClient::start_with_memory(ns, name, kind, tap, mac, None)
    }

    /// [`QemuClient::start`] with `memory_mib` of RAM (a ramdisk of hundreds of MiB needs
    /// more than the default).
    pub fn start_with_memory(
        ns: &Netns,
        name: &str,
        kind: ClientKind,
        tap: &str,
        mac: &str,
        memory_mib: Option<u32>,
    ) -> Result<QemuClient, QemuError> {
        let env: Vec<_> = memory_mib
            .map(|m| ("QEMU_MEM", m.to_string()))
            .into_iter()
            .collect();
        QemuClient::spawn(ns, name, kind, tap, mac, &[], &env)
    }

    /// [`QemuClient::start`] with a local disk, the raw image `disk`, booted when iPXE exits.
    /// BIOS: the first IDE disk (drive 0x80), the boot order network first (`-boot n`). UEFI:
    /// a virtio disk with bootindex 2, the NIC 1 (OVMF orders its boot options by bootindex).
    pub fn start_with_disk(
        ns: &Netns,
        name: &str,
        kind: ClientKind,
        tap: &str,
        mac: &str,
        disk: &Path,
    ) -> Result<QemuClient, QemuError> {
        // UEFI: the NIC's bootindex, so that OVMF orders the disk after it.
        let (args, env) = match kind {
            ClientKind::Bios => (
                vec![
                    "-drive".to_owned(),
                    format!("file={},format=raw,if=ide", disk.display()),
                ],
                vec![],
            ),
            ClientKind::Uefi | ClientKind::UefiPxe => (
                vec![
                    "-drive".to_owned(),
                    format!("if=none,id=disk0,file={},format=raw", disk.display()),
                    "-device".to_owned(),
                    "virtio-blk-pci,drive=disk0,bootindex=2".to_owned(),
                    // OVMF's PXE over IPv6 waits about 70 s (under TCG) for a DHCPv6 offer
                    // before the firmware goes on to the disk; this LAN has none.
                    "-fw_cfg".to_owned(),
                    "name=opt/org.tianocore/IPv6PXESupport,string=no".to_owned(),
                ],
                vec![("QEMU_NIC_BOOTINDEX", "1".to_owned())],
            ),
        };
        QemuClient::spawn(ns, name, kind, tap, mac, &args, &env)
    }

    fn spawn(
        ns: &Netns,
        name: &str,
        kind: ClientKind,
        tap: &str,
        mac: &str,
        extra_args: &[String],
        extra_env: &[(&str, String)],
    ) -> Result<QemuClient, QemuError> {
        let kernel = artifacts::kernel().map_err(|source| QemuError::Artifact {
            name: name.to_owned(),
            source,
        })?;
        let accel = accel(&kernel);
        let spawn_err = |source| QemuError::Spawn {
            name: name.to_owned(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("fbt-qemu-{name}-"))
            .tempdir()
            .map_err(spawn_err)?;
        let stderr = File::create(dir.path().join("qemu.stderr")).map_err(spawn_err)?;
        let mut cmd = ns.command(qemu_dir().join("client.sh"));
        cmd.args([kind.as_str(), tap, mac, "-"])
            .args(extra_args)
            .env("QEMU_ACCEL", accel.as_str())
            .env("QEMU_VARS", dir.path().join("OVMF_VARS.fd"))
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let started = Instant::now();
        let started_at = SystemTime::now();
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| spawn_err(io::Error::other("no stdout pipe")))?;
        let (console, reader) =
            SerialConsole::capture(name, stdout, started, &dir.path().join("serial.log"))
                .map_err(spawn_err)?;
        Ok(QemuClient {
            name: name.to_owned(),
            kind,
            mac: mac.to_owned(),
            accel,
            child,
            console,
            reader: Some(reader),
            started,
            started_at,
            dir,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    pub fn mac(&self) -> &str {
        &self.mac
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// QEMU's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wall-clock power-on time (to line up with the appliance's log timestamps).
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Time since power-on.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn console(&self) -> &SerialConsole {
        &self.console
    }

    /// Wait until a line containing `needle` appears on the serial console.
    pub fn wait_for_serial(
        &self,
        needle: &str,
        timeout: Duration,
    ) -> Result<SerialLine, SerialError> {
        self.console.wait_for(needle, timeout)
    }

    /// The last `n` console lines, and QEMU's own stderr when it said anything.
    pub fn console_tail(&self, n: usize) -> String {
        let mut out = self.console.tail(n);
        let stderr =
            std::fs::read_to_string(self.dir.path().join("qemu.stderr")).unwrap_or_default();
        if !stderr.trim().is_empty() {
            out.push_str("\n--- qemu stderr ---\n");
            out.push_str(stderr.trim());
        }
        out
    }

    /// This client's working files (serial.log, the OVMF variable store).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// End QEMU: SIGTERM, SIGKILL after 3 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
            let _ = kill(pid, Signal::SIGTERM);
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if start.elapsed() > Duration::from_secs(3) {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for QemuClient {
    fn drop(&mut self) {
        self.stop();
    }
}
