//! `[preflight]`: every new generation boots once in a VM on a private network the daemon
//! makes and serves, before any machine gets it (issue #16).

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;

use crate::problem::{Field, Problem};

/// The pre-flight VM's firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreflightFirmware {
    /// SeaBIOS with iPXE from the NIC's option ROM (in every QEMU install; the fastest boot
    /// under TCG).
    Bios,
    /// OVMF (UEFI) with iPXE from the NIC's option ROM (needs the `ovmf` package).
    Uefi,
}

impl PreflightFirmware {
    /// The name in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            PreflightFirmware::Bios => "bios",
            PreflightFirmware::Uefi => "uefi",
        }
    }
}

/// The pre-flight VM's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreflightAccel {
    /// KVM when `/dev/kvm` opens read-write, TCG otherwise.
    Auto,
    /// Always KVM.
    Kvm,
    /// Always TCG (where `/dev/kvm` opens but KVM does not work, e.g. nested virtualization
    /// that hangs).
    Tcg,
}

/// `[preflight]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PreflightConfig {
    /// Boot each new generation in a VM before it becomes current. Not given: on when a QEMU
    /// binary (`qemu-system-x86_64`) is installed, off otherwise ([`PreflightConfig::enabled`]).
    pub enabled: Option<bool>,
    /// How long the VM's system has to report `up` (10s to 1h).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The VM's memory in MiB (256 to 65536).
    pub memory: u32,
    /// The VM's firmware.
    pub firmware: PreflightFirmware,
    /// `auto` (KVM when `/dev/kvm` opens, else TCG), `kvm` or `tcg`.
    pub accel: PreflightAccel,
    /// The private network of the VM, `a.b.c.d/len` (len 24 to 30): the daemon's tap takes the
    /// first address, the VM the second. It must not overlap the LAN.
    pub subnet: String,
}

/// The default `[preflight] subnet`: in 198.18.0.0/15 (RFC 2544, benchmarking), which LANs do
/// not use.
pub const DEFAULT_PREFLIGHT_SUBNET: &str = "198.18.227.0/30";

impl Default for PreflightConfig {
    fn default() -> Self {
        PreflightConfig {
            enabled: None,
            timeout: Duration::from_secs(5 * 60),
            memory: 1024,
            firmware: PreflightFirmware::Bios,
            accel: PreflightAccel::Auto,
            subnet: DEFAULT_PREFLIGHT_SUBNET.into(),
        }
    }
}

/// The shortest and longest `timeout`.
pub const PREFLIGHT_TIMEOUT: [Duration; 2] = [Duration::from_secs(10), Duration::from_secs(3600)];
/// The least and most `memory` (MiB).
pub const PREFLIGHT_MEMORY: [u32; 2] = [256, 65536];

impl PreflightConfig {
    /// Whether pre-flight runs, given whether a QEMU binary is installed.
    pub fn enabled(&self, qemu_installed: bool) -> bool {
        self.enabled.unwrap_or(qemu_installed)
    }

    /// The subnet as (network address, prefix length), if it parses and is allowed.
    pub fn subnet(&self) -> Option<(Ipv4Addr, u8)> {
        parse_subnet(&self.subnet).ok()
    }

    /// The daemon's address on the pre-flight tap and the VM's one lease (the subnet's first
    /// and second host addresses).
    pub fn addresses(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let (network, _) = self.subnet()?;
        let n = u32::from(network);
        Some((Ipv4Addr::from(n + 1), Ipv4Addr::from(n + 2)))
    }
}

/// `a.b.c.d/len` with len 24..=30 and no host bits set.
fn parse_subnet(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not a subnet: write it as \"198.18.227.0/30\""))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 address: write it as \"198.18.227.0/30\""))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{len:?} is not a prefix length: use 24 to 30"))?;
    if !(24..=30).contains(&len) {
        return Err(format!(
            "/{len} is not allowed: use a prefix length of 24 to 30"
        ));
    }
    let mask = u32::MAX << (32 - u32::from(len));
    if u32::from(addr) & !mask != 0 {
        let network = Ipv4Addr::from(u32::from(addr) & mask);
        return Err(format!(
            "{text:?} has host bits set: write \"{network}/{len}\""
        ));
    }
    Ok((addr, len))
}

/// The problems of `[preflight]` on its own.
pub(crate) fn problems(p: &PreflightConfig) -> Vec<Problem> {
    let section = Field::key("preflight");
    let mut problems = Vec::new();
    let [min, max] = PREFLIGHT_TIMEOUT;
    if p.timeout < min || p.timeout > max {
        problems.push(Problem::new(
            section.clone().then("timeout"),
            "must be between 10s and 1h: a NixOS system needs well over 10 s to boot in a VM"
                .to_owned(),
        ));
    }
    let [min, max] = PREFLIGHT_MEMORY;
    if p.memory < min || p.memory > max {
        problems.push(Problem::new(
            section.clone().then("memory"),
            format!("{} MiB is not allowed: use {min} to {max} (MiB)", p.memory),
        ));
    }
    if let Err(why) = parse_subnet(&p.subnet) {
        problems.push(Problem::new(section.then("subnet"), why));
    }
    problems
}

/// `[preflight] subnet` against the LAN's subnet (`address` with `netmask`): they must not
/// overlap, or the VM's network would shadow machines on the LAN.
pub(crate) fn lan_overlap_problems(
    p: &PreflightConfig,
    address: Ipv4Addr,
    netmask: Ipv4Addr,
    how: &str,
) -> Vec<Problem> {
    let Some((network, len)) = p.subnet() else {
        return Vec::new();
    };
    let lan_mask = u32::from(netmask);
    let mask = u32::MAX << (32 - u32::from(len));
    // Two subnets overlap when the wider one's network holds the other's.
    let wider = lan_mask.min(mask);
    if u32::from(network) & wider == u32::from(address) & wider {
        let lan = Ipv4Addr::from(u32::from(address) & lan_mask);
        return vec![Problem::new(
            Field::key("preflight").then("subnet"),
            format!(
                "{} overlaps the LAN's subnet {lan}/{} ({how}): choose another, e.g. \"{DEFAULT_PREFLIGHT_SUBNET}\"",
                p.subnet,
                lan_mask.leading_ones()
            ),
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut PreflightConfig)) -> Vec<String> {
        let mut p = PreflightConfig::default();
        f(&mut p);
        problems(&p).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_sound_and_enabled_follows_qemu() {
        let p = PreflightConfig::default();
        assert!(problems(&p).is_empty());
        assert!(p.enabled(true));
        assert!(!p.enabled(false));
        let off = PreflightConfig {
            enabled: Some(false),
            ..p.clone()
        };
        assert!(!off.enabled(true));
        assert_eq!(
            p.addresses(),
            Some((
                Ipv4Addr::new(198, 18, 227, 1),
                Ipv4Addr::new(198, 18, 227, 2)
            ))
        );
    }

    #[test]
    fn bad_values_are_named_with_their_field() {
        let p = with(|p| p.timeout = Duration::from_secs(5));
        assert!(p[0].starts_with("preflight.timeout: "), "{p:?}");
        let p = with(|p| p.memory = 64);
        assert!(p[0].contains("64 MiB is not allowed"), "{p:?}");
        for (subnet, says) in [
            ("10.0.0.0", "is not a subnet"),
            ("10.0.0.x/30", "is not an IPv4 address"),
            ("10.0.0.0/16", "/16 is not allowed"),
            ("10.0.0.1/30", "has host bits set: write \"10.0.0.0/30\""),
        ] {
            let p = with(|p| p.subnet = subnet.into());
            assert!(p[0].contains(says), "{subnet}: {p:?}");
            assert!(p[0].starts_with("preflight.subnet: "), "{p:?}");
        }
    }

    #[test]
    fn the_subnet_must_not_overlap_the_lan() {
        let p = PreflightConfig {
            subnet: "10.0.0.8/30".into(),
            ..PreflightConfig::default()
        };
        let lan = |a: [u8; 4], m: [u8; 4]| {
            lan_overlap_problems(&p, Ipv4Addr::from(a), Ipv4Addr::from(m), "test")
        };
        assert_eq!(lan([10, 0, 0, 2], [255, 255, 255, 0]).len(), 1);
        assert_eq!(lan([10, 0, 0, 9], [255, 255, 255, 252]).len(), 1);
        assert!(lan([10, 0, 1, 2], [255, 255, 255, 0]).is_empty());
        assert!(lan([10, 0, 0, 2], [255, 255, 255, 248]).is_empty());
        let msg = lan([10, 0, 0, 2], [255, 255, 0, 0])[0].to_string();
        assert!(
            msg.contains("overlaps the LAN's subnet 10.0.0.0/16"),
            "{msg}"
        );
    }
}
