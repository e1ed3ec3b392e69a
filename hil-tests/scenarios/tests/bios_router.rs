//! Scenario 1: a BIOS machine (SeaBIOS + the NIC's iPXE ROM) assigned to a host boots it
//! directly, with flakeboot as the LAN's DHCP server (router mode, router advertisements on).

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Script};
use flakeboot_catalogue::ClientFirmware;
use flakeboot_hil_tests::{BOOT_TIMEOUT, HOST, MAC, Mode, Scenario};
use flakeboot_testbed::ClientKind;

#[test]
fn bios_client_boots_its_assigned_host_in_router_mode() {
    let mut s = Scenario::new("bios_router", 1);
    let config = s
        .config(Mode::Router)
        .machine(MAC[0], HOST, "fbt.marker=bios1");
    s.start_appliance(&config);

    let client = s.power_on("bios1", ClientKind::Bios, 0, MAC[0]);
    let marker = s.expect_marker(&client, "bios1", BOOT_TIMEOUT);

    assert!(marker.text.contains("fbt.marker=bios1"), "{marker}");
    s.expect_stages(&client, &[Dhcp, Script, Kernel, Initrd], false);
    s.expect_firmware(&client, ClientFirmware::IpxeBios);
    s.report(&client, false);
}
