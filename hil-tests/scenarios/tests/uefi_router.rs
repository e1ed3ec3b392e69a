//! Scenario 2: a UEFI machine (OVMF + the NIC's iPXE EFI ROM) assigned to a host boots it, with
//! flakeboot in router mode.

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Script};
use flakeboot_catalogue::ClientFirmware;
use flakeboot_hil_tests::{BOOT_TIMEOUT, HOST, MAC, Mode, Scenario};
use flakeboot_testbed::ClientKind;

#[test]
fn uefi_client_boots_its_assigned_host_in_router_mode() {
    let mut s = Scenario::new("uefi_router", 1);
    let config = s
        .config(Mode::Router)
        .machine(MAC[0], HOST, "fbt.marker=uefi1");
    s.start_appliance(&config);

    let client = s.power_on("uefi1", ClientKind::Uefi, 0, MAC[0]);
    let marker = s.expect_marker(&client, "uefi1", BOOT_TIMEOUT);

    assert!(marker.text.contains("fbt.marker=uefi1"), "{marker}");
    // Debian's 2019 iPXE needs initrd=NAME for the EFI stub to load the initrd at all.
    assert!(marker.text.contains("initrd="), "{marker}");
    s.expect_stages(&client, &[Dhcp, Script, Kernel, Initrd], false);
    s.expect_firmware(&client, ClientFirmware::IpxeEfi);
    s.report(&client, false);
}
