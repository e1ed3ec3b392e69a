//! The settings as `GET`/`PUT /api/v1/settings` carry them: LAN and DHCP, the menu, nix, the WAN
//! port (`wan`) and the DNS forwarder (`dns`). Made from the store's
//! [`ApplianceSettings`](flakeboot_store::ApplianceSettings); read back with
//! [`Settings::into_store`], which refuses what is not even of the right form (a WAN address
//! without its prefix) as a field error, like the checks that follow.

use std::net::Ipv4Addr;

use flakeboot_catalogue::MacAddr;
use flakeboot_config::Ipv4Cidr;
use flakeboot_store::{
    ApplianceSettings, DhcpModeSetting, DnsSettings, ReservationSetting, WanModeSetting,
    WanSettings,
};
use serde::{Deserialize, Serialize};

use crate::settings::check::FieldError;

/// How the appliance takes part in DHCP on the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    #[default]
    Proxy,
    Router,
    Off,
}

/// A fixed address for one machine (router mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub mac: MacAddr,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

/// How the WAN port gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WanMode {
    #[default]
    Dhcp,
    Static,
}

/// The WAN port (the config file's `[wan]`). It matters in router mode (NAT, forwarding); in
/// any mode it is firewalled (only WireGuard answers there).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Wan {
    /// The upstream port; `null` (or `""`): no WAN.
    pub interface: Option<String>,
    pub mode: WanMode,
    /// Static: the port's address with its prefix, `"203.0.113.2/24"`.
    pub address: Option<String>,
    /// Static: the default gateway, inside `address`'s subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Static: the upstream's name servers.
    pub dns: Vec<Ipv4Addr>,
}

/// The DNS forwarder (the config file's `[dns] enabled` and `upstream`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    /// `true`, `false`, or `null`: on in router mode only.
    pub enabled: Option<bool>,
    /// Where names that are not the LAN's are forwarded; empty: a static WAN's `dns`, else the
    /// appliance's `/etc/resolv.conf`.
    pub upstream: Vec<Ipv4Addr>,
}

/// The settings the UI and `GET`/`PUT /api/v1/settings` edit. A field left out of a PUT keeps
/// its default, except `wan` and `dns`: left out, they stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub lan_interface: String,
    pub dhcp_mode: DhcpMode,
    pub dhcp_ranges: Vec<[Ipv4Addr; 2]>,
    pub reservations: Vec<Reservation>,
    pub menu_default: Option<String>,
    pub menu_timeout_secs: u64,
    pub substituters: Vec<String>,
    pub builders: Vec<String>,
    pub wan: Option<Wan>,
    pub dns: Option<Dns>,
}

impl Default for Settings {
    fn default() -> Self {
        ApplianceSettings::default().into()
    }
}

impl From<WanSettings> for Wan {
    fn from(w: WanSettings) -> Wan {
        Wan {
            interface: w.interface,
            mode: match w.mode {
                WanModeSetting::Dhcp => WanMode::Dhcp,
                WanModeSetting::Static => WanMode::Static,
            },
            address: w.address.map(|(address, prefix_len)| {
                Ipv4Cidr {
                    address,
                    prefix_len,
                }
                .to_string()
            }),
            gateway: w.gateway,
            dns: w.dns,
        }
    }
}

impl Wan {
    /// The store's form; an address that is not `a.b.c.d/n` is a `wan.address` error.
    pub fn into_store(self) -> Result<WanSettings, FieldError> {
        let address = match self.address.map(|a| a.trim().to_owned()) {
            None => None,
            Some(a) if a.is_empty() => None,
            Some(a) => {
                let cidr = Ipv4Cidr::try_from(a).map_err(|message| FieldError {
                    field: "wan.address",
                    message,
                })?;
                Some((cidr.address, cidr.prefix_len))
            }
        };
        Ok(WanSettings {
            interface: self
                .interface
                .map(|i| i.trim().to_owned())
                .filter(|i| !i.is_empty()),
            mode: match self.mode {
                WanMode::Dhcp => WanModeSetting::Dhcp,
                WanMode::Static => WanModeSetting::Static,
            },
            address,
            gateway: self.gateway,
            dns: self.dns,
        })
    }
}

impl From<DnsSettings> for Dns {
    fn from(d: DnsSettings) -> Dns {
        Dns {
            enabled: d.enabled,
            upstream: d.upstream,
        }
    }
}

impl From<Dns> for DnsSettings {
    fn from(d: Dns) -> DnsSettings {
        DnsSettings {
            enabled: d.enabled,
            upstream: d.upstream,
        }
    }
}

impl From<ApplianceSettings> for Settings {
    fn from(s: ApplianceSettings) -> Settings {
        use DhcpModeSetting as M;
        Settings {
            lan_interface: s.lan_interface,
            dhcp_mode: match s.dhcp_mode {
                M::Proxy => DhcpMode::Proxy,
                M::Router => DhcpMode::Router,
                M::Off => DhcpMode::Off,
            },
            dhcp_ranges: s.dhcp_ranges,
            reservations: s
                .reservations
                .into_iter()
                .map(|r| Reservation {
                    mac: r.mac,
                    address: r.address,
                    hostname: r.hostname,
                })
                .collect(),
            menu_default: s.menu_default,
            menu_timeout_secs: s.menu_timeout_secs,
            substituters: s.substituters,
            builders: s.builders,
            wan: s.wan.map(Wan::from),
            dns: s.dns.map(Dns::from),
        }
    }
}

impl Settings {
    /// The store's form. `wan` and `dns` left out are `None` (the caller keeps the ones in
    /// effect); a WAN address that is not `a.b.c.d/n` is a field error.
    pub fn into_store(self) -> Result<ApplianceSettings, Vec<FieldError>> {
        use DhcpModeSetting as M;
        let wan = match self.wan.map(Wan::into_store).transpose() {
            Ok(wan) => wan,
            Err(e) => return Err(vec![e]),
        };
        Ok(ApplianceSettings {
            lan_interface: self.lan_interface,
            dhcp_mode: match self.dhcp_mode {
                DhcpMode::Proxy => M::Proxy,
                DhcpMode::Router => M::Router,
                DhcpMode::Off => M::Off,
            },
            dhcp_ranges: self.dhcp_ranges,
            reservations: self
                .reservations
                .into_iter()
                .map(|r| ReservationSetting {
                    mac: r.mac,
                    address: r.address,
                    hostname: r.hostname,
                })
                .collect(),
            menu_default: self.menu_default,
            menu_timeout_secs: self.menu_timeout_secs,
            substituters: self.substituters,
            builders: self.builders,
            wan,
            dns: self.dns.map(DnsSettings::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wan_and_dns_go_to_the_store_and_back() {
        let json = r#"{"lan_interface": "lan0", "wan": {"interface": "wan0", "mode": "static",
            "address": "203.0.113.2/24", "gateway": "203.0.113.1", "dns": ["203.0.113.53"]},
            "dns": {"enabled": null, "upstream": ["9.9.9.9"]}}"#;
        let wire: Settings = serde_json::from_str(json).unwrap();
        let stored = wire.clone().into_store().unwrap();
        let wan = stored.wan.clone().unwrap();
        assert_eq!(wan.address, Some((Ipv4Addr::new(203, 0, 113, 2), 24)));
        assert_eq!(wan.mode, WanModeSetting::Static);
        assert_eq!(stored.dns.clone().unwrap().enabled, None);
        assert_eq!(Settings::from(stored), wire);
    }

    #[test]
    fn left_out_they_are_unset_and_a_bad_address_is_a_field_error() {
        let wire: Settings = serde_json::from_str(r#"{"lan_interface": "lan0"}"#).unwrap();
        let stored = wire.into_store().unwrap();
        assert_eq!((stored.wan, stored.dns), (None, None));
        for bad in ["203.0.113.2", "203.0.113.2/33", "wan"] {
            let wire = Settings {
                wan: Some(Wan {
                    address: Some(bad.into()),
                    ..Wan::default()
                }),
                ..Settings::default()
            };
            let e = wire.into_store().unwrap_err();
            assert_eq!(e[0].field, "wan.address", "{bad}");
            assert!(e[0].message.contains("like \"203.0.113.2/24\""), "{e:?}");
        }
        // An empty interface or address is none.
        let wire: Settings = serde_json::from_str(
            r#"{"wan": {"interface": " ", "address": ""}, "dns": {"upstream": []}}"#,
        )
        .unwrap();
        let wan = wire.into_store().unwrap().wan.unwrap();
        assert_eq!((wan.interface, wan.address), (None, None));
    }
}
