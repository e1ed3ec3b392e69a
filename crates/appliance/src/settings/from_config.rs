//! The config file's settings in the saved-settings form: what the appliance runs with until
//! settings are saved in the UI or API.

use flakeboot_config::{Config, DhcpMode, WanMode};
use flakeboot_store::{
    ApplianceSettings, DhcpModeSetting, DnsSettings, ReservationSetting, WanModeSetting,
    WanSettings,
};

/// The config file's settings in the UI's terms.
pub fn settings_from_config(config: &Config) -> ApplianceSettings {
    ApplianceSettings {
        lan_interface: config.lan.interface.clone(),
        dhcp_mode: match config.dhcp.mode {
            DhcpMode::Proxy => DhcpModeSetting::Proxy,
            DhcpMode::Router => DhcpModeSetting::Router,
            DhcpMode::Off => DhcpModeSetting::Off,
        },
        dhcp_ranges: config.dhcp.all_ranges(),
        reservations: config
            .dhcp
            .reservations
            .iter()
            .map(|r| ReservationSetting {
                mac: r.mac,
                address: r.address,
                hostname: r.hostname.clone(),
            })
            .collect(),
        menu_default: config.menu.default.clone(),
        menu_timeout_secs: config.menu.timeout.as_secs(),
        substituters: config.nix.substituters.clone().unwrap_or_default(),
        builders: config.nix.builders.clone(),
        wan: Some(WanSettings {
            interface: config.wan.interface.clone(),
            mode: match config.wan.mode {
                WanMode::Dhcp => WanModeSetting::Dhcp,
                WanMode::Static => WanModeSetting::Static,
            },
            address: config.wan.address.map(|a| (a.address, a.prefix_len)),
            gateway: config.wan.gateway,
            dns: config.wan.dns.clone(),
        }),
        dns: Some(DnsSettings {
            enabled: config.dns.enabled,
            upstream: config.dns.upstream.clone(),
        }),
    }
}
