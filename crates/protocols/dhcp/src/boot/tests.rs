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
                firmware: ClientFirmware::BiosPxe,
                binary: IpxeBinary::Undionly,
            },
        ),
        (
            pxe(7),
            cfg(),
            BootDecision::Tftp {
                firmware: ClientFirmware::UefiX64Pxe,
                binary: IpxeBinary::IpxeEfi,
            },
        ),
        (
            pxe(9),
            cfg(),
            BootDecision::Tftp {
                firmware: ClientFirmware::UefiX64Pxe,
                binary: IpxeBinary::IpxeEfi,
            },
        ),
        (
            pxe(11),
            with_arm.clone(),
            BootDecision::Tftp {
                firmware: ClientFirmware::UefiArm64Pxe,
                binary: IpxeBinary::Arm64Efi,
            },
        ),
        (
            http(16),
            cfg(),
            BootDecision::Http {
                firmware: ClientFirmware::UefiX64Http,
                binary: IpxeBinary::IpxeEfi,
                url: "http://10.77.0.1/ipxe/ipxe.efi".into(),
            },
        ),
        (
            http(19),
            with_arm,
            BootDecision::Http {
                firmware: ClientFirmware::UefiArm64Http,
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
                firmware: ClientFirmware::UefiX64Pxe,
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
        (pxe(11), ClientFirmware::UefiArm64Pxe),
        (http(19), ClientFirmware::UefiArm64Http),
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
            firmware: ClientFirmware::IpxeBios,
            script_url: "http://10.77.0.1/boot.ipxe?mac=52:54:00:12:34:56".into()
        }
    );
    let efi = client(Some("PXEClient:Arch:00007:UNDI:003010"), Some(7), &["iPXE"]);
    assert!(matches!(
        decide(&efi, &cfg()),
        BootDecision::Ipxe {
            firmware: ClientFirmware::IpxeEfi,
            ..
        }
    ));
    // iPXE even without a vendor class or option 93.
    let bare = client(None, None, &["iPXE"]);
    assert!(matches!(
        decide(&bare, &cfg()),
        BootDecision::Ipxe {
            firmware: ClientFirmware::IpxeBios,
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
            assert_eq!(firmware, ClientFirmware::Unknown);
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
                assert_eq!(firmware, ClientFirmware::Unknown);
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
