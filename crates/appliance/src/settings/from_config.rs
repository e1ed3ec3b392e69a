//! The config file's settings in the saved-settings form: what the appliance runs with until
//! settings are saved in the UI or API.

use flakeboot_config::{Config, DhcpMode};
use flakeboot_store::{ApplianceSettings, DhcpModeSetting, ReservationSetting};

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
    }
}
