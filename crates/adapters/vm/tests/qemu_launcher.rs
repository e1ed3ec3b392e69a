//! The launcher with the real QEMU and real SeaBIOS (TCG): the serial console reaches the log
//! and is cut at its bound; a VM that never ends is killed with its process group and reaped;
//! a QEMU that exits by itself says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flakeboot_vm::{Accel, Firmware, RunningVm, VmSpec};

fn spec() -> VmSpec {
    VmSpec {
        qemu: PathBuf::from("qemu-system-x86_64"),
        accel: Accel::Tcg,
        memory_mib: 64,
        firmware: Firmware::Bios,
        nic: None,
    }
}

/// Whether `pid` still exists (as a process, zombie or not).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn seabios_reaches_the_bounded_log_and_the_vm_is_killed_and_reaped() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("console.log");
    let vm = RunningVm::start(&spec(), &log, 64).unwrap();
    let pid = vm.pid().unwrap();
    // SeaBIOS prints its banner, finds no bootable device and waits to retry: QEMU runs on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < 64 {
        assert!(Instant::now() < deadline, "no console output in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    vm.kill().await.unwrap();
    assert!(!exists(pid), "QEMU {pid} still exists after kill");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("SeaBIOS"), "{text:?}");
    assert!(
        text.ends_with("\n[flakeboot: console log cut at 64 bytes]\n"),
        "{text:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn a_qemu_that_exits_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = spec();
    bad.firmware = Firmware::Uefi {
        code: tmp.path().join("no-such-OVMF_CODE.fd"),
        vars: tmp.path().join("vars.fd"),
    };
    let mut vm = RunningVm::start(&bad, &tmp.path().join("console.log"), 1024).unwrap();
    let (status, stderr) = tokio::time::timeout(Duration::from_secs(30), vm.exited())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert!(stderr.contains("no-such-OVMF_CODE.fd"), "{stderr}");
    let missing = VmSpec {
        qemu: PathBuf::from("/nonexistent/qemu"),
        ..spec()
    };
    let err = RunningVm::start(&missing, &tmp.path().join("x.log"), 1).unwrap_err();
    assert!(err.to_string().contains("install QEMU"), "{err}");
}
