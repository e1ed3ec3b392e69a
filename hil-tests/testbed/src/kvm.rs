//! KVM or TCG: decided by really booting the test kernel with KVM (`qemu/kvm-probe.sh`), because
//! a present /dev/kvm can still abort or hang QEMU. The script caches its answer per machine boot
//! in the artifact cache (shared with the demo), and this process asks it once. The type is the
//! daemon's own (`flakeboot_vm::Accel`, which pre-flight VMs run with).

use std::path::Path;
use std::sync::OnceLock;

use crate::artifacts::{cache_dir, run_script};

pub use flakeboot_vm::Accel;

/// The accelerator to run clients with. `$FLAKEBOOT_QEMU_ACCEL` (`kvm` | `tcg`) skips the probe;
/// a probe that cannot run means TCG.
pub fn accel(kernel: &Path) -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        if let Some(forced) = std::env::var("FLAKEBOOT_QEMU_ACCEL")
            .ok()
            .and_then(|v| Accel::from_name(&v))
        {
            return forced;
        }
        let cache = cache_dir();
        let accel = match run_script("kvm-probe.sh", &[kernel.as_os_str(), cache.as_os_str()]) {
            Ok(out) => Accel::from_name(&out).unwrap_or(Accel::Tcg),
            Err(e) => {
                eprintln!("hil: KVM probe failed ({e}); using TCG");
                Accel::Tcg
            }
        };
        eprintln!(
            "hil: QEMU accelerator {} (qemu/kvm-probe.sh)",
            accel.as_str()
        );
        accel
    })
}
