//! The remote-access forms as the browser sends them (every field a string, a checkbox present
//! only when ticked), and their conversion to the VPN service's settings. Only what the form
//! itself can get wrong is checked here (a port that is not a number); whether an address, key
//! or endpoint is acceptable is the VPN service's call, and its answer comes back per field.

use std::collections::BTreeMap;

use serde::Deserialize;

use flakeboot_appliance::vpn::{VpnHubSettings, VpnServerSettings};

/// Messages by form field name.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// The server-mode form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServerForm {
    /// Present (any value) when the box is ticked.
    #[serde(default)]
    pub enabled: Option<String>,
    /// The UDP port.
    #[serde(default)]
    pub listen_port: String,
    /// The appliance's tunnel address with prefix.
    #[serde(default)]
    pub address: String,
    /// The public endpoint peers dial.
    #[serde(default)]
    pub endpoint: String,
}

impl From<&VpnServerSettings> for ServerForm {
    fn from(s: &VpnServerSettings) -> Self {
        ServerForm {
            enabled: s.enabled.then(|| "on".to_owned()),
            listen_port: s.listen_port.to_string(),
            address: s.address.clone(),
            endpoint: s.endpoint.clone(),
        }
    }
}

impl ServerForm {
    /// The settings, or the fields the form itself got wrong.
    pub fn parse(&self) -> Result<VpnServerSettings, FieldErrors> {
        let mut errors = FieldErrors::new();
        let listen_port = match self.listen_port.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                errors.insert(
                    "listen_port",
                    "Enter a UDP port between 1 and 65535 (51820 is usual).".into(),
                );
                0
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(VpnServerSettings {
            enabled: self.enabled.is_some(),
            listen_port,
            address: self.address.trim().to_owned(),
            endpoint: self.endpoint.trim().to_owned(),
        })
    }
}

/// The hub-mode form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HubForm {
    /// Present (any value) when the box is ticked.
    #[serde(default)]
    pub enabled: Option<String>,
    /// The hub's `host:port`.
    #[serde(default)]
    pub endpoint: String,
    /// The hub's public key.
    #[serde(default)]
    pub public_key: String,
    /// What is reached through the hub: addresses with prefix, separated by commas, spaces or
    /// lines.
    #[serde(default)]
    pub allowed_ips: String,
    /// Persistent keepalive in seconds.
    #[serde(default)]
    pub keepalive: String,
    /// The appliance's address in the hub's network.
    #[serde(default)]
    pub address: String,
}

impl From<&VpnHubSettings> for HubForm {
    fn from(s: &VpnHubSettings) -> Self {
        HubForm {
            enabled: s.enabled.then(|| "on".to_owned()),
            endpoint: s.endpoint.clone(),
            public_key: s.public_key.clone(),
            allowed_ips: s.allowed_ips.join(", "),
            keepalive: s.keepalive.to_string(),
            address: s.address.clone(),
        }
    }
}

impl HubForm {
    /// The settings, or the fields the form itself got wrong.
    pub fn parse(&self) -> Result<VpnHubSettings, FieldErrors> {
        let mut errors = FieldErrors::new();
        let keepalive = self.keepalive.trim();
        let keepalive = if keepalive.is_empty() {
            0
        } else if let Ok(k) = keepalive.parse::<u16>() {
            k
        } else {
            errors.insert(
                "keepalive",
                "Enter a number of seconds: 25 keeps a NAT mapping open, 0 turns it off.".into(),
            );
            0
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(VpnHubSettings {
            enabled: self.enabled.is_some(),
            endpoint: self.endpoint.trim().to_owned(),
            public_key: self.public_key.trim().to_owned(),
            allowed_ips: self
                .allowed_ips
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            keepalive,
            address: self.address.trim().to_owned(),
        })
    }
}

/// The add-a-device and rename forms.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NameForm {
    /// The device's name.
    #[serde(default)]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_form_round_trips_and_reports_a_bad_port() {
        let settings = VpnServerSettings {
            enabled: true,
            listen_port: 51821,
            address: "10.77.0.1/24".into(),
            endpoint: "office.example.net".into(),
        };
        assert_eq!(ServerForm::from(&settings).parse().unwrap(), settings);
        let off = ServerForm {
            enabled: None,
            listen_port: " 51820 ".into(),
            address: " 10.9.0.1/24 ".into(),
            endpoint: String::new(),
        };
        let parsed = off.parse().unwrap();
        assert!(!parsed.enabled);
        assert_eq!(
            (parsed.listen_port, parsed.address.as_str()),
            (51820, "10.9.0.1/24")
        );
        for port in ["", "0", "65536", "udp"] {
            let form = ServerForm {
                listen_port: port.into(),
                ..ServerForm::default()
            };
            let errors = form.parse().unwrap_err();
            assert!(
                errors["listen_port"].contains("between 1 and 65535"),
                "{port}"
            );
        }
    }

    #[test]
    fn the_hub_form_splits_allowed_ips_and_reports_a_bad_keepalive() {
        let settings = VpnHubSettings {
            enabled: true,
            endpoint: "hub.example.net:51820".into(),
            public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=".into(),
            allowed_ips: vec!["10.99.0.0/24".into(), "fd00:99::/64".into()],
            keepalive: 25,
            address: "10.99.0.5/24".into(),
        };
        assert_eq!(HubForm::from(&settings).parse().unwrap(), settings);
        let form = HubForm {
            allowed_ips: "10.1.0.0/16,10.2.0.0/16\n 10.3.0.0/16 ".into(),
            keepalive: String::new(),
            ..HubForm::default()
        };
        let parsed = form.parse().unwrap();
        assert_eq!(
            parsed.allowed_ips,
            ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]
        );
        assert_eq!(parsed.keepalive, 0);
        let bad = HubForm {
            keepalive: "-1".into(),
            ..HubForm::default()
        };
        assert!(bad.parse().unwrap_err()["keepalive"].contains("seconds"));
    }
}
