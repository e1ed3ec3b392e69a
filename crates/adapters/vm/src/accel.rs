//! KVM or TCG.

use std::path::Path;

/// A QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization through `/dev/kvm`.
    Kvm,
    /// QEMU's software emulation (slow: a NixOS boot takes about a minute).
    Tcg,
}

impl Accel {
    /// The value of QEMU's `-accel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The accelerator `-accel` calls `name` (`kvm`, `tcg`; surrounding space ignored).
    pub fn from_name(name: &str) -> Option<Accel> {
        match name.trim() {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }
}

/// KVM when `dev` (normally `/dev/kvm`) opens read-write, else TCG.
pub fn detect_accel(dev: &Path) -> Accel {
    match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        Ok(_) => Accel::Kvm,
        Err(_) => Accel::Tcg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_does_not_open_means_tcg() {
        assert_eq!(detect_accel(Path::new("/nonexistent/kvm")), Accel::Tcg);
        let tmp = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(detect_accel(tmp.path()), Accel::Kvm);
    }

    #[test]
    fn names_round_trip() {
        for a in [Accel::Kvm, Accel::Tcg] {
            assert_eq!(Accel::from_name(&format!(" {}\n", a.as_str())), Some(a));
        }
        assert_eq!(Accel::from_name("hvf"), None);
    }
}
