//! What the web UI changes: the appliance's settings (LAN port, DHCP mode, ranges,
//! reservations, menu, nix substituters and builders, the WAN port, the DNS forwarder) and
//! per-machine boot options (hostname, extra kernel parameters, the host its next boot gets
//! once).
//!
//! - `settings`: a key -> JSON; the key `appliance` holds [`ApplianceSettings`].
//! - `machine_options`: MAC (6 bytes) -> JSON [`MachineOptions`].
//!
//! These tables are created on first write; readers treat a missing table as empty.

use std::net::Ipv4Addr;

use flakeboot_catalogue::MacAddr;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::schema::{MacKey, decode, encode, mac_key, read_table};
use crate::{Store, StoreError};

/// Named settings -> JSON.
pub const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
/// Per-machine boot options by MAC -> JSON [`MachineOptions`].
pub const MACHINE_OPTIONS: TableDefinition<MacKey, &[u8]> = TableDefinition::new("machine_options");

const APPLIANCE_KEY: &str = "appliance";

/// How flakeboot takes part in DHCP on the LAN (mirrors the config file's `[dhcp] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpModeSetting {
    /// Answer only network-boot clients, beside the LAN's own DHCP server.
    #[default]
    Proxy,
    /// Be the LAN's DHCP server.
    Router,
    /// No DHCP at all.
    Off,
}

impl DhcpModeSetting {
    /// The name used in the config file and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DhcpModeSetting::Proxy => "proxy",
            DhcpModeSetting::Router => "router",
            DhcpModeSetting::Off => "off",
        }
    }
}

/// A fixed address for one machine (router mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationSetting {
    /// The machine.
    pub mac: MacAddr,
    /// Its address.
    pub address: Ipv4Addr,
    /// The host name it is given (option 12), if any.
    pub hostname: Option<String>,
}

/// How the WAN port gets its address (mirrors the config file's `[wan] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WanModeSetting {
    /// From the upstream's DHCP server.
    #[default]
    Dhcp,
    /// The address, gateway and name servers set here.
    Static,
}

impl WanModeSetting {
    /// The name used in the config file and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            WanModeSetting::Dhcp => "dhcp",
            WanModeSetting::Static => "static",
        }
    }
}

/// The WAN port (mirrors the config file's `[wan]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WanSettings {
    /// The upstream port; `None`: no WAN.
    pub interface: Option<String>,
    /// DHCP or static.
    pub mode: WanModeSetting,
    /// Static: the port's address and prefix length.
    pub address: Option<(Ipv4Addr, u8)>,
    /// Static: the default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Static: the upstream's name servers.
    pub dns: Vec<Ipv4Addr>,
}

/// The DNS forwarder (the config file's `[dns] enabled` and `upstream`; its limits stay the
/// file's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsSettings {
    /// On, off, or `None`: in router mode only.
    pub enabled: Option<bool>,
    /// The name servers forwarded to; empty: a static WAN's, else `/etc/resolv.conf`'s.
    pub upstream: Vec<Ipv4Addr>,
}

/// The appliance's settings as the web UI edits them. Seeded from the config file; once saved
/// here they win over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplianceSettings {
    /// The LAN port (network interface) to serve.
    pub lan_interface: String,
    /// Proxy, router or off.
    pub dhcp_mode: DhcpModeSetting,
    /// Address ranges handed out in router mode (first, last; inclusive).
    pub dhcp_ranges: Vec<[Ipv4Addr; 2]>,
    /// Fixed addresses (router mode).
    pub reservations: Vec<ReservationSetting>,
    /// The menu's default entry (a host name), `None` for the first host, `"local"` for disk.
    pub menu_default: Option<String>,
    /// Seconds the menu waits before booting its default.
    pub menu_timeout_secs: u64,
    /// Nix binary caches (`substituters`), in order.
    pub substituters: Vec<String>,
    /// Nix remote builders (`builders`), one machine spec each.
    pub builders: Vec<String>,
    /// The WAN port; `None` in records saved before it was a setting: the config file's.
    pub wan: Option<WanSettings>,
    /// The DNS forwarder; `None` in records saved before it was a setting: the config file's.
    pub dns: Option<DnsSettings>,
}

impl ApplianceSettings {
    /// These settings with what they leave unset (`wan`, `dns`: a record of an earlier
    /// version) taken from `file` (the config file's, [`ApplianceSettings`] form).
    pub fn or_file(mut self, file: &ApplianceSettings) -> ApplianceSettings {
        if self.wan.is_none() {
            self.wan = file.wan.clone();
        }
        if self.dns.is_none() {
            self.dns = file.dns.clone();
        }
        self
    }
}

impl Default for ApplianceSettings {
    fn default() -> Self {
        ApplianceSettings {
            lan_interface: String::new(),
            dhcp_mode: DhcpModeSetting::Proxy,
            dhcp_ranges: Vec::new(),
            reservations: Vec::new(),
            menu_default: None,
            menu_timeout_secs: 10,
            substituters: Vec::new(),
            builders: Vec::new(),
            wan: None,
            dns: None,
        }
    }
}

/// Boot-time settings of one machine: need no rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineOptions {
    /// The host name the machine is given on its kernel command line.
    pub hostname: Option<String>,
    /// Appended to the host's kernel command line for this machine only.
    pub kernel_params: String,
    /// "Boot once": the host (`flake#host` or a config host) its next boot gets instead of its
    /// own choice; cleared when that host's kernel was delivered to it
    /// ([`Store::clear_boot_once`]).
    pub boot_once: Option<String>,
}

impl MachineOptions {
    /// True when nothing is set (the record can be deleted).
    pub fn is_empty(&self) -> bool {
        self.hostname.is_none() && self.kernel_params.is_empty() && self.boot_once.is_none()
    }
}

/// The MACs the saved settings reserve addresses for, inside a write transaction.
pub(crate) fn reserved_macs(
    txn: &redb::WriteTransaction,
) -> Result<std::collections::HashSet<MacAddr>, StoreError> {
    let table = txn.open_table(SETTINGS)?;
    let Some(value) = table.get(APPLIANCE_KEY)? else {
        return Ok(Default::default());
    };
    let settings: ApplianceSettings = decode("settings", APPLIANCE_KEY, value.value())?;
    Ok(settings.reservations.iter().map(|r| r.mac).collect())
}

impl Store {
    /// The appliance settings saved from the UI, or `None` when never saved.
    pub fn appliance_settings(&self) -> Result<Option<ApplianceSettings>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, SETTINGS)? else {
            return Ok(None);
        };
        match table.get(APPLIANCE_KEY)? {
            Some(v) => Ok(Some(decode("settings", APPLIANCE_KEY, v.value())?)),
            None => Ok(None),
        }
    }

    /// Saves the appliance settings (durably, in one transaction).
    pub fn put_appliance_settings(&self, settings: &ApplianceSettings) -> Result<(), StoreError> {
        let bytes = encode("settings", settings)?;
        let txn = self.db.begin_write()?;
        txn.open_table(SETTINGS)?
            .insert(APPLIANCE_KEY, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// The boot options of one machine (empty when none were set).
    pub fn machine_options(&self, mac: MacAddr) -> Result<MachineOptions, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, MACHINE_OPTIONS)? else {
            return Ok(MachineOptions::default());
        };
        match table.get(mac_key(mac))? {
            Some(v) => decode("machine_options", mac, v.value()),
            None => Ok(MachineOptions::default()),
        }
    }

    /// Every machine's boot options that are set, by MAC.
    pub fn all_machine_options(&self) -> Result<Vec<(MacAddr, MachineOptions)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, MACHINE_OPTIONS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let mac = MacAddr(k.value());
            out.push((mac, decode("machine_options", mac, v.value())?));
        }
        Ok(out)
    }

    /// Sets one machine's boot options (empty options remove the record).
    pub fn set_machine_options(
        &self,
        mac: MacAddr,
        options: &MachineOptions,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(MACHINE_OPTIONS)?;
            if options.is_empty() {
                table.remove(mac_key(mac))?;
            } else {
                let bytes = encode("machine_options", options)?;
                table.insert(mac_key(mac), bytes.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Clears one machine's boot-once host if it is still `host` (its boot took it), in one
    /// write transaction: a host chosen since is kept. Returns the options now stored.
    pub fn clear_boot_once(&self, mac: MacAddr, host: &str) -> Result<MachineOptions, StoreError> {
        let txn = self.db.begin_write()?;
        let options = {
            let mut table = txn.open_table(MACHINE_OPTIONS)?;
            let mut options = match table.get(mac_key(mac))? {
                Some(v) => decode("machine_options", mac, v.value())?,
                None => MachineOptions::default(),
            };
            if options.boot_once.as_deref() == Some(host) {
                options.boot_once = None;
                if options.is_empty() {
                    table.remove(mac_key(mac))?;
                } else {
                    let bytes = encode("machine_options", &options)?;
                    table.insert(mac_key(mac), bytes.as_slice())?;
                }
            }
            options
        };
        txn.commit()?;
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 9]);

    #[test]
    fn settings_are_none_until_saved_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = ApplianceSettings {
            lan_interface: "lan0".into(),
            dhcp_mode: DhcpModeSetting::Router,
            dhcp_ranges: vec![[Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 200)]],
            reservations: vec![ReservationSetting {
                mac: MAC,
                address: Ipv4Addr::new(10, 0, 0, 5),
                hostname: Some("pc5".into()),
            }],
            menu_default: Some("demo".into()),
            menu_timeout_secs: 3,
            substituters: vec!["https://cache.example".into()],
            builders: vec!["ssh://b x86_64-linux".into()],
            wan: Some(WanSettings {
                interface: Some("wan0".into()),
                mode: WanModeSetting::Static,
                address: Some((Ipv4Addr::new(203, 0, 113, 2), 24)),
                gateway: Some(Ipv4Addr::new(203, 0, 113, 1)),
                dns: vec![Ipv4Addr::new(203, 0, 113, 53)],
            }),
            dns: Some(DnsSettings {
                enabled: Some(true),
                upstream: vec![Ipv4Addr::new(9, 9, 9, 9)],
            }),
        };
        {
            let store = Store::open(tmp.path()).unwrap();
            assert_eq!(store.appliance_settings().unwrap(), None);
            store.put_appliance_settings(&settings).unwrap();
        }
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.appliance_settings().unwrap(), Some(settings));
    }

    /// A record an earlier version saved (no `wan`, no `dns`) still reads: those are unset, so
    /// the config file's `[wan]` and `[dns]` stay in effect, and `or_file` fills them in.
    #[test]
    fn a_record_without_wan_and_dns_reads_as_unset() {
        let store = Store::in_memory().unwrap();
        let old = br#"{"lan_interface":"lan0","dhcp_mode":"router","dhcp_ranges":[["10.0.0.100","10.0.0.200"]],"reservations":[],"menu_default":null,"menu_timeout_secs":3,"substituters":[],"builders":[]}"#;
        let txn = store.db.begin_write().unwrap();
        txn.open_table(SETTINGS)
            .unwrap()
            .insert(APPLIANCE_KEY, old.as_slice())
            .unwrap();
        txn.commit().unwrap();
        let read = store.appliance_settings().unwrap().unwrap();
        assert_eq!(read.lan_interface, "lan0");
        assert_eq!(read.dhcp_mode, DhcpModeSetting::Router);
        assert_eq!(read.menu_timeout_secs, 3);
        assert_eq!((read.wan.clone(), read.dns.clone()), (None, None));
        let file = ApplianceSettings {
            wan: Some(WanSettings {
                interface: Some("wan0".into()),
                ..WanSettings::default()
            }),
            dns: Some(DnsSettings::default()),
            ..ApplianceSettings::default()
        };
        let filled = read.clone().or_file(&file);
        assert_eq!(filled.wan, file.wan);
        assert_eq!(filled.dns, file.dns);
        assert_eq!(filled.lan_interface, "lan0");
        // Saved values are never replaced by the file's.
        let saved = ApplianceSettings {
            wan: Some(WanSettings::default()),
            ..read
        };
        assert_eq!(saved.or_file(&file).wan, Some(WanSettings::default()));
    }

    #[test]
    fn machine_options_set_list_and_clear() {
        let store = Store::in_memory().unwrap();
        assert_eq!(
            store.machine_options(MAC).unwrap(),
            MachineOptions::default()
        );
        let options = MachineOptions {
            hostname: Some("alpha".into()),
            kernel_params: "console=ttyS0".into(),
            boot_once: None,
        };
        store.set_machine_options(MAC, &options).unwrap();
        assert_eq!(store.machine_options(MAC).unwrap(), options);
        assert_eq!(store.all_machine_options().unwrap(), vec![(MAC, options)]);
        store
            .set_machine_options(MAC, &MachineOptions::default())
            .unwrap();
        assert!(store.all_machine_options().unwrap().is_empty());
    }

    #[test]
    fn boot_once_is_kept_and_cleared_only_while_it_is_the_host_that_booted() {
        let tmp = tempfile::tempdir().unwrap();
        let once = MachineOptions {
            boot_once: Some("lab#rescue".into()),
            ..MachineOptions::default()
        };
        {
            let store = Store::open(tmp.path()).unwrap();
            store.set_machine_options(MAC, &once).unwrap();
        }
        // It survives a restart.
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.machine_options(MAC).unwrap(), once);
        // Another host's boot leaves it.
        assert_eq!(store.clear_boot_once(MAC, "lab#memtest").unwrap(), once);
        assert_eq!(store.machine_options(MAC).unwrap(), once);
        // Its own boot clears it; nothing else set: the record goes.
        assert_eq!(
            store.clear_boot_once(MAC, "lab#rescue").unwrap(),
            MachineOptions::default()
        );
        assert!(store.all_machine_options().unwrap().is_empty());
        // The other options stay.
        let both = MachineOptions {
            hostname: Some("node".into()),
            ..once.clone()
        };
        store.set_machine_options(MAC, &both).unwrap();
        let left = store.clear_boot_once(MAC, "lab#rescue").unwrap();
        assert_eq!(left.hostname.as_deref(), Some("node"));
        assert_eq!(left.boot_once, None);
        assert_eq!(store.machine_options(MAC).unwrap(), left);
        // A machine without options: nothing to clear, nothing written.
        let other = MacAddr([0x52, 0x54, 0, 0, 0, 10]);
        assert_eq!(
            store.clear_boot_once(other, "lab#rescue").unwrap(),
            MachineOptions::default()
        );
    }
}
