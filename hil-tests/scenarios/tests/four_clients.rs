//! Scenario 5: four machines (two BIOS, two UEFI) power on together and all boot their host.

use std::time::{Duration, Instant};

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Script};
use flakeboot_catalogue::ClientFirmware;
use flakeboot_hil_tests::{HOST, MAC, Mode, Scenario};
use flakeboot_testbed::ClientKind;

#[test]
fn two_bios_and_two_uefi_clients_boot_at_once() {
    let mut s = Scenario::new("four_clients", 4);
    let names = ["bios1", "bios2", "uefi1", "uefi2"];
    let kinds = [
        ClientKind::Bios,
        ClientKind::Bios,
        ClientKind::Uefi,
        ClientKind::Uefi,
    ];
    let mut config = s.config(Mode::Router);
    for (mac, name) in MAC.iter().zip(names) {
        config = config.machine(mac, HOST, &format!("fbt.marker={name}"));
    }
    s.start_appliance(&config);

    let clients: Vec<_> = (0..4)
        .map(|i| s.power_on(names[i], kinds[i], i, MAC[i]))
        .collect();
    // Four TCG guests share two cores: give them more time than a lone boot.
    let deadline = Instant::now() + Duration::from_secs(300);
    for (client, name) in clients.iter().zip(names) {
        let left = deadline.saturating_duration_since(Instant::now());
        s.expect_marker(client, name, left);
    }

    for (client, kind) in clients.iter().zip(kinds) {
        s.expect_stages(client, &[Dhcp, Script, Kernel, Initrd], false);
        let firmware = match kind {
            ClientKind::Bios => ClientFirmware::IpxeBios,
            _ => ClientFirmware::IpxeEfi,
        };
        s.expect_firmware(client, firmware);
    }
    for client in &clients {
        s.report(client, false);
    }
}
