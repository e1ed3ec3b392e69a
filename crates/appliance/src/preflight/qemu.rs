//! The real pre-flight VM: a private network the daemon makes and serves (its own tap, a
//! one-lease router-mode DHCP scope and HTTP boot on the tap's address, through the same
//! boot services and catalogue as the LAN), and QEMU netbooting the candidate generation on it.
//! Tested end to end by `hil-tests/scenarios/tests/preflight_boot.rs`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flakeboot_catalogue::{BootStage, MacAddr, Outcome};
use flakeboot_config::{Config, DhcpMode, PreflightAccel, PreflightConfig, PreflightFirmware};
use flakeboot_netif::Tap;
use flakeboot_store::{GenerationRecord, Store};
use flakeboot_vm::{Accel, Firmware, Nic, RunningVm, VmSpec, detect_accel};
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::PreflightVm;
use crate::boot_policy::{BootPolicy, PreflightBoot, PreflightCatalogue};
use crate::boot_services::{BootContext, BootServices, http_base};
use crate::lan::LanInfo;
use crate::lan_actions::LanActions;
use crate::metrics::ServiceMetrics;

/// The pre-flight tap's name.
pub const TAP: &str = "fbpreflight0";
/// The pre-flight VM's MAC (one VM at a time, on a network only it is on): locally administered,
/// outside the `52:54:00` range QEMU and libvirt give VMs, so a LAN machine's events and reports
/// are not taken for the VM's.
pub const VM_MAC: MacAddr = MacAddr([0x02, 0xfb, 0x9f, 0x00, 0x00, 0x01]);
/// The most of a VM's serial console kept.
pub const MAX_LOG: u64 = 1 << 20;
/// OVMF for `firmware = "uefi"`: code, and the variable store copied per boot.
pub const OVMF: [&str; 2] = [
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_VARS_4M.fd",
];

/// Boots candidates in QEMU on the daemon's private pre-flight network.
#[derive(Debug, Clone)]
pub struct QemuPreflight {
    /// The store (the VM's lease and boot events go there, like any machine's).
    pub store: Store,
    /// The daemon's catalogue: answers the VM's MAC with the candidate.
    pub policy: Arc<BootPolicy>,
    /// The daemon's configuration (iPXE binaries, HTTP port).
    pub base: Config,
    /// `[preflight]`.
    pub settings: PreflightConfig,
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// Where the UEFI variable store copy goes.
    pub work_dir: PathBuf,
    /// Set once a VM stalled under KVM (`accel = "auto"`) and then passed under TCG: later
    /// pre-flights use TCG without trying KVM again.
    pub kvm_failed: Arc<AtomicBool>,
}

/// How long a VM under KVM may stay silent on its serial console before `accel = "auto"`
/// tries TCG (a nested or broken KVM opens `/dev/kvm`, runs the firmware's first lines and then
/// stalls; where KVM works a whole netboot takes seconds).
const KVM_SILENCE: Duration = Duration::from_secs(30);

/// Why one VM boot ended without passing.
enum BootEnd {
    /// Under KVM on `auto`, the console did not grow for [`KVM_SILENCE`].
    KvmSilent,
    /// Anything else: the pre-flight fails with this reason.
    Failed(String),
}

/// The whole path a QEMU binary named `name` has on `$PATH`, if any.
pub fn find_qemu(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The boot services' configuration on the tap: router mode with the VM's one address, no
/// TFTP (iPXE comes from the NIC's option ROM), no DNS forwarder (the VM only boots), the
/// LAN's HTTP port and iPXE files.
fn network_config(base: &Config, tap: Ipv4Addr, vm: Ipv4Addr, prefix: u8) -> Config {
    let mut c = Config::with_defaults(TAP);
    c.lan.address = Some(tap);
    c.dhcp.mode = DhcpMode::Router;
    c.dhcp.range = Some([vm, vm]);
    c.dhcp.netmask = Some(flakeboot_config::system::netmask(prefix));
    c.dhcp.lease_time = Duration::from_secs(3600);
    c.tftp.enabled = false;
    c.dns.enabled = Some(false);
    c.http = base.http.clone();
    c.ipxe = base.ipxe.clone();
    c.state_dir = base.state_dir.clone();
    c
}

impl QemuPreflight {
    async fn run(
        &self,
        g: &GenerationRecord,
        log: &Path,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let (tap_addr, vm_addr) = self
            .settings
            .addresses()
            .ok_or("[preflight] subnet is not valid")?;
        let (_, prefix) = self
            .settings
            .subnet()
            .ok_or("[preflight] subnet is not valid")?;
        let tap = tokio::task::spawn_blocking(move || Tap::create(TAP, tap_addr, prefix))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let result = self
            .with_network(g, log, timeout, cancel, tap_addr, vm_addr, prefix)
            .await;
        tokio::task::spawn_blocking(move || drop(tap))
            .await
            .map_err(|e| e.to_string())?;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn with_network(
        &self,
        g: &GenerationRecord,
        log: &Path,
        timeout: Duration,
        cancel: &CancellationToken,
        tap_addr: Ipv4Addr,
        vm_addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), String> {
        let config = network_config(&self.base, tap_addr, vm_addr, prefix);
        let lan = LanInfo::resolve(TAP, Some(tap_addr)).map_err(|e| e.to_string())?;
        let stop = cancel.child_token();
        let catalogue = PreflightCatalogue {
            policy: self.policy.clone(),
            boot: PreflightBoot {
                mac: VM_MAC,
                host: g.host.clone(),
                generation: g.number,
                server: http_base(tap_addr, config.http.port),
            },
        };
        let ctx = BootContext {
            store: self.store.clone(),
            catalogue: Arc::new(catalogue),
            web: None,
            shutdown: stop.clone(),
            status: watch::channel(Default::default()).0,
            lan_actions: LanActions::new(self.store.clone()),
            metrics: ServiceMetrics::default(),
            logs: None,
        };
        let mut services = BootServices::start(ctx, config.clone(), lan, None)
            .await
            .map_err(|e| format!("the pre-flight network's boot services: {e}"))?;
        let result = self.boot_vm(log, timeout, cancel).await;
        services.stop().await;
        stop.cancel();
        result
    }

    /// Boots the VM; on `accel = "auto"` a VM that stalls under KVM is tried under TCG within
    /// the same deadline, and KVM is given up when that passes.
    async fn boot_vm(
        &self,
        log: &Path,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let accel = match self.settings.accel {
            PreflightAccel::Auto if self.kvm_failed.load(Ordering::Relaxed) => Accel::Tcg,
            PreflightAccel::Auto => detect_accel(Path::new("/dev/kvm")),
            PreflightAccel::Kvm => Accel::Kvm,
            PreflightAccel::Tcg => Accel::Tcg,
        };
        let probe = self.settings.accel == PreflightAccel::Auto && accel == Accel::Kvm;
        match self.boot_with(accel, probe, log, deadline, cancel).await {
            Ok(()) => Ok(()),
            Err(BootEnd::Failed(why)) => Err(why),
            Err(BootEnd::KvmSilent) => {
                tracing::info!(
                    "the pre-flight VM stalled for {} s under KVM: trying TCG",
                    KVM_SILENCE.as_secs()
                );
                match self
                    .boot_with(Accel::Tcg, false, log, deadline, cancel)
                    .await
                {
                    Ok(()) => {
                        // It passes under TCG: KVM, not the generation, stalled it.
                        self.kvm_failed.store(true, Ordering::Relaxed);
                        tracing::warn!(
                            "KVM stalls guests here (/dev/kvm opens, the VM stopped printing) while TCG boots them: pre-flights use TCG from now on (set [preflight] accel to choose)"
                        );
                        Ok(())
                    }
                    Err(BootEnd::Failed(why)) => Err(why),
                    Err(BootEnd::KvmSilent) => Err("the VM stalled".to_owned()),
                }
            }
        }
    }

    /// One VM boot under `accel` until its report, its exit or `deadline`; `probe`: give up
    /// with [`BootEnd::KvmSilent`] when its console stops growing for [`KVM_SILENCE`].
    async fn boot_with(
        &self,
        accel: Accel,
        probe: bool,
        log: &Path,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<(), BootEnd> {
        let firmware = match self.settings.firmware {
            PreflightFirmware::Bios => Firmware::Bios,
            PreflightFirmware::Uefi => {
                let [code, vars] = OVMF;
                let copy = self.work_dir.join("preflight-OVMF_VARS.fd");
                std::fs::copy(vars, &copy).map_err(|e| {
                    BootEnd::Failed(format!("cannot copy {vars} (install ovmf): {e}"))
                })?;
                Firmware::Uefi {
                    code: code.into(),
                    vars: copy,
                }
            }
        };
        let spec = VmSpec {
            qemu: self.qemu.clone(),
            accel,
            memory_mib: self.settings.memory,
            firmware,
            nic: Some(Nic {
                tap: TAP.into(),
                mac: VM_MAC.to_string(),
            }),
        };
        let started = std::time::SystemTime::now();
        // The console's length and when it last grew (the KVM probe).
        let mut console = (0, Instant::now());
        let mut vm =
            RunningVm::start(&spec, log, MAX_LOG).map_err(|e| BootEnd::Failed(e.to_string()))?;
        tracing::info!(pid = ?vm.pid(), accel = spec.accel.as_str(), "pre-flight VM started");
        let outcome = {
            let exited = vm.exited();
            tokio::pin!(exited);
            loop {
                tokio::select! {
                    done = &mut exited => {
                        break Err(BootEnd::Failed(match done {
                            Ok((status, _)) if status.success() => "the VM powered off before a report".to_owned(),
                            Ok((status, stderr)) => format!("QEMU exited ({status}) before a report: {stderr}"),
                            Err(e) => e.to_string(),
                        }));
                    }
                    _ = cancel.cancelled() => break Err(BootEnd::Failed("the daemon stopped".to_owned())),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if let Some(verdict) = self.report_since(started).await {
                            break verdict.map_err(BootEnd::Failed);
                        }
                        if Instant::now() >= deadline {
                            break Err(BootEnd::Failed("no report".to_owned()));
                        }
                        if probe {
                            let len = std::fs::metadata(log).map_or(0, |m| m.len());
                            if len != console.0 {
                                console = (len, Instant::now());
                            } else if console.1.elapsed() >= KVM_SILENCE {
                                break Err(BootEnd::KvmSilent);
                            }
                        }
                    }
                }
            }
        };
        if let Err(e) = vm.kill().await {
            tracing::warn!("cannot end the pre-flight VM: {e}");
        }
        outcome
    }

    /// The VM's system report since `since`, if one came: `up` passes, `failed` fails.
    async fn report_since(&self, since: std::time::SystemTime) -> Option<Result<(), String>> {
        let store = self.store.clone();
        let events = tokio::task::spawn_blocking(move || store.events_for(VM_MAC, 50))
            .await
            .ok()?
            .ok()?;
        events
            .iter()
            .filter(|e| e.stage == BootStage::System && e.at >= since)
            .find_map(|e| match e.outcome {
                Outcome::Ok if e.detail == "up" => Some(Ok(())),
                Outcome::Failed => Some(Err(format!("the system reported failed: {}", e.detail))),
                _ => None,
            })
    }
}

impl PreflightVm for QemuPreflight {
    fn boot<'a>(
        &'a self,
        generation: &'a GenerationRecord,
        log: &'a Path,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.run(generation, log, timeout, &cancel).await })
    }
}
