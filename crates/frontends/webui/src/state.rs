//! Everything the handlers share: the store, the flake service, sessions, the setup code,
//! and the change notifications the daemon subscribes to.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use flakeboot_catalogue::MacAddr;
use flakeboot_store::{ApplianceSettings, DhcpModeSetting, Store, StoreError};
use tokio::sync::watch;

use crate::auth::hash_gate::{HashGate, HashGateError, HashLimits};
use crate::auth::ratelimit::{Attempt, Limits, LoginLimiter, UserKey};
use crate::auth::sessions::{Session, SessionError, SessionLimits, Sessions};
use crate::auth::setup_code::SetupCode;
use crate::clock::Clock;
use crate::error::WebError;
use crate::tls::CertStore;
use flakeboot_appliance::access_tokens::{AccessTokenError, AccessTokens};
use flakeboot_appliance::firmware::Firmware;
use flakeboot_appliance::flakes::{FlakeService, FlakeServiceError};
use flakeboot_appliance::metrics::ServiceMetrics;
use flakeboot_appliance::setup_restore::SetupRestore;
use flakeboot_appliance::status::DaemonStatus;
use flakeboot_appliance::vpn::VpnService;
use flakeboot_appliance::wire;
use flakeboot_appliance::{FieldError, LanActions, MachineSettings, SettingsCheck};

/// How the UI is set up by the daemon.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The appliance's name, shown in the title bar.
    pub appliance_name: String,
    /// Hosts from the config file (`[[hosts]]`), offered for assignment beside flake hosts.
    pub static_hosts: Vec<String>,
    /// Machines the config file pins (`[[machines]]`), with the host it gives them (`None`: the
    /// menu). The daemon lets the file win over the UI, so the UI shows these as pinned.
    pub pinned_machines: BTreeMap<MacAddr, Option<String>>,
    /// The config file the daemon read, when known (shown where it pins a machine).
    pub config_file: Option<PathBuf>,
    /// The line (from 1) of each pinned machine's `mac = ...` in that file, when found.
    pub pin_lines: BTreeMap<MacAddr, usize>,
    /// The file's `[[flakes]]`: the daemon adds them at every start, so they cannot be
    /// removed here.
    pub config_flakes: Vec<ConfigFlake>,
    /// Network interfaces the setup page offers as the LAN port.
    pub interfaces: Vec<String>,
    /// The settings from the config file: used until the UI saves its own.
    pub default_settings: ApplianceSettings,
    /// Session lifetimes.
    pub session_limits: SessionLimits,
    /// Failed logins (or setup codes) allowed per address (an IPv6 /64) per window.
    pub login_failures: usize,
    /// Failed logins allowed per user name from all addresses together per window (names that
    /// are no account share one count). An address that signed in lately is exempt
    /// (`auth::ratelimit`), so a stranger cannot lock the admin out of it.
    pub login_user_failures: usize,
    /// Failed logins (or setup codes) allowed from all addresses together per window; an
    /// address that signed in lately is exempt, as from `login_user_failures`.
    pub login_total_failures: usize,
    /// The window of the three limits.
    pub login_window: Duration,
    /// How long after the initrd a booted system has to report before the timeline says
    /// "no report" (`[boot] report_timeout`).
    pub report_timeout: Duration,
    /// Password hashes at once, and how many requests may wait for one.
    pub hash_limits: HashLimits,
    /// The config's rules every saved setting goes through (the config file the settings are
    /// laid over, this machine's interfaces).
    pub check: SettingsCheck,
}

/// A `[[flakes]]` entry of the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFlake {
    /// Its reference as the file gives it.
    pub url: String,
    /// Its name, when the file gives one (else derived from the URL).
    pub name: Option<String>,
    /// The line (from 1) of its entry, when known.
    pub line: Option<usize>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            appliance_name: "flakeboot".into(),
            static_hosts: Vec::new(),
            pinned_machines: BTreeMap::new(),
            config_file: None,
            pin_lines: BTreeMap::new(),
            config_flakes: Vec::new(),
            interfaces: Vec::new(),
            default_settings: ApplianceSettings::default(),
            session_limits: SessionLimits::default(),
            login_failures: 5,
            login_user_failures: 10,
            login_total_failures: 50,
            login_window: Duration::from_secs(300),
            report_timeout: Duration::from_secs(600),
            hash_limits: HashLimits::default(),
            check: SettingsCheck::default(),
        }
    }
}

/// The shared state of the web UI; cheap to clone.
#[derive(Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    flakes: Arc<dyn FlakeService>,
    config: WebConfig,
    clock: Clock,
    sessions: Sessions,
    limiter: Mutex<LoginLimiter>,
    hash_gate: HashGate,
    setup_code: Mutex<Option<SetupCode>>,
    setup_done: AtomicBool,
    settings: watch::Sender<ApplianceSettings>,
    machines: watch::Sender<u64>,
    status: watch::Receiver<DaemonStatus>,
    certs: Option<CertStore>,
    vpn: OnceLock<Arc<dyn VpnService>>,
    lan_actions: OnceLock<LanActions>,
    metrics: OnceLock<ServiceMetrics>,
    deploy_key: OnceLock<Result<wire::DeployKey, String>>,
    access_tokens: OnceLock<Arc<AccessTokens>>,
    firmware: OnceLock<Firmware>,
    setup_restore: OnceLock<SetupRestore>,
    hook_limiter: Mutex<crate::api::follow::HookLimiter>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl WebState {
    /// The UI over `store` and `flakes`. When no admin exists yet, a setup code is generated:
    /// the daemon prints [`WebState::setup_code`] to its log and console.
    /// `status` is the daemon's report for the dashboard; `certs` the TLS certificate (for the
    /// settings page's upload), `None` when served without TLS (tests).
    pub fn new(
        store: Store,
        flakes: Arc<dyn FlakeService>,
        config: WebConfig,
        status: watch::Receiver<DaemonStatus>,
        certs: Option<CertStore>,
    ) -> Result<WebState, WebError> {
        // A record of an earlier version has no WAN or DNS settings: the file's are in effect.
        let settings = match store.appliance_settings()? {
            Some(saved) => saved.or_file(&config.default_settings),
            None => config.default_settings.clone(),
        };
        let setup_done = !store.users()?.is_empty();
        let setup_code = if setup_done {
            None
        } else {
            Some(SetupCode::generate()?)
        };
        let clock = Clock::default();
        // Sessions live in the store: those from before a restart go on, expired ones end.
        let sessions = Sessions::new(store.clone(), config.session_limits, clock.wall())?;
        let inner = Inner {
            sessions,
            limiter: Mutex::new(LoginLimiter::new(Limits {
                per_addr: config.login_failures,
                per_user: config.login_user_failures,
                total: config.login_total_failures,
                window: config.login_window,
            })),
            hash_gate: HashGate::new(config.hash_limits),
            store,
            flakes,
            config,
            clock,
            setup_code: Mutex::new(setup_code),
            setup_done: AtomicBool::new(setup_done),
            settings: watch::Sender::new(settings),
            machines: watch::Sender::new(0),
            status,
            certs,
            vpn: OnceLock::new(),
            lan_actions: OnceLock::new(),
            metrics: OnceLock::new(),
            deploy_key: OnceLock::new(),
            access_tokens: OnceLock::new(),
            firmware: OnceLock::new(),
            setup_restore: OnceLock::new(),
            hook_limiter: Mutex::new(crate::api::follow::HookLimiter::default()),
        };
        Ok(WebState {
            inner: Arc::new(inner),
        })
    }

    /// The one-time setup code while setup is not done (print it on the console and log).
    pub fn setup_code(&self) -> Option<SetupCode> {
        lock(&self.inner.setup_code).clone()
    }

    /// The settings in effect; the receiver sees every change saved from the UI or API.
    pub fn settings_changes(&self) -> watch::Receiver<ApplianceSettings> {
        self.inner.settings.subscribe()
    }

    /// Bumped whenever a machine's host, label or boot options change: the daemon reloads its
    /// assignments from the store.
    pub fn machine_changes(&self) -> watch::Receiver<u64> {
        self.inner.machines.subscribe()
    }

    /// The clock sessions and rate limits use (tests advance it).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The store (the daemon may share it).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn flakes(&self) -> &dyn FlakeService {
        self.inner.flakes.as_ref()
    }

    /// The flake service itself, for a task that outlives the request (a webhook's update).
    pub(crate) fn flake_service(&self) -> Arc<dyn FlakeService> {
        self.inner.flakes.clone()
    }

    /// Runs `f` on the webhook call limiter.
    pub(crate) fn hook_limiter<T>(
        &self,
        f: impl FnOnce(&mut crate::api::follow::HookLimiter) -> T,
    ) -> T {
        f(&mut lock(&self.inner.hook_limiter))
    }

    /// Wires remote management over WireGuard (once; later calls are ignored). Without it the
    /// VPN page and API say the feature is not available on this appliance.
    pub fn set_vpn(&self, vpn: Arc<dyn VpnService>) {
        let _ = self.inner.vpn.set(vpn);
    }

    /// Wires lease releases and Wake-on-LAN (once; later calls are ignored). Without it,
    /// releases change the store only and waking answers that it is not available.
    pub fn set_lan_actions(&self, actions: LanActions) {
        let _ = self.inner.lan_actions.set(actions);
    }

    pub(crate) fn lan_actions(&self) -> Option<&LanActions> {
        self.inner.lan_actions.get()
    }

    /// Wires the boot services' counters for `/metrics` (once; later calls are ignored).
    /// Without it `/metrics` shows the state gauges and zero counters.
    pub fn set_metrics(&self, metrics: ServiceMetrics) {
        let _ = self.inner.metrics.set(metrics);
    }

    pub(crate) fn metrics(&self) -> ServiceMetrics {
        self.inner.metrics.get().cloned().unwrap_or_default()
    }

    /// Wires the SSH deploy key's public half, or why there is none usable (once; later calls
    /// are ignored). Without it the API and the flakes page say it is not available.
    pub fn set_deploy_key(&self, key: Result<wire::DeployKey, String>) {
        let _ = self.inner.deploy_key.set(key);
    }

    /// The deploy key's public half, or why there is none.
    pub(crate) fn deploy_key(&self) -> Result<&wire::DeployKey, WebError> {
        match self.inner.deploy_key.get() {
            Some(Ok(key)) => Ok(key),
            Some(Err(message)) => Err(WebError::Unavailable {
                message: message.clone(),
            }),
            None => Err(WebError::Unavailable {
                message: "There is no SSH deploy key on this appliance.".into(),
            }),
        }
    }

    /// Wires the appliance's firmware (once; later calls are ignored). Without it the firmware
    /// routes say updates are not available.
    pub fn set_firmware(&self, firmware: Firmware) {
        let _ = self.inner.firmware.set(firmware);
    }

    /// The firmware, or why there is none.
    pub(crate) fn firmware(&self) -> Result<&Firmware, WebError> {
        self.inner
            .firmware
            .get()
            .ok_or_else(|| WebError::Unavailable {
                message: "firmware updates are not available on this daemon".into(),
            })
    }

    /// Wires restoring a backup from the setup page (once; later calls are ignored). Without
    /// it the setup page offers no restore.
    pub fn set_setup_restore(&self, restore: SetupRestore) {
        let _ = self.inner.setup_restore.set(restore);
    }

    /// Restoring a backup from the setup page, when the daemon offers it.
    pub(crate) fn setup_restore(&self) -> Option<&SetupRestore> {
        self.inner.setup_restore.get()
    }

    /// Wires the access tokens for private flakes (once; later calls are ignored). Without it
    /// the API and the flakes page say they are not available.
    pub fn set_access_tokens(&self, tokens: AccessTokens) {
        let _ = self.inner.access_tokens.set(Arc::new(tokens));
    }

    /// Runs an access-token call (small files) off the async threads.
    pub(crate) async fn access_tokens<T, F>(&self, f: F) -> Result<T, WebError>
    where
        F: FnOnce(&AccessTokens) -> Result<T, AccessTokenError> + Send + 'static,
        T: Send + 'static,
    {
        let tokens =
            self.inner
                .access_tokens
                .get()
                .cloned()
                .ok_or_else(|| WebError::Unavailable {
                    message: "Access tokens cannot be set on this appliance.".into(),
                })?;
        tokio::task::spawn_blocking(move || f(&tokens))
            .await
            .map_err(|e| WebError::Task(e.to_string()))?
            .map_err(WebError::from)
    }

    pub(crate) fn vpn(&self) -> Option<&dyn VpnService> {
        self.inner.vpn.get().map(|v| v.as_ref())
    }

    /// How long a booted system has to report after its initrd (`[boot] report_timeout`).
    pub(crate) fn report_timeout(&self) -> Duration {
        self.inner.config.report_timeout
    }

    pub(crate) fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    pub(crate) fn certs(&self) -> Option<&CertStore> {
        self.inner.certs.as_ref()
    }

    /// Runs a session call (the store) off the async threads.
    async fn on_sessions<T, F>(&self, f: F) -> Result<T, WebError>
    where
        F: FnOnce(&Sessions, std::time::SystemTime) -> Result<T, SessionError> + Send + 'static,
        T: Send + 'static,
    {
        let sessions = self.inner.sessions.clone();
        let now = self.inner.clock.wall();
        tokio::task::spawn_blocking(move || f(&sessions, now))
            .await
            .map_err(|e| WebError::Task(e.to_string()))?
            .map_err(WebError::from)
    }

    /// Signs `user` in: the new session's cookie value.
    pub(crate) async fn create_session(&self, user: &str) -> Result<String, WebError> {
        let user = user.to_owned();
        self.on_sessions(move |s, now| s.create(&user, now)).await
    }

    /// The live session of a cookie value, refreshed; `None` when unknown or expired.
    pub(crate) async fn session(&self, cookie: &str) -> Result<Option<Session>, WebError> {
        let cookie = cookie.to_owned();
        self.on_sessions(move |s, now| Ok(s.touch(&cookie, now)?))
            .await
    }

    /// Signs a cookie value out.
    pub(crate) async fn end_session(&self, cookie: &str) -> Result<(), WebError> {
        let cookie = cookie.to_owned();
        self.on_sessions(move |s, _| Ok(s.remove(&cookie)?)).await
    }

    /// Ends every session of `user` but the one of the cookie value `keep`.
    pub(crate) async fn end_user_sessions(
        &self,
        user: &str,
        keep: Option<&str>,
    ) -> Result<usize, WebError> {
        let (user, keep) = (user.to_owned(), keep.map(str::to_owned));
        self.on_sessions(move |s, _| Ok(s.remove_user(&user, keep.as_deref())?))
            .await
    }

    /// Drops the sessions that have expired; how many. The daemon calls it now and then
    /// ([`crate::serve::expire_sessions_every`]); sign-ins and the start do too.
    pub async fn expire_sessions(&self) -> Result<usize, WebError> {
        self.on_sessions(|s, now| Ok(s.expire(now)?)).await
    }

    /// Appends an entry to the audit log (off the async threads). A failure is logged, not
    /// returned: the action it records has happened.
    pub(crate) async fn audit(&self, entry: flakeboot_store::AuditRecord) {
        let action = entry.action.clone();
        if let Err(e) = self.db(move |s| s.append_audit(&entry)).await {
            tracing::warn!(action, "cannot write the audit log: {e}");
        }
    }

    /// How many sessions are kept (tests).
    pub async fn session_count(&self) -> Result<usize, WebError> {
        self.on_sessions(|s, _| Ok(s.len()?)).await
    }

    pub(crate) fn limiter(&self) -> MutexGuard<'_, LoginLimiter> {
        lock(&self.inner.limiter)
    }

    /// Runs a password hash or verification behind the gate (a few at a time, short queue).
    pub(crate) async fn hash<T, F>(&self, f: F) -> Result<T, WebError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Ok(self.inner.hash_gate.run(f).await?)
    }

    /// How many password hashes (sign-in, setup, password change) have run: a metric, and how
    /// tests prove that refused attempts cost no hash.
    pub fn password_hashes(&self) -> u64 {
        self.inner.hash_gate.runs()
    }

    pub(crate) fn status(&self) -> DaemonStatus {
        self.inner.status.borrow().clone()
    }

    pub(crate) fn settings(&self) -> ApplianceSettings {
        self.inner.settings.borrow().clone()
    }

    /// True once an admin exists.
    pub fn setup_done(&self) -> bool {
        self.inner.setup_done.load(Ordering::Acquire)
    }

    /// Marks setup done and forgets the setup code.
    pub(crate) fn finish_setup(&self) {
        self.inner.setup_done.store(true, Ordering::Release);
        *lock(&self.inner.setup_code) = None;
    }

    /// Runs a flake-service call that may block (store reads and writes, the build queue) off
    /// the async threads.
    pub(crate) async fn flake<T, F>(&self, f: F) -> Result<T, WebError>
    where
        F: FnOnce(&dyn FlakeService) -> Result<T, FlakeServiceError> + Send + 'static,
        T: Send + 'static,
    {
        let flakes = self.inner.flakes.clone();
        tokio::task::spawn_blocking(move || f(flakes.as_ref()))
            .await
            .map_err(|e| WebError::Task(e.to_string()))?
            .map_err(WebError::from)
    }

    /// Runs a blocking store call off the async threads.
    pub(crate) async fn db<T, F>(&self, f: F) -> Result<T, WebError>
    where
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| WebError::Task(e.to_string()))?
            .map_err(WebError::from)
    }

    /// Saves settings and tells subscribers.
    pub(crate) async fn save_settings(&self, settings: ApplianceSettings) -> Result<(), WebError> {
        let copy = settings.clone();
        self.db(move |s| s.put_appliance_settings(&copy)).await?;
        self.inner.settings.send_replace(settings);
        Ok(())
    }

    /// Checks settings before they are saved (the config's rules, this machine's interfaces),
    /// off the async threads (netlink, the store's flake list).
    pub(crate) async fn check_settings(
        &self,
        settings: ApplianceSettings,
    ) -> Result<Vec<FieldError>, WebError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let hosts = state.assignable_hosts();
            state.inner.config.check.settings(&settings, &hosts)
        })
        .await
        .map_err(|e| WebError::Task(e.to_string()))
    }

    /// Why saving `next` needs the user's confirmation first: it switches to router mode while
    /// another full DHCP server answers on the LAN (the servers the watcher has seen).
    pub(crate) fn router_conflict(&self, next: &ApplianceSettings) -> Option<String> {
        use flakeboot_appliance::settings::plan::dhcp_mode_of;
        let servers = self
            .lan_actions()
            .map(|a| a.dhcp_servers().list())
            .unwrap_or_default();
        flakeboot_appliance::dhcp_servers::router_switch_conflict(
            dhcp_mode_of(self.settings().dhcp_mode),
            dhcp_mode_of(next.dhcp_mode),
            &servers,
        )
    }

    /// Checks one machine's settings before they are saved.
    pub(crate) async fn check_machine(
        &self,
        mac: MacAddr,
        machine: MachineSettings,
    ) -> Result<Vec<FieldError>, WebError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let hosts = state.assignable_hosts();
            state.inner.config.check.machine(mac, &machine, &hosts)
        })
        .await
        .map_err(|e| WebError::Task(e.to_string()))
    }

    /// What the machine overview needs beside the store: the file's pins, the report timeout.
    pub(crate) fn overview_context(&self) -> flakeboot_appliance::overview::Context {
        flakeboot_appliance::overview::Context {
            pins: self.inner.config.pinned_machines.clone(),
            report_timeout: self.inner.config.report_timeout,
            router: self.inner.settings.borrow().dhcp_mode == DhcpModeSetting::Router,
        }
    }

    /// Where the config file pins `mac`: "/etc/flakeboot.toml, line 12" (as much as is known),
    /// or `None` when it does not.
    pub(crate) fn pinned_by(&self, mac: MacAddr) -> Option<String> {
        let config = &self.inner.config;
        config.pinned_machines.get(&mac)?;
        let file = config
            .config_file
            .as_ref()
            .map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
        Some(match config.pin_lines.get(&mac) {
            Some(line) => format!("{file}, line {line}"),
            None => file,
        })
    }

    /// Where the config file adds the flake `name` (at `url`): "/etc/flakeboot.toml, line 7",
    /// or `None` when it does not. An entry without a name matches by URL.
    pub(crate) fn flake_in_config(&self, name: &str, url: &str) -> Option<String> {
        let config = &self.inner.config;
        let entry = config.config_flakes.iter().find(|f| match &f.name {
            Some(n) => n == name,
            None => f.url == url,
        })?;
        let file = config
            .config_file
            .as_ref()
            .map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
        Some(match entry.line {
            Some(line) => format!("{file}, line {line}"),
            None => file,
        })
    }

    /// Tells subscribers that machine assignments changed.
    pub(crate) fn machines_changed(&self) {
        self.inner.machines.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Every host a machine can be assigned to: config hosts, then `flake#host` of every
    /// bootable host of every flake.
    pub(crate) fn assignable_hosts(&self) -> Vec<String> {
        let mut hosts = self.inner.config.static_hosts.clone();
        match self.inner.flakes.flakes() {
            Ok(flakes) => {
                for flake in flakes {
                    for host in flake.hosts.iter().filter(|h| h.unbootable.is_none()) {
                        hosts.push(format!("{}#{}", flake.name, host.name));
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list flake hosts: {e}"),
        }
        hosts
    }

    /// Counts a sign-in or setup attempt from `peer` for `user` (none for a setup code) before
    /// it is checked, or refuses it (429) when the address, the user name or all addresses
    /// together have no attempts left. Hand the attempt to [`WebState::attempt_succeeded`] if it
    /// succeeds; a failure stays counted.
    pub(crate) fn reserve_attempt(
        &self,
        peer: Option<IpAddr>,
        user: Option<UserKey>,
    ) -> Result<Attempt, WebError> {
        let now = self.inner.clock.now();
        self.limiter()
            .reserve(peer, user, now)
            .map_err(|retry_after| WebError::RateLimited { retry_after })
    }

    /// Un-counts a successful attempt (and the address's earlier failures).
    pub(crate) fn attempt_succeeded(&self, attempt: Attempt) {
        self.limiter().succeed(attempt);
    }

    /// Checks a password (or makes a hash) for a counted attempt behind the hash gate. When
    /// the gate refuses (busy), no password was tried, so the attempt is un-counted.
    pub(crate) async fn hash_for<T, F>(
        &self,
        attempt: Attempt,
        f: F,
    ) -> Result<(Attempt, T), WebError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.inner.hash_gate.run(f).await {
            Ok(out) => Ok((attempt, out)),
            Err(e @ HashGateError::Busy) => {
                self.limiter().cancel(attempt);
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
