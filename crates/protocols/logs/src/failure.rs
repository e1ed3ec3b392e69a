//! The lines that say a boot failed, whatever brought them: the kernel's panic
//! (`Kernel panic - not syncing: ...`, netconsole) and NixOS stage 1's error
//! (`An error occurred in stage 1 of the boot process, ...`; older nixpkgs spell it
//! "occured"), from `nixos/modules/system/boot/stage-1-init.sh`'s `fail`.

/// Why a line says the boot failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The kernel panicked.
    KernelPanic,
    /// NixOS stage 1 failed (it could not mount the root file system or start stage 2).
    Stage1,
}

impl Failure {
    /// How a page names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::KernelPanic => "kernel panic",
            Failure::Stage1 => "stage 1 failed",
        }
    }
}

/// Whether `text` (one cleaned line) says the boot failed.
pub fn boot_failure(text: &str) -> Option<Failure> {
    if text.contains("Kernel panic - not syncing") {
        return Some(Failure::KernelPanic);
    }
    let stage1 = [
        "An error occurred in stage 1",
        "An error occured in stage 1",
    ]
    .iter()
    .any(|s| text.contains(s));
    stage1.then_some(Failure::Stage1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_panics_and_stage_1_errors_are_failures() {
        assert_eq!(
            boot_failure(
                "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"
            ),
            Some(Failure::KernelPanic)
        );
        assert_eq!(
            boot_failure("An error occurred in stage 1 of the boot process, which must mount the"),
            Some(Failure::Stage1)
        );
        assert_eq!(
            boot_failure("An error occured in stage 1 of the boot process, which must mount the"),
            Some(Failure::Stage1)
        );
    }

    #[test]
    fn ordinary_lines_are_not() {
        for text in [
            "",
            "Started flakeboot-report.service",
            "kernel: panic=-1 set",
            "An error occurred in stage 2",
        ] {
            assert_eq!(boot_failure(text), None, "{text}");
        }
    }
}
