//! The boot decision: what to hand a network-boot client, from options 93, 60, 77 and 175
//! (pure, no I/O).
//!
//! The order of questions is fixed and the architecture part is data ([`BOOT_TABLE`]):
//! 1. Not a boot client at all (no `PXEClient`/`HTTPClient` vendor class, no iPXE user
//!    class)? [`BootDecision::NotNetboot`]: proxy mode stays silent.
//! 2. Already iPXE (user class `iPXE`)? The HTTP script URL, never an iPXE binary: Debian's
//!    iPXE ROM and `undionly.kpxe` send identical requests and would chain forever.
//! 3. Otherwise the first [`BOOT_TABLE`] row matching the vendor kind and architecture.
//! 4. No row: a logged [`BootDecision::Decline`].

use std::net::Ipv4Addr;

use flakeboot_catalogue::{ClientFirmware, IpxeBinary, MacAddr};

use crate::options::{ClientInfo, VendorKind};

/// What the boot decision needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// The appliance's address: TFTP next-server and DHCP server identifier.
    pub server_ip: Ipv4Addr,
    /// Base of the HTTP boot service, without a trailing slash, e.g. `http://10.77.0.1`.
    pub http_base: String,
    /// The iPXE binary for x86-64 UEFI: [`IpxeBinary::IpxeEfi`] or [`IpxeBinary::SnponlyEfi`].
    pub uefi_binary: IpxeBinary,
    /// An ARM64 iPXE binary is configured (Debian ships none on amd64).
    pub arm64_efi: bool,
}

/// What a client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootDecision {
    /// Not a network-boot client: proxy mode must not answer; router mode adds nothing.
    NotNetboot,
    /// An iPXE client: the boot script over HTTP.
    Ipxe {
        /// [`ClientFirmware::IpxeBios`] or [`ClientFirmware::IpxeEfi`].
        firmware: ClientFirmware,
        /// `{http_base}/boot.ipxe?mac=<mac>`.
        script_url: String,
    },
    /// PXE firmware: an iPXE binary over TFTP.
    Tftp {
        /// What the table row says the client runs.
        firmware: ClientFirmware,
        /// The file name in the reply's `file` field.
        binary: IpxeBinary,
    },
    /// UEFI HTTP boot: an iPXE EFI binary over HTTP (the reply carries option 60 `HTTPClient`).
    Http {
        /// [`ClientFirmware::UefiX64Http`] or [`ClientFirmware::UefiArm64Http`].
        firmware: ClientFirmware,
        /// The binary behind `url`.
        binary: IpxeBinary,
        /// `{http_base}/ipxe/<binary>`.
        url: String,
    },
    /// A boot client flakeboot cannot serve (unknown architecture, no binary configured).
    Decline {
        /// What is known of the client ([`ClientFirmware::Unknown`] for an unknown architecture).
        firmware: ClientFirmware,
        /// For the log and the boot event.
        reason: String,
    },
}

impl BootDecision {
    /// The firmware classification, for boot events (`None` for non-boot clients).
    pub fn firmware(&self) -> Option<ClientFirmware> {
        match self {
            BootDecision::NotNetboot => None,
            BootDecision::Ipxe { firmware, .. }
            | BootDecision::Tftp { firmware, .. }
            | BootDecision::Http { firmware, .. }
            | BootDecision::Decline { firmware, .. } => Some(*firmware),
        }
    }

    /// The boot file name or URL the client is told to fetch, if any.
    pub fn boot_file(&self) -> Option<&str> {
        match self {
            BootDecision::Ipxe { script_url, .. } => Some(script_url),
            BootDecision::Tftp { binary, .. } => Some(binary.file_name()),
            BootDecision::Http { url, .. } => Some(url),
            BootDecision::NotNetboot | BootDecision::Decline { .. } => None,
        }
    }
}

/// How a table row picks its binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryChoice {
    /// Always this binary.
    Fixed(IpxeBinary),
    /// [`BootConfig::uefi_binary`] (`ipxe.efi` or `snponly.efi`).
    ConfiguredUefi,
    /// [`IpxeBinary::Arm64Efi`] when [`BootConfig::arm64_efi`], else a decline.
    Arm64IfConfigured,
}

/// How a table row delivers the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// TFTP file name in the reply (`file`, next-server = `siaddr`).
    Tftp,
    /// An `http://` URL (UEFI HTTP boot).
    Http,
}

/// One row of the boot table: clients of this vendor kind and architecture get this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRow {
    /// What option 60 must announce.
    pub vendor: VendorKind,
    /// Option 93 architecture type (RFC 4578, IANA "Processor Architecture Types").
    pub arch: u16,
    /// The classification recorded in boot events.
    pub firmware: ClientFirmware,
    /// TFTP file name or HTTP URL.
    pub delivery: Delivery,
    /// Which iPXE binary.
    pub binary: BinaryChoice,
}

const fn row(
    vendor: VendorKind,
    arch: u16,
    firmware: ClientFirmware,
    delivery: Delivery,
    binary: BinaryChoice,
) -> BootRow {
    BootRow {
        vendor,
        arch,
        firmware,
        delivery,
        binary,
    }
}

use BinaryChoice::{Arm64IfConfigured, ConfiguredUefi, Fixed};
use Delivery::{Http, Tftp};
use VendorKind::{HttpClient, PxeClient};

/// The boot table for clients that are not iPXE yet.
pub static BOOT_TABLE: &[BootRow] = &[
    // 0: x86 BIOS PXE ROM -> iPXE over the ROM's UNDI driver.
    row(
        PxeClient,
        0,
        ClientFirmware::BiosPxe,
        Tftp,
        Fixed(IpxeBinary::Undionly),
    ),
    // 7: x64 UEFI; 9: EFI BC (what EDK2 sent for x64 before the registry was fixed).
    row(
        PxeClient,
        7,
        ClientFirmware::UefiX64Pxe,
        Tftp,
        ConfiguredUefi,
    ),
    row(
        PxeClient,
        9,
        ClientFirmware::UefiX64Pxe,
        Tftp,
        ConfiguredUefi,
    ),
    // 11: ARM64 UEFI.
    row(
        PxeClient,
        11,
        ClientFirmware::UefiArm64Pxe,
        Tftp,
        Arm64IfConfigured,
    ),
    // 16: x64 UEFI HTTP boot; 19: ARM64 UEFI HTTP boot.
    row(
        HttpClient,
        16,
        ClientFirmware::UefiX64Http,
        Http,
        ConfiguredUefi,
    ),
    row(
        HttpClient,
        19,
        ClientFirmware::UefiArm64Http,
        Http,
        Arm64IfConfigured,
    ),
];

/// Decide what a client boots. Pure: the same request and config always give the same answer.
pub fn decide(info: &ClientInfo, cfg: &BootConfig) -> BootDecision {
    let vendor = info.vendor_kind();
    if info.is_ipxe() {
        // iPXE under BIOS sends arch 0; under EFI 7, 9, 11...
        let firmware = match info.arch {
            None | Some(0) => ClientFirmware::IpxeBios,
            Some(_) => ClientFirmware::IpxeEfi,
        };
        return BootDecision::Ipxe {
            firmware,
            script_url: script_url(&cfg.http_base, info.mac),
        };
    }
    let Some(vendor) = vendor else {
        return BootDecision::NotNetboot;
    };
    let Some(arch) = info.arch else {
        return BootDecision::Decline {
            firmware: ClientFirmware::Unknown,
            reason: format!(
                "{} without a client architecture (option 93)",
                vendor.as_str()
            ),
        };
    };
    let Some(row) = BOOT_TABLE
        .iter()
        .find(|r| r.vendor == vendor && r.arch == arch)
    else {
        return BootDecision::Decline {
            firmware: ClientFirmware::Unknown,
            reason: format!("unsupported {} architecture {arch}", vendor.as_str()),
        };
    };
    let binary = match row.binary {
        Fixed(b) => b,
        ConfiguredUefi => cfg.uefi_binary,
        Arm64IfConfigured if cfg.arm64_efi => IpxeBinary::Arm64Efi,
        Arm64IfConfigured => {
            return BootDecision::Decline {
                firmware: row.firmware,
                reason: format!("architecture {arch} (ARM64): no arm64 iPXE binary configured"),
            };
        }
    };
    match row.delivery {
        Tftp => BootDecision::Tftp {
            firmware: row.firmware,
            binary,
        },
        Http => BootDecision::Http {
            firmware: row.firmware,
            binary,
            url: format!("{}/ipxe/{}", cfg.http_base, binary.file_name()),
        },
    }
}

/// `{http_base}/boot.ipxe?mac=<mac>`; without a MAC, iPXE fills it in itself.
fn script_url(http_base: &str, mac: Option<MacAddr>) -> String {
    match mac {
        Some(mac) => format!("{http_base}/boot.ipxe?mac={mac}"),
        None => format!("{http_base}/boot.ipxe?mac=${{net0/mac}}"),
    }
}

#[cfg(test)]
mod tests;
