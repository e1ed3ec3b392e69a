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

use flakeboot_catalogue::{Firmware, IpxeBinary, MacAddr};

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
        firmware: Firmware,
        script_url: String,
    },
    /// PXE firmware: an iPXE binary over TFTP.
    Tftp {
        firmware: Firmware,
        binary: IpxeBinary,
    },
    /// UEFI HTTP boot: an iPXE EFI binary over HTTP (the reply carries option 60 `HTTPClient`).
    Http {
        firmware: Firmware,
        binary: IpxeBinary,
        url: String,
    },
    /// A boot client flakeboot cannot serve (unknown architecture, no binary configured).
    Decline { firmware: Firmware, reason: String },
}

impl BootDecision {
    /// The firmware classification, for boot events (`None` for non-boot clients).
    pub fn firmware(&self) -> Option<Firmware> {
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
    pub vendor: VendorKind,
    /// Option 93 architecture type (RFC 4578, IANA "Processor Architecture Types").
    pub arch: u16,
    pub firmware: Firmware,
    pub delivery: Delivery,
    pub binary: BinaryChoice,
}

const fn row(
    vendor: VendorKind,
    arch: u16,
    firmware: Firmware,
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
        Firmware::BiosPxe,
        Tftp,
        Fixed(IpxeBinary::Undionly),
    ),
    // 7: x64 UEFI; 9: EFI BC (what EDK2 sent for x64 before the registry was fixed).
    row(PxeClient, 7, Firmware::UefiX64Pxe, Tftp, ConfiguredUefi),
    row(PxeClient, 9, Firmware::UefiX64Pxe, Tftp, ConfiguredUefi),
    // 11: ARM64 UEFI.
    row(
        PxeClient,
        11,
        Firmware::UefiArm64Pxe,
        Tftp,
        Arm64IfConfigured,
    ),
    // 16: x64 UEFI HTTP boot; 19: ARM64 UEFI HTTP boot.
    row(HttpClient, 16, Firmware::UefiX64Http, Http, ConfiguredUefi),
    row(
        HttpClient,
        19,
        Firmware::UefiArm64Http,
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
            None | Some(0) => Firmware::IpxeBios,
            Some(_) => Firmware::IpxeEfi,
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
            firmware: Firmware::Unknown,
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
            firmware: Firmware::Unknown,
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
mod tests {
    use super::*;

    fn cfg() -> BootConfig {
        BootConfig {
            server_ip: Ipv4Addr::new(10, 77, 0, 1),
            http_base: "http://10.77.0.1".into(),
            uefi_binary: IpxeBinary::IpxeEfi,
            arm64_efi: false,
        }
    }

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn client(vendor: Option<&str>, arch: Option<u16>, user_class: &[&str]) -> ClientInfo {
        ClientInfo {
            mac: Some(MAC),
            arch,
            vendor_class: vendor.map(str::to_owned),
            user_classes: user_class.iter().map(|s| (*s).to_owned()).collect(),
            ..ClientInfo::default()
        }
    }

    fn pxe(arch: u16) -> ClientInfo {
        client(
            Some(&format!("PXEClient:Arch:{arch:05}:UNDI:002001")),
            Some(arch),
            &[],
        )
    }

    fn http(arch: u16) -> ClientInfo {
        client(
            Some(&format!("HTTPClient:Arch:{arch:05}:UNDI:003000")),
            Some(arch),
            &[],
        )
    }

    #[test]
    fn every_table_row_is_covered() {
        // One expectation per row, in table order; the assert on the length makes a new row
        // without a test fail here.
        let with_arm = BootConfig {
            arm64_efi: true,
            ..cfg()
        };
        let expected: Vec<(ClientInfo, BootConfig, BootDecision)> = vec![
            (
                pxe(0),
                cfg(),
                BootDecision::Tftp {
                    firmware: Firmware::BiosPxe,
                    binary: IpxeBinary::Undionly,
                },
            ),
            (
                pxe(7),
                cfg(),
                BootDecision::Tftp {
                    firmware: Firmware::UefiX64Pxe,
                    binary: IpxeBinary::IpxeEfi,
                },
            ),
            (
                pxe(9),
                cfg(),
                BootDecision::Tftp {
                    firmware: Firmware::UefiX64Pxe,
                    binary: IpxeBinary::IpxeEfi,
                },
            ),
            (
                pxe(11),
                with_arm.clone(),
                BootDecision::Tftp {
                    firmware: Firmware::UefiArm64Pxe,
                    binary: IpxeBinary::Arm64Efi,
                },
            ),
            (
                http(16),
                cfg(),
                BootDecision::Http {
                    firmware: Firmware::UefiX64Http,
                    binary: IpxeBinary::IpxeEfi,
                    url: "http://10.77.0.1/ipxe/ipxe.efi".into(),
                },
            ),
            (
                http(19),
                with_arm,
                BootDecision::Http {
                    firmware: Firmware::UefiArm64Http,
                    binary: IpxeBinary::Arm64Efi,
                    url: "http://10.77.0.1/ipxe/ipxe-arm64.efi".into(),
                },
            ),
        ];
        assert_eq!(expected.len(), BOOT_TABLE.len());
        for ((info, cfg, want), row) in expected.iter().zip(BOOT_TABLE) {
            assert_eq!(info.arch, Some(row.arch));
            assert_eq!(&decide(info, cfg), want, "row {row:?}");
        }
    }

    #[test]
    fn configured_uefi_binary_is_used_for_x64() {
        let cfg = BootConfig {
            uefi_binary: IpxeBinary::SnponlyEfi,
            ..cfg()
        };
        for arch in [7, 9] {
            assert_eq!(
                decide(&pxe(arch), &cfg),
                BootDecision::Tftp {
                    firmware: Firmware::UefiX64Pxe,
                    binary: IpxeBinary::SnponlyEfi
                }
            );
        }
        assert!(matches!(
            decide(&http(16), &cfg),
            BootDecision::Http { url, .. } if url == "http://10.77.0.1/ipxe/snponly.efi"
        ));
    }

    #[test]
    fn arm64_without_binary_declines_with_firmware() {
        for (info, fw) in [
            (pxe(11), Firmware::UefiArm64Pxe),
            (http(19), Firmware::UefiArm64Http),
        ] {
            match decide(&info, &cfg()) {
                BootDecision::Decline { firmware, reason } => {
                    assert_eq!(firmware, fw);
                    assert!(reason.contains("arm64"), "{reason}");
                }
                other => panic!("expected decline, got {other:?}"),
            }
        }
    }

    #[test]
    fn ipxe_user_class_gets_the_script_never_a_binary() {
        // The NIC ROM / undionly.kpxe request: PXEClient arch 0 plus user class iPXE.
        let bios = client(Some("PXEClient:Arch:00000:UNDI:002001"), Some(0), &["iPXE"]);
        assert_eq!(
            decide(&bios, &cfg()),
            BootDecision::Ipxe {
                firmware: Firmware::IpxeBios,
                script_url: "http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56".into()
            }
        );
        let efi = client(Some("PXEClient:Arch:00007:UNDI:003010"), Some(7), &["iPXE"]);
        assert!(matches!(
            decide(&efi, &cfg()),
            BootDecision::Ipxe {
                firmware: Firmware::IpxeEfi,
                ..
            }
        ));
        // iPXE even without a vendor class or option 93.
        let bare = client(None, None, &["iPXE"]);
        assert!(matches!(
            decide(&bare, &cfg()),
            BootDecision::Ipxe {
                firmware: Firmware::IpxeBios,
                ..
            }
        ));
    }

    #[test]
    fn user_class_rfc3004_and_bare_forms_both_mean_ipxe() {
        for raw in [&b"\x04iPXE"[..], &b"iPXE"[..]] {
            let info = ClientInfo {
                user_classes: crate::options::parse_user_class(raw),
                ..pxe(0)
            };
            assert!(
                matches!(decide(&info, &cfg()), BootDecision::Ipxe { .. }),
                "{raw:?}"
            );
        }
        // Another user class is not iPXE.
        let other = ClientInfo {
            user_classes: crate::options::parse_user_class(b"\x05gPXE!"),
            ..pxe(0)
        };
        assert!(matches!(decide(&other, &cfg()), BootDecision::Tftp { .. }));
    }

    #[test]
    fn missing_option_93_declines() {
        let info = client(Some("PXEClient"), None, &[]);
        match decide(&info, &cfg()) {
            BootDecision::Decline { firmware, reason } => {
                assert_eq!(firmware, Firmware::Unknown);
                assert!(reason.contains("option 93"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vendor_class_kind_selects_the_row() {
        // Arch 16 is an HTTP boot architecture: as PXEClient it matches no row.
        assert!(matches!(
            decide(&client(Some("PXEClient"), Some(16), &[]), &cfg()),
            BootDecision::Decline { .. }
        ));
        // Arch 0 as HTTPClient: no row either.
        assert!(matches!(
            decide(&client(Some("HTTPClient"), Some(0), &[]), &cfg()),
            BootDecision::Decline { .. }
        ));
        // Plain clients (no vendor class, another vendor class) are not boot clients.
        assert_eq!(
            decide(&client(None, None, &[]), &cfg()),
            BootDecision::NotNetboot
        );
        assert_eq!(
            decide(&client(Some("MSFT 5.0"), None, &[]), &cfg()),
            BootDecision::NotNetboot
        );
        assert_eq!(
            decide(&client(Some("udhcp 1.36.1"), Some(0), &[]), &cfg()),
            BootDecision::NotNetboot
        );
    }

    #[test]
    fn unknown_architecture_declines_with_reason() {
        for arch in [1, 6, 10, 0x1b, 0xffff] {
            match decide(&pxe(arch), &cfg()) {
                BootDecision::Decline { firmware, reason } => {
                    assert_eq!(firmware, Firmware::Unknown);
                    assert!(reason.contains(&arch.to_string()), "{reason}");
                }
                other => panic!("arch {arch}: {other:?}"),
            }
        }
    }

    #[test]
    fn script_url_without_mac_lets_ipxe_fill_it() {
        let info = ClientInfo {
            mac: None,
            ..client(None, Some(0), &["iPXE"])
        };
        assert_eq!(
            decide(&info, &cfg()).boot_file(),
            Some("http://10.77.0.1/boot.ipxe?mac=${net0/mac}")
        );
    }
}
