use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;

/// What kind of boot firmware (ROM) a network-boot client runs, as told by its DHCP options (93, 60, 77).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientFirmware {
    /// Legacy BIOS PXE ROM (arch 0).
    BiosPxe,
    /// x86-64 UEFI native PXE (arch 7 or 9).
    UefiX64Pxe,
    /// ARM64 UEFI PXE (arch 11).
    UefiArm64Pxe,
    /// x86-64 UEFI HTTP boot (arch 16).
    UefiX64Http,
    /// ARM64 UEFI HTTP boot (arch 19).
    UefiArm64Http,
    /// iPXE running under BIOS.
    IpxeBios,
    /// iPXE running under UEFI.
    IpxeEfi,
    /// A PXE client of an architecture flakeboot has no binary for.
    Unknown,
}

impl ClientFirmware {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientFirmware::BiosPxe => "bios-pxe",
            ClientFirmware::UefiX64Pxe => "uefi-x64-pxe",
            ClientFirmware::UefiArm64Pxe => "uefi-arm64-pxe",
            ClientFirmware::UefiX64Http => "uefi-x64-http",
            ClientFirmware::UefiArm64Http => "uefi-arm64-http",
            ClientFirmware::IpxeBios => "ipxe-bios",
            ClientFirmware::IpxeEfi => "ipxe-efi",
            ClientFirmware::Unknown => "unknown",
        }
    }
}

/// A step in a network boot, in the order a boot normally takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootStage {
    /// A DHCP exchange (router mode, or proxyDHCP boot information).
    Dhcp,
    /// The PXE boot server on port 4011.
    PxeBootServer,
    /// A TFTP transfer (the iPXE binary).
    Tftp,
    /// The iPXE script over HTTP.
    Script,
    Kernel,
    Initrd,
    /// The iPXE binary over HTTP (UEFI HTTP boot).
    HttpIpxe,
    /// The booted system's own report (`POST /boot/report`): up, or failed with a reason.
    System,
    /// The boot menu's `local` entry (`GET /boot/local`): the machine left iPXE for its local
    /// disk, which ends its network boot.
    Local,
    /// A line from the machine's console or logs (netconsole, syslog) that says its boot failed:
    /// a kernel panic, NixOS stage 1's error. Its detail is the line.
    Console,
    /// Another DHCP server's OFFER or ACK to this machine, as the appliance heard it on the LAN
    /// (its detail names the server and what it offered). Its MAC is the reply's `chaddr`: it
    /// is shown in a known machine's timeline, but makes no machine record and binds no
    /// address (anyone on the LAN can send such a packet).
    OtherDhcp,
}

impl BootStage {
    pub fn as_str(self) -> &'static str {
        match self {
            BootStage::Dhcp => "dhcp",
            BootStage::PxeBootServer => "pxe-boot-server",
            BootStage::Tftp => "tftp",
            BootStage::Script => "script",
            BootStage::Kernel => "kernel",
            BootStage::Initrd => "initrd",
            BootStage::HttpIpxe => "http-ipxe",
            BootStage::System => "system",
            BootStage::Local => "local",
            BootStage::Console => "console",
            BootStage::OtherDhcp => "other-dhcp",
        }
    }

    /// Whether an event of this stage carries the MAC as it was seen on the wire: the `chaddr`
    /// of the client's own DHCP packet (a DHCP exchange, the PXE boot server). Only these make
    /// machine records and bind an address to a MAC. Every other stage's MAC is one the client
    /// *claims* (an HTTP `?mac=`, a report's form) or none (TFTP): the catalogue attributes
    /// such an event by the address it came from, never by the claim.
    pub fn mac_from_wire(self) -> bool {
        matches!(self, BootStage::Dhcp | BootStage::PxeBootServer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The step was served.
    Ok,
    /// flakeboot chose not to serve it (for example an unknown architecture).
    Declined,
    /// The step was attempted and failed (a TFTP timeout, a missing file, a client abort).
    Failed,
}

/// One step of one machine's boot, as recorded by a boot service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootEvent {
    /// The MAC from the wire for DHCP stages ([`BootStage::mac_from_wire`]); for the others, the
    /// MAC the client claims (`?mac=`, a report) or `None` when the protocol carries none. The
    /// catalogue's [`record`](crate::Catalogue::record) decides whose event it is.
    pub mac: Option<MacAddr>,
    pub peer: Option<IpAddr>,
    pub at: SystemTime,
    pub stage: BootStage,
    pub outcome: Outcome,
    pub firmware: Option<ClientFirmware>,
    /// DHCP vendor class (option 60) when the event comes from DHCP.
    pub vendor_class: Option<String>,
    /// Human-readable detail: the file served, the reason for a decline or failure.
    pub detail: String,
    /// When the step began, for a step that takes time (a TFTP transfer, an HTTP download);
    /// `at` is when it ended. `None` for instant steps and events stored before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<SystemTime>,
    /// Bytes delivered, for a transfer (every byte on success, how far it got on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// For a host's kernel or initrd fetched with `GET` (HTTP boot): that host. What boot once
    /// checks (its host's kernel delivered), instead of reading the detail text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl BootEvent {
    pub fn new(stage: BootStage, outcome: Outcome, detail: impl Into<String>) -> Self {
        BootEvent {
            mac: None,
            peer: None,
            at: SystemTime::now(),
            stage,
            outcome,
            firmware: None,
            vendor_class: None,
            detail: detail.into(),
            started: None,
            bytes: None,
            host: None,
        }
    }

    /// The step began at `started` (its event is recorded when it ends).
    pub fn started(mut self, started: SystemTime) -> Self {
        self.started = Some(started);
        self
    }

    /// It delivered `bytes`.
    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// It was the `GET` of one of `host`'s files.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    pub fn peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    pub fn firmware(mut self, firmware: ClientFirmware) -> Self {
        self.firmware = Some(firmware);
        self
    }

    pub fn vendor_class(mut self, vendor_class: impl Into<String>) -> Self {
        self.vendor_class = Some(vendor_class.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_serialize_as_their_names_and_system_is_new_not_renumbered() {
        let all = [
            BootStage::Dhcp,
            BootStage::PxeBootServer,
            BootStage::Tftp,
            BootStage::Script,
            BootStage::Kernel,
            BootStage::Initrd,
            BootStage::HttpIpxe,
            BootStage::System,
            BootStage::Local,
            BootStage::Console,
            BootStage::OtherDhcp,
        ];
        for stage in all {
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(json, format!("\"{}\"", stage.as_str()));
            assert_eq!(serde_json::from_str::<BootStage>(&json).unwrap(), stage);
        }
        // An event stored before `system` existed still reads back.
        let old = r#"{"mac":"52:54:00:12:34:56","peer":"10.0.0.5","at":{"secs_since_epoch":1800000000,"nanos_since_epoch":0},"stage":"initrd","outcome":"ok","firmware":null,"vendor_class":null,"detail":"GET /boot/demo/static/initrd 200"}"#;
        let e: BootEvent = serde_json::from_str(old).unwrap();
        assert_eq!(e.stage, BootStage::Initrd);
    }
}
