//! Scenario 3: UEFI's own PXE client (OVMF, no iPXE option ROM) on a LAN whose DHCP server is
//! dnsmasq with no PXE options; flakeboot in proxy mode adds the boot information. The path:
//! DHCP from dnsmasq + proxyDHCP from flakeboot, TFTP ipxe.efi, iPXE, HTTP script, kernel,
//! initrd. dnsmasq's replies to the machine, which the appliance hears on the LAN, are in the
//! machine's timeline as the store keeps it (`other-dhcp` events).

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Script, Tftp};
use flakeboot_catalogue::ClientFirmware;
use flakeboot_hil_tests::{BOOT_TIMEOUT, HOST, MAC, Mode, ROUTER_V4, Scenario};
use flakeboot_testbed::ClientKind;

#[test]
fn uefi_native_pxe_boots_through_proxy_dhcp_beside_dnsmasq() {
    let mut s = Scenario::new("uefi_pxe_proxy", 1);
    s.start_lan_dhcp_server();
    let config = s
        .config(Mode::Proxy)
        .machine(MAC[0], HOST, "fbt.marker=pxe1");
    s.start_appliance(&config);

    let client = s.power_on("pxe1", ClientKind::UefiPxe, 0, MAC[0]);
    let marker = s.expect_marker(&client, "pxe1", BOOT_TIMEOUT);

    assert!(marker.text.contains("fbt.marker=pxe1"), "{marker}");
    // The address came from dnsmasq's pool, the boot file from flakeboot.
    let dnsmasq = s.lan_dhcp_log();
    assert!(
        dnsmasq
            .lines()
            .any(|l| l.contains("DHCPACK(eth0)") && l.contains(MAC[0])),
        "dnsmasq did not lease an address to {}:\n{dnsmasq}",
        MAC[0]
    );
    assert!(
        client
            .console()
            .find("NBP file downloaded successfully")
            .is_some(),
        "the firmware never loaded ipxe.efi over TFTP"
    );
    // The TFTP server does not learn MACs: with one client on the LAN, its events are this one's.
    s.expect_stages(&client, &[Dhcp, Tftp, Script, Kernel, Initrd], true);
    s.expect_firmware(&client, ClientFirmware::UefiX64Pxe);
    s.report(&client, true);

    s.stop_appliance();
    let stored = s
        .appliance()
        .stored_events(MAC[0])
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    let lines: Vec<&str> = stored.lines().collect();
    let offer = lines.iter().position(|l| {
        l.contains(" other-dhcp Ok ")
            && l.contains(&format!("from {ROUTER_V4} (full DHCP): address 10.77.0."))
    });
    let tftp = lines.iter().position(|l| l.contains(" tftp "));
    // dnsmasq answers the firmware's own DISCOVER (before ipxe.efi comes over TFTP), often a
    // few milliseconds before flakeboot's proxy has made the machine's record: that reply is
    // kept too, not only the one to iPXE's DISCOVER later.
    match (offer, tftp) {
        (Some(o), Some(t)) if o < t => {}
        _ => s.fail(&format!(
            "no offer from the LAN's dnsmasq to the firmware's DISCOVER in the machine's \
             stored timeline:\n{stored}"
        )),
    }
}
