//! The boot policy: the appliance's [`Catalogue`] ("what does MAC x boot now?"): hosts and
//! machine assignments from the config file and the
//! store, answered from memory; boot events handed to the event writer without blocking.
//!
//! Every host's command line names the boot server (`flakeboot.server=http://<LAN address>`)
//! beside `flakeboot.host=` (and `flakeboot.generation=` for flake hosts), so the booted system
//! knows where to report (`POST /boot/report`); a report is accepted only from the address the
//! MAC holds (its router-mode lease) or last took in a DHCP exchange.
//!
//! Who an event is: a DHCP event's MAC is the one on the wire, and it binds the client's address
//! to that MAC. Any other event (a script, a file, a report) is the event of the MAC its address
//! is bound to, or of nobody: the MAC a request names (`?mac=`, a report's form) is a claim,
//! and a claim never writes into another machine's timeline or makes an address its.
//!
//! A machine boots, in this order: its boot-once host (a rescue system for one boot), its own
//! host, its local disk (host `local`: [`BootSpec::Local`]), or the menu. The boot-once host is
//! taken when its kernel was delivered to that machine (the `kernel` event, outcome ok, of a
//! `GET` of that host's kernel from the machine's address), not when the script is fetched: a
//! script fetched again in the same boot (iPXE retrying, a reset before the kernel came) still
//! gets it. It is cleared in memory at once and in the store right after
//! ([`flakeboot_store::Store::clear_boot_once`]), so the following boot reverts, also after a
//! restart.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use flakeboot_catalogue::{
    BootEvent, BootFile, BootSpec, BootStage, Catalogue, FileKind, HostBoot, IpxeBinary,
    LOCAL_DISK, MacAddr, Menu, MenuEntry, Outcome,
};
use flakeboot_config::Config;
use flakeboot_nix::{CurrentGenerations, FlakeBoot};
use tokio::sync::mpsc;

use crate::metrics::BootCounters;

/// Version label of hosts that come from `[[hosts]]` in the config file.
pub const STATIC_VERSION: &str = "static";

#[derive(Debug, Clone)]
struct StaticHost {
    kernel: PathBuf,
    initrd: PathBuf,
    cmdline: String,
    description: String,
}

/// What one machine boots and with which extra parameters.
#[derive(Debug, Clone, Default)]
pub struct MachinePolicy {
    /// A host name, `local` (its local disk), or `None` (the menu).
    host: Option<String>,
    extra_cmdline: String,
    hostname: Option<String>,
    /// The host its next boot gets instead (until that host's kernel was delivered to it).
    boot_once: Option<String>,
}

/// Everything the catalogue answers from; replaced whole when the config or the store changes.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    /// Host name -> files, in config order (the menu's order).
    hosts: Vec<(String, StaticHost)>,
    machines: HashMap<MacAddr, MachinePolicy>,
    menu_default: Option<String>,
    menu_timeout: std::time::Duration,
    ipxe_dir: PathBuf,
    arm64_efi: Option<PathBuf>,
    /// Hosts built from flakes: a live view the build runner refreshes.
    flakes: CurrentGenerations,
    /// The HTTP boot server's base URL (`http://10.0.0.2`, `http://10.0.0.2:8080`), given to
    /// every host as `flakeboot.server=`; empty: not added.
    server: String,
}

impl PolicyState {
    /// Build from the config; `stored` are policies set at run time (the store: web UI, API),
    /// which apply to machines the config file does not pin. `server` is the HTTP boot base URL
    /// on the LAN address in use (`boot_services::http_base`).
    pub fn from_config(
        config: &Config,
        stored: Vec<(MacAddr, MachinePolicy)>,
        flakes: CurrentGenerations,
        server: String,
    ) -> PolicyState {
        let hosts = config
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    StaticHost {
                        kernel: h.kernel.clone(),
                        initrd: h.initrd.clone(),
                        cmdline: h.cmdline.clone(),
                        description: h.description.clone(),
                    },
                )
            })
            .collect();
        let mut machines: HashMap<MacAddr, MachinePolicy> = stored.into_iter().collect();
        for m in &config.machines {
            machines.insert(
                m.mac,
                MachinePolicy {
                    host: m.host.clone(),
                    extra_cmdline: m.extra_cmdline.clone(),
                    hostname: m.hostname.clone(),
                    boot_once: None,
                },
            );
        }
        let menu_default = match config.menu.default.as_deref() {
            Some("local") => None,
            Some(name) => Some(name.to_owned()),
            None => config.hosts.first().map(|h| h.name.clone()),
        };
        PolicyState {
            hosts,
            machines,
            menu_default,
            menu_timeout: config.menu.timeout,
            ipxe_dir: config.ipxe.dir.clone(),
            arm64_efi: config.ipxe.arm64_efi.clone(),
            flakes,
            server,
        }
    }

    /// `flakeboot.server=<base URL>`, beside the host's `flakeboot.host=`.
    fn push_server(&self, cmdline: &mut String) {
        if !self.server.is_empty() {
            push_arg(cmdline, &format!("flakeboot.server={}", self.server));
        }
    }

    fn host(&self, name: &str) -> Option<&StaticHost> {
        self.hosts.iter().find(|(n, _)| n == name).map(|(_, h)| h)
    }

    /// What `name` boots: a flake host's current generation, or a `[[hosts]]` entry. A bare
    /// name that both define (or two flakes define) is ambiguous: logged, and nothing boots.
    fn host_boot(&self, name: &str, machine: Option<&MachinePolicy>) -> Option<HostBoot> {
        let is_static = self.host(name).is_some();
        let (host, version, mut cmdline) = match self.flakes.boot(name, is_static) {
            Ok(Some(boot)) => (boot.host.clone(), flake_version(&boot), boot.cmdline),
            Ok(None) => {
                let host = self.host(name)?;
                let mut cmdline = host.cmdline.clone();
                push_arg(&mut cmdline, &format!("flakeboot.host={name}"));
                (name.to_owned(), STATIC_VERSION.to_owned(), cmdline)
            }
            Err(err) => {
                tracing::warn!(error = %err, "a machine's host name is ambiguous");
                return None;
            }
        };
        self.push_server(&mut cmdline);
        if let Some(m) = machine {
            append_machine_args(&mut cmdline, m);
        }
        Some(HostBoot {
            host,
            version,
            cmdline,
        })
    }

    /// What the pre-flight VM boots: generation `number` of `qualified` (kept, not necessarily
    /// current), told to report to `server` (the pre-flight network's HTTP boot address).
    fn candidate_boot(&self, preflight: &PreflightBoot) -> Option<HostBoot> {
        let boot = self
            .flakes
            .generation(&preflight.host, preflight.generation)?;
        let mut cmdline = boot.cmdline.clone();
        push_arg(
            &mut cmdline,
            &format!("flakeboot.server={}", preflight.server),
        );
        Some(HostBoot {
            host: boot.host.clone(),
            version: flake_version(&boot),
            cmdline,
        })
    }

    pub fn boot_spec(&self, mac: Option<MacAddr>) -> BootSpec {
        let machine = mac.and_then(|m| self.machines.get(&m));
        // Boot once: a host that cannot boot now (removed since) is skipped, not an error.
        if let Some(boot) = machine
            .and_then(|m| m.boot_once.as_deref())
            .and_then(|name| self.host_boot(name, machine))
        {
            return BootSpec::Host(boot);
        }
        if machine.and_then(|m| m.host.as_deref()) == Some(LOCAL_DISK) {
            return BootSpec::Local;
        }
        if let Some(boot) = machine
            .and_then(|m| m.host.as_deref())
            .and_then(|name| self.host_boot(name, machine))
        {
            return BootSpec::Host(boot);
        }
        let mut entries: Vec<MenuEntry> = self
            .hosts
            .iter()
            .filter_map(|(name, host)| {
                Some(MenuEntry {
                    boot: self.host_boot(name, machine)?,
                    description: host.description.clone(),
                })
            })
            .collect();
        let flake_hosts = self.flakes.hosts();
        // The settings name flake hosts as `flake#host` (what a machine is assigned); the menu's
        // entries are labelled by the host's own name.
        let default = self.menu_default.as_ref().map(|d| {
            flake_hosts
                .iter()
                .find(|h| h.qualified == *d)
                .map_or_else(|| d.clone(), |h| h.host.clone())
        });
        for flake_host in flake_hosts {
            let mut boot = HostBoot {
                host: flake_host.host.clone(),
                version: flake_version(&flake_host),
                cmdline: flake_host.cmdline.clone(),
            };
            self.push_server(&mut boot.cmdline);
            if let Some(m) = machine {
                append_machine_args(&mut boot.cmdline, m);
            }
            entries.push(MenuEntry {
                description: format!(
                    "{} generation {} (rev {})",
                    flake_host.qualified, flake_host.generation, flake_host.rev
                ),
                boot,
            });
        }
        BootSpec::Menu(Menu {
            entries,
            default,
            timeout: self.menu_timeout,
        })
    }

    pub fn boot_file(&self, file: &BootFile) -> Option<PathBuf> {
        match file {
            BootFile::Ipxe(IpxeBinary::Arm64Efi) => self.arm64_efi.clone(),
            BootFile::Ipxe(binary) => {
                let path = self.ipxe_dir.join(binary.file_name());
                path.is_file().then_some(path)
            }
            BootFile::Host {
                host,
                version,
                kind,
            } => {
                let (kernel, initrd) = if version == STATIC_VERSION {
                    let h = self.host(host)?;
                    (h.kernel.clone(), h.initrd.clone())
                } else {
                    let (flake, number) = parse_flake_version(version)?;
                    let g = self.flakes.generation(&format!("{flake}#{host}"), number)?;
                    (g.kernel, g.initrd)
                };
                Some(match kind {
                    FileKind::Kernel => kernel,
                    FileKind::Initrd => initrd,
                })
            }
        }
    }
}

/// The version label of a flake generation in URLs: `<flake>.g<n>` (flake names are
/// `[A-Za-z0-9_-]`, so the last `.g` splits it unambiguously).
fn flake_version(boot: &FlakeBoot) -> String {
    let flake = boot
        .qualified
        .split_once('#')
        .map_or(boot.qualified.as_str(), |(f, _)| f);
    format!("{flake}.g{}", boot.generation)
}

fn parse_flake_version(version: &str) -> Option<(&str, u32)> {
    let (flake, number) = version.rsplit_once(".g")?;
    Some((flake, number.parse().ok()?))
}

fn append_machine_args(cmdline: &mut String, m: &MachinePolicy) {
    if let Some(hostname) = &m.hostname {
        push_arg(cmdline, &format!("flakeboot.hostname={hostname}"));
    }
    push_arg(cmdline, &m.extra_cmdline);
}

/// Per-machine policies the web UI and API keep in the store.
pub fn stored_policies(
    store: &flakeboot_store::Store,
) -> Result<Vec<(MacAddr, MachinePolicy)>, flakeboot_store::StoreError> {
    let mut policies: HashMap<MacAddr, MachinePolicy> = store
        .machines()?
        .into_iter()
        .map(|m| {
            (
                m.mac,
                MachinePolicy {
                    host: m.host,
                    ..MachinePolicy::default()
                },
            )
        })
        .collect();
    for (mac, options) in store.all_machine_options()? {
        let policy = policies.entry(mac).or_default();
        policy.hostname = options.hostname;
        policy.extra_cmdline = options.kernel_params;
        policy.boot_once = options.boot_once;
    }
    Ok(policies.into_iter().collect())
}

/// Sets `mac`'s boot-once host in the policy in effect to what `change` returns for the current
/// one (`None`: leave it). A machine the state does not know is left alone.
fn set_boot_once(
    state: &RwLock<Arc<PolicyState>>,
    mac: MacAddr,
    change: impl FnOnce(&Option<String>) -> Option<Option<String>>,
) {
    let mut guard = match state.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let Some(machine) = guard.machines.get(&mac) else {
        return;
    };
    let Some(next) = change(&machine.boot_once) else {
        return;
    };
    if next == machine.boot_once {
        return;
    }
    let mut updated = PolicyState::clone(&guard);
    if let Some(machine) = updated.machines.get_mut(&mac) {
        machine.boot_once = next;
    }
    *guard = Arc::new(updated);
}

fn push_arg(cmdline: &mut String, arg: &str) {
    let arg = arg.trim();
    if arg.is_empty() {
        return;
    }
    if !cmdline.is_empty() {
        cmdline.push(' ');
    }
    cmdline.push_str(arg);
}

/// The pre-flight VM's boot: on the pre-flight network only ([`PreflightCatalogue`]), its MAC
/// gets a candidate generation before any machine does. A LAN machine with the same MAC never
/// does: the LAN's boot services ask the policy, which knows nothing of candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightBoot {
    /// The VM's MAC.
    pub mac: MacAddr,
    /// The qualified host (`flake#host`).
    pub host: String,
    /// The candidate generation.
    pub generation: u32,
    /// The HTTP boot base URL on the pre-flight network (`flakeboot.server=`).
    pub server: String,
}

/// The catalogue the boot services share.
#[derive(Debug)]
pub struct BootPolicy {
    /// Shared with the task that clears a boot-once host in the store.
    state: Arc<RwLock<Arc<PolicyState>>>,
    events: mpsc::Sender<BootEvent>,
    dropped_events: std::sync::atomic::AtomicU64,
    /// Which MAC holds which address, learned from DHCP only (a DHCP event's MAC from the wire
    /// and address, a proxy-mode REQUEST's address, a router-mode lease confirmed by
    /// `accept_report`). Every non-DHCP event is attributed through it, whatever MAC it
    /// claims; the same map answers who may report (`accept_report`).
    peers: Mutex<HashMap<IpAddr, MacAddr>>,
    /// Events that named a MAC the address they came from is not bound to (a `?mac=` or
    /// report for someone else, or from an address no DHCP exchange bound).
    unbound_claims: std::sync::atomic::AtomicU64,
    /// Router-mode leases (a report is also accepted from the address a MAC holds), and where
    /// a boot-once host that was taken is cleared.
    store: Option<flakeboot_store::Store>,
    /// Every event, counted for `/metrics` once attributed.
    boots: Arc<BootCounters>,
}

/// Bound on remembered peers; the map is cleared when it is reached (a new boot re-learns).
const MAX_PEERS: usize = 4096;

impl BootPolicy {
    pub fn new(state: PolicyState, events: mpsc::Sender<BootEvent>) -> BootPolicy {
        BootPolicy {
            state: Arc::new(RwLock::new(Arc::new(state))),
            events,
            dropped_events: std::sync::atomic::AtomicU64::new(0),
            peers: Mutex::new(HashMap::new()),
            unbound_claims: std::sync::atomic::AtomicU64::new(0),
            store: None,
            boots: Arc::default(),
        }
    }

    /// What the pre-flight VM boots: the candidate generation (or, should it have been removed
    /// mid-boot, the menu: the VM then fails to report).
    pub fn candidate_spec(&self, boot: &PreflightBoot) -> BootSpec {
        let snapshot = self.snapshot();
        match snapshot.candidate_boot(boot) {
            Some(host) => BootSpec::Host(host),
            None => snapshot.boot_spec(None),
        }
    }

    /// Count every event into `boots` (the counters `/metrics` shows).
    pub fn with_boot_counters(mut self, boots: Arc<BootCounters>) -> BootPolicy {
        self.boots = boots;
        self
    }

    /// The store: reports are also accepted from the address a MAC holds in its (router-mode)
    /// leases, and a boot-once host that was taken is cleared there.
    pub fn with_store(mut self, store: flakeboot_store::Store) -> BootPolicy {
        self.store = Some(store);
        self
    }

    /// Whether `from` is leased to `mac` now (a bound lease that has not expired).
    fn holds_lease(&self, mac: MacAddr, from: Ipv4Addr) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        match store.lease_applied(from) {
            Ok(Some(lease)) => {
                lease.mac == mac
                    && lease.state == flakeboot_store::LeaseState::Bound
                    && lease.expires > SystemTime::now()
            }
            Ok(None) => false,
            Err(err) => {
                tracing::warn!(error = %err, "could not read a lease to check a boot report");
                false
            }
        }
    }

    fn snapshot(&self) -> Arc<PolicyState> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc: the value is intact.
        match self.state.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replace the whole state (config reload, assignment change).
    pub fn replace(&self, state: PolicyState) {
        match self.state.write() {
            Ok(mut guard) => *guard = Arc::new(state),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(state),
        }
    }

    /// A kernel was delivered to `mac` (`event`, attributed): if it is the kernel of the
    /// machine's boot-once host, that host was taken. Cleared in memory now (the next script
    /// reverts) and in the store off the async threads; then the memory takes the store's
    /// value, so a rebuild from the store in between, or a host chosen since, is not lost.
    fn kernel_delivered(&self, mac: MacAddr, event: &BootEvent) {
        let snapshot = self.snapshot();
        let Some(machine) = snapshot.machines.get(&mac) else {
            return;
        };
        let Some(once) = machine.boot_once.clone() else {
            return;
        };
        let Some(boot) = snapshot.host_boot(&once, Some(machine)) else {
            return;
        };
        if event.host.as_deref() != Some(boot.host.as_str()) {
            return;
        }
        tracing::info!(%mac, host = %once, "boot once: the host's kernel was delivered; the next boot reverts");
        let taken = once.clone();
        set_boot_once(&self.state, mac, move |current| {
            (current.as_deref() == Some(taken.as_str())).then_some(None)
        });
        let Some(store) = self.store.clone() else {
            return;
        };
        let state = Arc::clone(&self.state);
        let clear = move || match store.clear_boot_once(mac, &once) {
            Ok(options) => set_boot_once(&state, mac, move |_| Some(options.boot_once)),
            Err(err) => {
                tracing::error!(error = %err, %mac, "could not clear the boot-once host in the store");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(clear);
            }
            // Called outside a runtime (a test): one small write, here.
            Err(_) => clear(),
        }
    }

    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many events named a MAC their address is not bound to (attributed by the address).
    pub fn unbound_claims(&self) -> u64 {
        self.unbound_claims
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, MacAddr>> {
        match self.peers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// `ip` is `mac`'s now (a DHCP exchange or a lease said so).
    fn bind(&self, ip: IpAddr, mac: MacAddr) {
        if ip.is_unspecified() {
            return;
        }
        let mut peers = self.peers();
        if peers.len() >= MAX_PEERS {
            peers.clear();
        }
        peers.insert(ip.to_canonical(), mac);
    }

    /// The MAC `ip` is bound to, if any (`::ffff:a.b.c.d` is `a.b.c.d`).
    fn bound(&self, ip: IpAddr) -> Option<MacAddr> {
        self.peers().get(&ip.to_canonical()).copied()
    }
}

/// The pre-flight network's catalogue: the VM's MAC boots the candidate generation; everything
/// else (files, events, reports) is the policy's, so the VM's boot is recorded like any other.
#[derive(Debug, Clone)]
pub struct PreflightCatalogue {
    pub policy: Arc<BootPolicy>,
    pub boot: PreflightBoot,
}

impl Catalogue for PreflightCatalogue {
    fn boot_spec(&self, mac: Option<MacAddr>) -> BootSpec {
        match mac == Some(self.boot.mac) {
            true => self.policy.candidate_spec(&self.boot),
            // Nothing else is on the pre-flight network; should something be, it gets the menu.
            false => self.policy.boot_spec(None),
        }
    }

    fn boot_file(&self, file: &BootFile) -> Option<PathBuf> {
        self.policy.boot_file(file)
    }

    fn client_address(&self, mac: MacAddr, ip: IpAddr) {
        self.policy.client_address(mac, ip);
    }

    fn record(&self, event: BootEvent) {
        self.policy.record(event);
    }

    fn accept_report(&self, mac: MacAddr, from: IpAddr) -> bool {
        self.policy.accept_report(mac, from)
    }

    fn machine_at(&self, ip: IpAddr) -> Option<MacAddr> {
        self.policy.machine_at(ip)
    }
}

impl Catalogue for BootPolicy {
    fn boot_spec(&self, mac: Option<MacAddr>) -> BootSpec {
        self.snapshot().boot_spec(mac)
    }

    fn boot_file(&self, file: &BootFile) -> Option<PathBuf> {
        self.snapshot().boot_file(file)
    }

    fn client_address(&self, mac: MacAddr, ip: IpAddr) {
        self.bind(ip, mac);
    }

    fn record(&self, mut event: BootEvent) {
        let peer = event.peer.filter(|p| !p.is_unspecified());
        if event.stage.mac_from_wire() {
            // A DHCP packet's own MAC: trusted, and it binds the address the client uses.
            if let (Some(peer), Some(mac)) = (peer, event.mac) {
                self.bind(peer, mac);
            }
        } else if event.stage == flakeboot_catalogue::BootStage::OtherDhcp {
            // Another server's reply names its client: shown in that machine's timeline if
            // the store knows it (never a new record), and it binds nothing.
        } else {
            // Whatever MAC the request names, it is the event of the MAC its address is bound
            // to, or of nobody: a claim never reaches another machine's timeline.
            let bound = peer.and_then(|p| self.bound(p));
            if let Some(claimed) = event.mac.filter(|m| Some(*m) != bound) {
                tracing::debug!(
                    peer = ?event.peer,
                    %claimed,
                    bound = ?bound,
                    stage = event.stage.as_str(),
                    "a request names a MAC its address is not bound to: attributed by the address"
                );
                self.unbound_claims
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            event.mac = bound;
        }
        if event.stage == BootStage::Kernel
            && event.outcome == Outcome::Ok
            && let Some(mac) = event.mac
        {
            self.kernel_delivered(mac, &event);
        }
        self.boots.observe(&event);
        // Never block a packet loop: when the writer is behind, count and drop.
        if self.events.try_send(event).is_err() {
            self.dropped_events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn accept_report(&self, mac: MacAddr, from: IpAddr) -> bool {
        if self.bound(from) == Some(mac) {
            return true;
        }
        let leased = match from.to_canonical() {
            IpAddr::V4(v4) => self.holds_lease(mac, v4),
            IpAddr::V6(_) => false,
        };
        if leased {
            // The store's lease binds the address like a DHCP exchange: the report's event
            // (recorded next) is this MAC's.
            self.bind(from, mac);
        }
        leased
    }

    fn machine_at(&self, ip: IpAddr) -> Option<MacAddr> {
        if let Some(mac) = self.bound(ip) {
            return Some(mac);
        }
        // Router mode: the address a MAC holds a lease for (the booted system's own DHCP,
        // which is no network boot and so records no event). It binds the address, as a
        // report from it would.
        let IpAddr::V4(v4) = ip.to_canonical() else {
            return None;
        };
        let store = self.store.as_ref()?;
        let lease = match store.lease_applied(v4) {
            Ok(lease) => lease?,
            Err(err) => {
                tracing::warn!(error = %err, "could not read a lease to attribute a log line");
                return None;
            }
        };
        let held =
            lease.state == flakeboot_store::LeaseState::Bound && lease.expires > SystemTime::now();
        if !held {
            return None;
        }
        self.bind(ip, lease.mac);
        Some(lease.mac)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("test.toml")).unwrap()
    }

    const SERVER: &str = "http://10.77.0.1";

    const BASE: &str = r#"
[lan]
interface = "tap0"
[ipxe]
dir = "/usr/lib/ipxe"
[[hosts]]
name = "demo"
kernel = "/srv/demo/vmlinuz"
initrd = "/srv/demo/initrd"
cmdline = "console=ttyS0"
[[hosts]]
name = "other"
kernel = "/srv/other/vmlinuz"
initrd = "/srv/other/initrd"
[[machines]]
mac = "52:54:00:12:34:56"
host = "demo"
extra_cmdline = "loglevel=7"
hostname = "node1"
"#;

    #[test]
    fn assigned_machine_boots_its_host_with_machine_parameters() {
        let state = PolicyState::from_config(
            &config(BASE),
            Vec::new(),
            CurrentGenerations::default(),
            SERVER.into(),
        );
        let spec = state.boot_spec(Some("52:54:00:12:34:56".parse().unwrap()));
        let BootSpec::Host(boot) = spec else {
            panic!("{spec:?}")
        };
        assert_eq!(boot.host, "demo");
        assert_eq!(
            boot.cmdline,
            "console=ttyS0 flakeboot.host=demo flakeboot.server=http://10.77.0.1 \
             flakeboot.hostname=node1 loglevel=7"
        );
    }

    #[test]
    fn static_hosts_name_themselves_and_the_boot_server_in_the_menu_too() {
        let state = PolicyState::from_config(
            &config(BASE),
            Vec::new(),
            CurrentGenerations::default(),
            "http://10.77.0.1:8080".into(),
        );
        let BootSpec::Menu(menu) = state.boot_spec(None) else {
            panic!()
        };
        let lines: Vec<_> = menu
            .entries
            .iter()
            .map(|e| e.boot.cmdline.as_str())
            .collect();
        assert_eq!(
            lines,
            [
                "console=ttyS0 flakeboot.host=demo flakeboot.server=http://10.77.0.1:8080",
                "flakeboot.host=other flakeboot.server=http://10.77.0.1:8080",
            ]
        );
    }

    fn flake_generations(store: &flakeboot_store::Store) -> CurrentGenerations {
        flake_generations_of(store, "lab")
    }

    /// Two generations of host `alpha` of flake `flake`.
    fn flake_generations_of(store: &flakeboot_store::Store, flake: &str) -> CurrentGenerations {
        use flakeboot_store::{FlakeHostRecord, FlakeRecord, GenerationRecord};
        store
            .put_flake(&FlakeRecord {
                name: flake.into(),
                url: "path:/lab".into(),
                locked_url: None,
                revision: None,
                locked_at: None,
                hosts: vec![FlakeHostRecord {
                    name: "alpha".into(),
                    unbootable: None,
                    kernel_file: "bzImage".into(),
                    kernel_params: vec![],
                }],
                error: None,
            })
            .unwrap();
        for _ in 0..2 {
            store
                .add_generation(&GenerationRecord {
                    host: format!("{flake}#alpha"),
                    number: 0,
                    flake_url: "path:/lab".into(),
                    locked_url: "path:/lab?narHash=sha256-abcdefabcdefabcdef".into(),
                    revision: Some("0123456789abcdef".into()),
                    kernel: "/nix/store/k/bzImage".into(),
                    initrd: "/nix/store/r/initrd".into(),
                    init: "/nix/store/t/init".into(),
                    store_paths: vec![],
                    kernel_params: vec!["console=ttyS0".into()],
                    built_at: std::time::SystemTime::UNIX_EPOCH,
                    build_id: 1,
                    log: "/l".into(),
                    gc_roots: vec![],
                    preflight: flakeboot_store::PreflightRecord::skipped("off"),
                })
                .unwrap();
        }
        CurrentGenerations::load(store).unwrap()
    }

    #[test]
    fn flake_hosts_get_the_boot_server_beside_host_and_generation() {
        let tmp = tempfile::tempdir().unwrap();
        let store = flakeboot_store::Store::open(tmp.path()).unwrap();
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
        let state = PolicyState::from_config(
            &config(BASE),
            vec![(mac, assigned("alpha"))],
            flake_generations(&store),
            SERVER.into(),
        );
        let BootSpec::Host(boot) = state.boot_spec(Some(mac)) else {
            panic!()
        };
        assert_eq!(boot.version, "lab.g2");
        assert_eq!(
            boot.cmdline,
            "init=/nix/store/t/init console=ttyS0 flakeboot.host=alpha flakeboot.generation=2 \
             flakeboot.rev=0123456789ab flakeboot.server=http://10.77.0.1"
        );
        // The menu's flake entries too.
        let BootSpec::Menu(menu) = state.boot_spec(None) else {
            panic!()
        };
        let alpha = menu
            .entries
            .iter()
            .find(|e| e.boot.host == "alpha")
            .unwrap();
        assert!(
            alpha
                .boot
                .cmdline
                .ends_with(" flakeboot.server=http://10.77.0.1"),
            "{}",
            alpha.boot.cmdline
        );
    }

    /// A generation whose kernel parameters the script cannot carry (stored by an older
    /// flakeboot: builds check them now) is never current, so `boot.ipxe` renders the one
    /// before it instead of failing with 500.
    #[test]
    fn a_flake_generation_the_script_cannot_carry_never_fails_the_script() {
        let tmp = tempfile::tempdir().unwrap();
        let store = flakeboot_store::Store::open(tmp.path()).unwrap();
        flake_generations(&store);
        let mut bad = store.generations("lab#alpha").unwrap().pop().unwrap();
        bad.kernel_params = vec!["quiet".into(), "||".into(), "shell".into()];
        store.add_generation(&bad).unwrap();
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
        let state = PolicyState::from_config(
            &config(BASE),
            vec![(mac, assigned("alpha"))],
            CurrentGenerations::load(&store).unwrap(),
            SERVER.into(),
        );
        for spec in [state.boot_spec(Some(mac)), state.boot_spec(None)] {
            let ctx = flakeboot_httpboot::script::ScriptContext {
                base_url: SERVER,
                mac: Some(mac),
            };
            let rendered = flakeboot_httpboot::script::render(&spec, &ctx).unwrap();
            assert!(rendered.skipped.is_empty(), "{:?}", rendered.skipped);
            assert!(
                rendered.script.contains("flakeboot.generation=2"),
                "{}",
                rendered.script
            );
            assert!(
                !rendered.script.contains("generation=3"),
                "{}",
                rendered.script
            );
        }
    }

    #[test]
    fn a_flake_host_as_menu_default_is_the_menus_default_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let store = flakeboot_store::Store::open(tmp.path()).unwrap();
        let mut config = config(BASE);
        config.menu.default = Some("lab#alpha".into());
        let state = PolicyState::from_config(
            &config,
            Vec::new(),
            flake_generations(&store),
            SERVER.into(),
        );
        let spec = state.boot_spec(None);
        let BootSpec::Menu(menu) = &spec else {
            panic!()
        };
        assert_eq!(menu.default.as_deref(), Some("alpha"));
        let ctx = flakeboot_httpboot::script::ScriptContext {
            base_url: SERVER,
            mac: None,
        };
        let rendered = flakeboot_httpboot::script::render(&spec, &ctx).unwrap();
        assert!(rendered.skipped.is_empty(), "{:?}", rendered.skipped);
        assert!(
            rendered.script.contains("--default boot-alpha "),
            "{}",
            rendered.script
        );
    }

    #[test]
    fn unknown_machine_gets_the_menu_with_first_host_default() {
        let state = PolicyState::from_config(
            &config(BASE),
            Vec::new(),
            CurrentGenerations::default(),
            SERVER.into(),
        );
        let BootSpec::Menu(menu) = state.boot_spec(Some(MacAddr([2, 0, 0, 0, 0, 1]))) else {
            panic!()
        };
        let names: Vec<_> = menu.entries.iter().map(|e| e.boot.host.as_str()).collect();
        assert_eq!(names, ["demo", "other"]);
        assert_eq!(menu.default.as_deref(), Some("demo"));
        assert!(matches!(state.boot_spec(None), BootSpec::Menu(_)));
    }

    fn assigned(host: &str) -> MachinePolicy {
        MachinePolicy {
            host: Some(host.into()),
            ..MachinePolicy::default()
        }
    }

    #[test]
    fn store_assignment_applies_unless_config_pins_the_machine() {
        let pinned: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let free = MacAddr([2, 0, 0, 0, 0, 9]);
        let state = PolicyState::from_config(
            &config(BASE),
            vec![(pinned, assigned("other")), (free, assigned("other"))],
            CurrentGenerations::default(),
            SERVER.into(),
        );
        let host = |mac| match state.boot_spec(Some(mac)) {
            BootSpec::Host(b) => b.host,
            BootSpec::Menu(_) => "menu".into(),
            BootSpec::Local => "local".into(),
        };
        assert_eq!(host(pinned), "demo");
        assert_eq!(host(free), "other");
    }

    /// What `mac` boots now, in one word: the host, `menu` or `local`.
    fn boots(policy: &BootPolicy, mac: MacAddr) -> String {
        match policy.boot_spec(Some(mac)) {
            BootSpec::Host(b) => b.host,
            BootSpec::Menu(_) => "menu".into(),
            BootSpec::Local => "local".into(),
        }
    }

    fn once(host: Option<&str>, boot_once: &str) -> MachinePolicy {
        MachinePolicy {
            host: host.map(str::to_owned),
            boot_once: Some(boot_once.into()),
            ..MachinePolicy::default()
        }
    }

    /// A `kernel` event of `GET /boot/<host>/static/kernel` from `peer`.
    fn kernel(host: &str, peer: &str, outcome: Outcome) -> BootEvent {
        BootEvent::new(
            BootStage::Kernel,
            outcome,
            format!("GET /boot/{host}/static/kernel 200 bytes 0-99/100"),
        )
        .host(host)
        .peer(peer.parse().unwrap())
    }

    #[test]
    fn a_machine_set_to_its_local_disk_gets_the_local_script_and_a_config_pin_can_say_so() {
        let free = MacAddr([2, 0, 0, 0, 0, 9]);
        let text = BASE.replace("host = \"demo\"", "host = \"local\"");
        let state = PolicyState::from_config(
            &config(&text),
            vec![(free, assigned(LOCAL_DISK))],
            CurrentGenerations::default(),
            SERVER.into(),
        );
        assert_eq!(state.boot_spec(Some(free)), BootSpec::Local);
        let pinned: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(state.boot_spec(Some(pinned)), BootSpec::Local);
        // Nobody else: the menu, whose default is still the first host.
        assert!(matches!(state.boot_spec(None), BootSpec::Menu(_)));
    }

    #[test]
    fn boot_once_wins_until_its_kernel_is_delivered_then_the_machine_reverts() {
        let (local, menu, assigned_mac) = (
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            MacAddr([2, 0, 0, 0, 0, 3]),
        );
        let state = PolicyState::from_config(
            &config(BASE),
            vec![
                (local, once(Some(LOCAL_DISK), "other")),
                (menu, once(None, "other")),
                (assigned_mac, once(Some("demo"), "other")),
            ],
            CurrentGenerations::default(),
            SERVER.into(),
        );
        let (tx, _rx) = mpsc::channel(64);
        let policy = BootPolicy::new(state, tx);
        for (i, (mac, after)) in [(local, "local"), (menu, "menu"), (assigned_mac, "demo")]
            .into_iter()
            .enumerate()
        {
            let peer = format!("10.77.0.{}", 10 + i);
            policy.record(dhcp(mac, &peer));
            // The script, fetched again in the same boot (iPXE retries, a reset): still once.
            assert_eq!(boots(&policy, mac), "other");
            let BootSpec::Host(boot) = policy.boot_spec(Some(mac)) else {
                panic!()
            };
            assert!(boot.cmdline.contains("flakeboot.host=other"), "{boot:?}");
            assert_eq!(boots(&policy, mac), "other");
            // Not taken by: a cut-off kernel, a HEAD, another host's kernel, its initrd, or
            // the kernel fetched from an address no DHCP exchange bound to it.
            policy.record(kernel("other", &peer, Outcome::Failed));
            let mut head = kernel("other", &peer, Outcome::Ok);
            head.detail = head.detail.replacen("GET", "HEAD", 1);
            head.host = None;
            policy.record(head);
            policy.record(kernel("demo", &peer, Outcome::Ok));
            let mut initrd = kernel("other", &peer, Outcome::Ok);
            initrd.detail = initrd.detail.replace("/kernel", "/initrd");
            initrd.stage = BootStage::Initrd;
            policy.record(initrd);
            policy.record(kernel("other", "10.77.0.99", Outcome::Ok).mac(mac));
            assert_eq!(boots(&policy, mac), "other", "{mac}");
            // Its kernel delivered to it: the next boot is the machine's own choice again.
            policy.record(kernel("other", &peer, Outcome::Ok));
            assert_eq!(boots(&policy, mac), after, "{mac}");
        }
    }

    #[test]
    fn a_boot_once_host_that_cannot_boot_now_is_skipped() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let state = PolicyState::from_config(
            &config(BASE),
            vec![(mac, once(Some("demo"), "gone"))],
            CurrentGenerations::default(),
            SERVER.into(),
        );
        let BootSpec::Host(boot) = state.boot_spec(Some(mac)) else {
            panic!()
        };
        assert_eq!(boot.host, "demo");
    }

    #[tokio::test]
    async fn a_taken_boot_once_is_cleared_in_the_store_and_survives_a_rebuild_from_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = flakeboot_store::Store::open(tmp.path()).unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        store
            .set_machine_host(mac, Some(LOCAL_DISK.into()))
            .unwrap();
        store
            .set_machine_options(
                mac,
                &flakeboot_store::MachineOptions {
                    hostname: Some("node".into()),
                    boot_once: Some("other".into()),
                    ..flakeboot_store::MachineOptions::default()
                },
            )
            .unwrap();
        let rebuild = || {
            PolicyState::from_config(
                &config(BASE),
                stored_policies(&store).unwrap(),
                CurrentGenerations::default(),
                SERVER.into(),
            )
        };
        let (tx, _rx) = mpsc::channel(64);
        let policy = BootPolicy::new(rebuild(), tx).with_store(store.clone());
        policy.record(dhcp(mac, "10.77.0.10"));
        assert_eq!(boots(&policy, mac), "other");
        policy.record(kernel("other", "10.77.0.10", Outcome::Ok));
        assert_eq!(boots(&policy, mac), "local", "cleared in memory at once");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.machine_options(mac).unwrap().boot_once.is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "never cleared in the store"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            store.machine_options(mac).unwrap().hostname.as_deref(),
            Some("node")
        );
        // A rebuild from the store (a restart, another machine's change) keeps it cleared.
        policy.replace(rebuild());
        assert_eq!(boots(&policy, mac), "local");
    }

    /// The longest flake name the config accepts makes the longest version label
    /// (`<64 characters>.g<n>`): its script renders and its kernel URL resolves.
    #[test]
    fn the_longest_flake_name_boots() {
        let tmp = tempfile::tempdir().unwrap();
        let store = flakeboot_store::Store::open(tmp.path()).unwrap();
        let flake = "f".repeat(flakeboot_catalogue::text::MAX_FLAKE_NAME);
        assert!(flakeboot_catalogue::text::valid_flake_name(&flake));
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
        let state = PolicyState::from_config(
            &config(BASE),
            vec![(mac, assigned("alpha"))],
            flake_generations_of(&store, &flake),
            SERVER.into(),
        );
        let spec = state.boot_spec(Some(mac));
        let ctx = flakeboot_httpboot::script::ScriptContext {
            base_url: SERVER,
            mac: Some(mac),
        };
        let rendered = flakeboot_httpboot::script::render(&spec, &ctx).unwrap();
        let version = format!("{flake}.g2");
        assert!(
            rendered.script.contains(&format!("/boot/alpha/{version}/")),
            "{}",
            rendered.script
        );
        let kernel = BootFile::Host {
            host: "alpha".into(),
            version,
            kind: FileKind::Kernel,
        };
        assert_eq!(
            state.boot_file(&kernel),
            Some(PathBuf::from("/nix/store/k/bzImage"))
        );
    }

    #[test]
    fn only_catalogue_files_resolve() {
        let state = PolicyState::from_config(
            &config(BASE),
            Vec::new(),
            CurrentGenerations::default(),
            SERVER.into(),
        );
        let kernel = BootFile::Host {
            host: "demo".into(),
            version: STATIC_VERSION.into(),
            kind: FileKind::Kernel,
        };
        assert_eq!(
            state.boot_file(&kernel),
            Some(PathBuf::from("/srv/demo/vmlinuz"))
        );
        let wrong_version = BootFile::Host {
            host: "demo".into(),
            version: "7".into(),
            kind: FileKind::Kernel,
        };
        assert_eq!(state.boot_file(&wrong_version), None);
        let unknown = BootFile::Host {
            host: "../etc".into(),
            version: STATIC_VERSION.into(),
            kind: FileKind::Initrd,
        };
        assert_eq!(state.boot_file(&unknown), None);
        // arm64 is not configured: nothing, even though the directory exists.
        assert_eq!(state.boot_file(&BootFile::Ipxe(IpxeBinary::Arm64Efi)), None);
    }

    #[test]
    fn flake_versions_round_trip_through_urls() {
        assert_eq!(parse_flake_version("lab.g3"), Some(("lab", 3)));
        assert_eq!(
            parse_flake_version("my.gadgets.g12"),
            Some(("my.gadgets", 12))
        );
        for bad in ["static", "lab.gx", "lab.g", "lab3", "lab.g-1"] {
            assert_eq!(parse_flake_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn record_never_blocks_when_the_writer_is_behind() {
        let (tx, _rx) = mpsc::channel(1);
        let cat = BootPolicy::new(PolicyState::default(), tx);
        for _ in 0..5 {
            cat.record(BootEvent::new(
                flakeboot_catalogue::BootStage::Dhcp,
                flakeboot_catalogue::Outcome::Ok,
                "x",
            ));
        }
        assert_eq!(cat.dropped_events(), 4);
    }

    /// A DHCP event as the DHCP server records it: the MAC from the wire, the client's address.
    fn dhcp(mac: MacAddr, peer: &str) -> BootEvent {
        use flakeboot_catalogue::{BootStage, Outcome};
        BootEvent::new(BootStage::Dhcp, Outcome::Ok, "proxy ack: ipxe.efi")
            .mac(mac)
            .peer(peer.parse().unwrap())
    }

    #[test]
    fn file_fetches_get_the_mac_that_took_their_address_in_dhcp() {
        use flakeboot_catalogue::{BootStage, Outcome};
        let (tx, mut rx) = mpsc::channel(8);
        let cat = BootPolicy::new(PolicyState::default(), tx);
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let ip: IpAddr = "10.77.0.100".parse().unwrap();
        let other: IpAddr = "10.77.0.101".parse().unwrap();
        cat.record(dhcp(mac, "10.77.0.100"));
        cat.record(BootEvent::new(BootStage::Kernel, Outcome::Ok, "k").peer(ip));
        cat.record(BootEvent::new(BootStage::Kernel, Outcome::Ok, "k").peer(other));
        let _dhcp = rx.try_recv().unwrap();
        assert_eq!(rx.try_recv().unwrap().mac, Some(mac));
        assert_eq!(rx.try_recv().unwrap().mac, None);
    }

    /// Another server's reply keeps the MAC it answers (its timeline) but binds no address: a
    /// later fetch from the server's address is still nobody's.
    #[test]
    fn another_servers_reply_names_its_client_and_binds_nothing() {
        use flakeboot_catalogue::{BootStage, Outcome};
        let (tx, mut rx) = mpsc::channel(8);
        let cat = BootPolicy::new(PolicyState::default(), tx);
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let server: IpAddr = "10.77.0.2".parse().unwrap();
        cat.record(
            BootEvent::new(BootStage::OtherDhcp, Outcome::Ok, "offer from 10.77.0.2")
                .mac(mac)
                .peer(server),
        );
        cat.record(BootEvent::new(BootStage::Kernel, Outcome::Ok, "k").peer(server));
        assert_eq!(rx.try_recv().unwrap().mac, Some(mac));
        assert_eq!(rx.try_recv().unwrap().mac, None);
        assert_eq!(cat.machine_at(server), None);
    }

    /// The real boot: iPXE fetches `boot.ipxe?mac=<its MAC>` from the address its DHCP exchange
    /// gave it; the script and the files after it are that machine's.
    #[test]
    fn a_script_naming_the_mac_its_address_is_bound_to_is_that_machines() {
        let (tx, mut rx) = mpsc::channel(8);
        let cat = BootPolicy::new(PolicyState::default(), tx);
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        cat.record(dhcp(mac, "10.77.0.100"));
        cat.record(script(mac, "10.77.0.100"));
        let _dhcp = rx.try_recv().unwrap();
        assert_eq!(rx.try_recv().unwrap().mac, Some(mac));
        assert_eq!(cat.unbound_claims(), 0);
    }

    /// An attacker's `?mac=<victim>` (or report) is attributed by its address: to the MAC that
    /// address took in DHCP, or to nobody; never to the victim, and it binds nothing.
    #[test]
    fn a_claimed_mac_never_reaches_another_machines_timeline() {
        use flakeboot_catalogue::{BootStage, Outcome};
        let (tx, mut rx) = mpsc::channel(16);
        let cat = BootPolicy::new(PolicyState::default(), tx);
        let victim: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let attacker: MacAddr = "52:54:00:66:66:66".parse().unwrap();
        cat.record(dhcp(victim, "10.77.0.100"));
        cat.record(dhcp(attacker, "10.77.0.66"));
        let _ = (rx.try_recv().unwrap(), rx.try_recv().unwrap());

        // From an address its own DHCP exchange bound: the attacker's own events.
        cat.record(script(victim, "10.77.0.66"));
        cat.record(
            BootEvent::new(BootStage::System, Outcome::Ok, "up")
                .mac(victim)
                .peer("10.77.0.66".parse().unwrap()),
        );
        // From an address no DHCP exchange bound (a static address): nobody's.
        cat.record(script(victim, "10.77.0.99"));
        cat.record(
            BootEvent::new(BootStage::Kernel, Outcome::Ok, "k").peer("10.77.0.99".parse().unwrap()),
        );
        let macs: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.mac)
            .collect();
        assert_eq!(macs, [Some(attacker), Some(attacker), None, None]);
        assert_eq!(cat.unbound_claims(), 3);

        // None of it made those addresses the victim's.
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert!(!cat.accept_report(victim, ip("10.77.0.66")));
        assert!(!cat.accept_report(victim, ip("10.77.0.99")));
        assert!(cat.accept_report(victim, ip("10.77.0.100")));
        cat.record(BootEvent::new(BootStage::Kernel, Outcome::Ok, "k").peer(ip("10.77.0.99")));
        assert_eq!(rx.try_recv().unwrap().mac, None);
    }

    /// A BIOS machine in proxy mode: its DHCP packets come from 0.0.0.0, its REQUEST to the
    /// LAN's router names its address, and the TFTP download of `undionly.kpxe` from that
    /// address is this machine's (the timeline shows TFTP, not "skipped").
    #[test]
    fn tftp_from_the_address_a_client_requested_is_that_machine() {
        use flakeboot_catalogue::{BootStage, Outcome};
        let (tx, mut rx) = mpsc::channel(8);
        let cat = BootPolicy::new(PolicyState::default(), tx);
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let ip: IpAddr = "10.77.0.123".parse().unwrap();
        cat.client_address(mac, ip);
        cat.record(BootEvent::new(BootStage::Tftp, Outcome::Ok, "undionly.kpxe").peer(ip));
        assert_eq!(rx.try_recv().unwrap().mac, Some(mac));
    }

    fn script(mac: MacAddr, peer: &str) -> BootEvent {
        use flakeboot_catalogue::{BootStage, Outcome};
        BootEvent::new(BootStage::Script, Outcome::Ok, "s")
            .mac(mac)
            .peer(peer.parse().unwrap())
    }

    #[test]
    fn reports_are_accepted_from_the_address_a_mac_last_took_in_dhcp_only() {
        let (tx, _rx) = mpsc::channel(64);
        let cat = BootPolicy::new(PolicyState::default(), tx);
        let a: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let b: MacAddr = "52:54:00:12:34:57".parse().unwrap();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert!(!cat.accept_report(a, ip("10.77.0.100")), "never seen");
        // Fetching a script with `?mac=` makes no address a MAC's.
        cat.record(script(a, "10.77.0.100"));
        assert!(!cat.accept_report(a, ip("10.77.0.100")), "only claimed");
        cat.record(dhcp(a, "10.77.0.100"));
        cat.client_address(b, ip("10.77.0.101"));
        assert!(cat.accept_report(a, ip("10.77.0.100")));
        assert!(cat.accept_report(b, ip("10.77.0.101")));
        assert!(!cat.accept_report(a, ip("10.77.0.101")), "b's address");
        assert!(!cat.accept_report(b, ip("10.77.0.100")), "a's address");
        assert!(!cat.accept_report(a, ip("10.77.0.199")), "nobody's");
        // b claims a's address with a script fetch: nothing changes.
        cat.record(script(b, "10.77.0.100"));
        assert!(cat.accept_report(a, ip("10.77.0.100")));
        assert!(!cat.accept_report(b, ip("10.77.0.100")));
        // b takes a's old address in DHCP: that address is b's now.
        cat.record(dhcp(b, "10.77.0.100"));
        assert!(!cat.accept_report(a, ip("10.77.0.100")));
        assert!(cat.accept_report(b, ip("10.77.0.100")));
        // An unspecified address (DHCP from 0.0.0.0) teaches nothing.
        cat.record(dhcp(a, "0.0.0.0"));
        assert!(!cat.accept_report(a, ip("0.0.0.0")));
    }

    /// A policy over a store holding three leases of `mac`: 10.77.0.150 bound, .151 bound but
    /// expired, .152 declined (the store's directory goes with the policy's store).
    fn policy_with_leases(
        mac: MacAddr,
    ) -> (tempfile::TempDir, BootPolicy, mpsc::Receiver<BootEvent>) {
        use flakeboot_store::{LeaseRecord, LeaseState};
        use std::time::{Duration, SystemTime};
        let tmp = tempfile::tempdir().unwrap();
        let store = flakeboot_store::Store::open(tmp.path()).unwrap();
        let lease = |ip: [u8; 4], state, expires| LeaseRecord {
            ip: ip.into(),
            mac,
            client_id: None,
            hostname: None,
            expires,
            state,
        };
        let later = SystemTime::now() + Duration::from_secs(3600);
        let earlier = SystemTime::now() - Duration::from_secs(60);
        store
            .put_leases(&[
                lease([10, 77, 0, 150], LeaseState::Bound, later),
                lease([10, 77, 0, 151], LeaseState::Bound, earlier),
                lease([10, 77, 0, 152], LeaseState::Declined, later),
            ])
            .unwrap();
        let (tx, rx) = mpsc::channel(8);
        (
            tmp,
            BootPolicy::new(PolicyState::default(), tx).with_store(store),
            rx,
        )
    }

    #[test]
    fn reports_are_accepted_from_the_address_a_mac_holds_a_lease_for() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let (_tmp, cat, _rx) = policy_with_leases(mac);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert!(cat.accept_report(mac, ip("10.77.0.150")));
        assert!(!cat.accept_report(mac, ip("10.77.0.151")), "expired");
        assert!(!cat.accept_report(mac, ip("10.77.0.152")), "declined");
        assert!(!cat.accept_report(MacAddr([2, 0, 0, 0, 0, 1]), ip("10.77.0.150")));
        assert!(cat.accept_report(mac, ip("::ffff:10.77.0.150")));
    }

    /// Log lines are attributed like events: by the address's DHCP exchange, else by the lease
    /// the store shows for it (router mode); never by a claim, and an address nobody holds is
    /// nobody's.
    #[test]
    fn log_lines_are_attributed_by_dhcp_binding_or_lease() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let a: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let b: MacAddr = "52:54:00:12:34:57".parse().unwrap();
        let (_tmp, cat, _rx) = policy_with_leases(b);
        assert_eq!(cat.machine_at(ip("10.77.0.100")), None);
        // A claim binds nothing.
        cat.record(script(a, "10.77.0.100"));
        assert_eq!(cat.machine_at(ip("10.77.0.100")), None);
        cat.client_address(a, ip("10.77.0.100"));
        assert_eq!(cat.machine_at(ip("10.77.0.100")), Some(a));
        assert_eq!(cat.machine_at(ip("::ffff:10.77.0.100")), Some(a));
        assert_eq!(cat.machine_at(ip("10.77.0.150")), Some(b), "leased");
        assert_eq!(cat.machine_at(ip("10.77.0.151")), None, "expired");
        assert_eq!(cat.machine_at(ip("10.77.0.152")), None, "declined");
        assert_eq!(cat.machine_at(ip("10.77.0.199")), None, "nobody's");
    }

    /// Router mode: the booted system may take another address than iPXE did; the lease the
    /// store shows binds that address, so the accepted report's event is the machine's.
    #[test]
    fn a_report_accepted_by_its_lease_is_that_machines_event() {
        use flakeboot_catalogue::{BootStage, Outcome};
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let (_tmp, cat, mut rx) = policy_with_leases(mac);
        let from: IpAddr = "10.77.0.150".parse().unwrap();
        assert!(!cat.accept_report(MacAddr([2, 0, 0, 0, 0, 1]), from));
        assert!(cat.accept_report(mac, from));
        cat.record(
            BootEvent::new(BootStage::System, Outcome::Ok, "up")
                .mac(mac)
                .peer(from),
        );
        assert_eq!(rx.try_recv().unwrap().mac, Some(mac));
    }

    /// On the pre-flight network the VM's MAC boots the candidate generation (queued, not
    /// current) with the pre-flight network's server; other machines, and the same MAC on the
    /// LAN, still boot the current one; its files are served.
    #[test]
    fn the_preflight_vm_boots_the_candidate_generation() {
        let tmp = tempfile::tempdir().unwrap();
        let store = flakeboot_store::Store::open(tmp.path()).unwrap();
        let flakes = flake_generations(&store);
        let mut candidate = store.generations("lab#alpha").unwrap()[1].clone();
        candidate.preflight = flakeboot_store::PreflightRecord::queued();
        store.put_generation(&candidate).unwrap();
        flakes.refresh(&store).unwrap();
        let cfg = config("[lan]\ninterface = \"eth0\"\n");
        let state = PolicyState::from_config(&cfg, vec![], flakes, "http://10.0.0.2".into());
        let (tx, _rx) = mpsc::channel(8);
        let policy = BootPolicy::new(state, tx);
        let machine: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let vm: MacAddr = "02:fb:9f:00:00:01".parse().unwrap();
        let host_of = |spec: BootSpec| match spec {
            BootSpec::Host(h) => h,
            other => panic!("{other:?}"),
        };
        // Any other machine's menu offers the current generation, 1.
        let menu_version = |spec: BootSpec| match spec {
            BootSpec::Menu(m) => m.entries[0].boot.version.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(menu_version(policy.boot_spec(Some(machine))), "lab.g1");
        let policy = Arc::new(policy);
        let preflight = PreflightCatalogue {
            policy: Arc::clone(&policy),
            boot: PreflightBoot {
                mac: vm,
                host: "lab#alpha".into(),
                generation: 2,
                server: "http://198.18.227.1".into(),
            },
        };
        let boot = host_of(preflight.boot_spec(Some(vm)));
        assert_eq!(boot.version, "lab.g2");
        assert!(
            boot.cmdline.contains("flakeboot.generation=2"),
            "{}",
            boot.cmdline
        );
        assert!(
            boot.cmdline
                .ends_with("flakeboot.server=http://198.18.227.1"),
            "{}",
            boot.cmdline
        );
        // On the LAN the same MAC is a machine like any other: no candidate there.
        assert_eq!(menu_version(policy.boot_spec(Some(machine))), "lab.g1");
        assert_eq!(menu_version(policy.boot_spec(Some(vm))), "lab.g1");
        // On the pre-flight network only the VM's MAC gets the candidate.
        assert_eq!(menu_version(preflight.boot_spec(Some(machine))), "lab.g1");
        let kernel = BootFile::Host {
            host: "alpha".into(),
            version: "lab.g2".into(),
            kind: FileKind::Kernel,
        };
        assert_eq!(
            policy.boot_file(&kernel),
            Some(PathBuf::from("/nix/store/k/bzImage"))
        );
    }
}
