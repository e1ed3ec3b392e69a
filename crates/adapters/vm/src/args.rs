//! QEMU's command line for the pre-flight VM (pure).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::Accel;

/// The VM's firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (QEMU's default BIOS on `pc`), its console on the serial port.
    Bios,
    /// OVMF: the read-only code and a private writable copy of the variable store.
    Uefi {
        /// `OVMF_CODE*.fd`.
        code: PathBuf,
        /// The VM's own variable store (a copy of `OVMF_VARS*.fd`).
        vars: PathBuf,
    },
}

/// The VM's network card: virtio-net on a tap, iPXE from its option ROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The tap interface (made by the daemon for this VM).
    pub tap: String,
    /// The card's MAC, `52:54:00:..`.
    pub mac: String,
}

/// Everything QEMU is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// KVM or TCG.
    pub accel: Accel,
    /// MiB.
    pub memory_mib: u32,
    /// SeaBIOS or OVMF.
    pub firmware: Firmware,
    /// `None`: no network at all (tests of the launcher).
    pub nic: Option<Nic>,
}

/// QEMU's arguments: no display, the serial console on stdout, no reboot (a guest that
/// resets ends QEMU), netboot only.
pub fn args(spec: &VmSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    push("-accel");
    push(spec.accel.as_str());
    push("-m");
    push(&spec.memory_mib.to_string());
    push("-smp");
    push("1");
    push("-nodefaults");
    push("-no-reboot");
    push("-display");
    push("none");
    push("-serial");
    push("stdio");
    push("-monitor");
    push("none");
    push("-boot");
    push("n");
    match &spec.firmware {
        Firmware::Bios => {
            push("-machine");
            push("pc,graphics=off");
        }
        Firmware::Uefi { code, vars } => {
            push("-machine");
            push("q35");
            push("-drive");
            push(&format!(
                "if=pflash,format=raw,readonly=on,file={}",
                code.display()
            ));
            push("-drive");
            push(&format!("if=pflash,format=raw,file={}", vars.display()));
        }
    }
    if let Some(nic) = &spec.nic {
        push("-netdev");
        push(&format!(
            "tap,id=n0,ifname={},script=no,downscript=no",
            nic.tap
        ));
        push("-device");
        push(&format!("virtio-net-pci,netdev=n0,mac={}", nic.mac));
    } else {
        push("-nic");
        push("none");
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(spec: &VmSpec) -> String {
        args(spec)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn bios_and_uefi_command_lines() {
        let mut spec = VmSpec {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            memory_mib: 1024,
            firmware: Firmware::Bios,
            nic: Some(Nic {
                tap: "fbpf0".into(),
                mac: "52:54:00:fb:00:01".into(),
            }),
        };
        assert_eq!(
            words(&spec),
            "-accel tcg -m 1024 -smp 1 -nodefaults -no-reboot -display none -serial stdio \
             -monitor none -boot n -machine pc,graphics=off \
             -netdev tap,id=n0,ifname=fbpf0,script=no,downscript=no \
             -device virtio-net-pci,netdev=n0,mac=52:54:00:fb:00:01"
        );
        spec.accel = Accel::Kvm;
        spec.firmware = Firmware::Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/var/lib/flakeboot/preflight/vars.fd".into(),
        };
        spec.nic = None;
        let w = words(&spec);
        assert!(w.starts_with("-accel kvm -m 1024"), "{w}");
        assert!(
            w.contains(
                "-machine q35 -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
                 -drive if=pflash,format=raw,file=/var/lib/flakeboot/preflight/vars.fd"
            ),
            "{w}"
        );
        assert!(w.ends_with("-nic none"), "{w}");
    }
}
