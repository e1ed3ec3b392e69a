//! Scenario 4: a machine nobody assigned gets the menu, boots its default entry when the timeout
//! runs out, and is then in the store with its firmware type.

use std::time::Duration;

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Script};
use flakeboot_catalogue::ClientFirmware;
use flakeboot_hil_tests::{BOOT_TIMEOUT, HOST, HOST_DESCRIPTION, MAC, Mode, Scenario, first_ok};
use flakeboot_testbed::ClientKind;

#[test]
fn unassigned_machine_boots_the_menu_default_and_is_recorded() {
    let mut s = Scenario::new("menu_default", 1);
    // No [[machines]] entry: no per-machine parameters, so the marker line says `<token>:none`.
    let menu_timeout = Duration::from_secs(3);
    let config = s.config(Mode::Router).menu(HOST, menu_timeout);
    s.start_appliance(&config);

    let client = s.power_on("menu1", ClientKind::Bios, 0, MAC[0]);
    let marker = s.expect_marker(&client, "none", BOOT_TIMEOUT);

    assert!(!marker.text.contains("fbt.marker="), "{marker}");
    // iPXE drew the menu (with the host's description) on the console before the default ran.
    assert!(
        client.console().find(HOST_DESCRIPTION).is_some(),
        "no menu entry {HOST_DESCRIPTION:?} on the console"
    );
    s.expect_stages(&client, &[Dhcp, Script, Kernel, Initrd], false);
    s.expect_firmware(&client, ClientFirmware::IpxeBios);
    // Nobody pressed a key: the kernel was fetched only after the menu's timeout ran out.
    let events = s.client_events(&client, false);
    let script = first_ok(&events, Script).map(|e| e.at);
    let kernel = first_ok(&events, Kernel).map(|e| e.at);
    let waited = kernel
        .zip(script)
        .and_then(|(k, s)| k.duration_since(s).ok())
        .unwrap_or_default();
    assert!(
        waited >= menu_timeout - Duration::from_millis(500),
        "the kernel came {waited:?} after the script: the menu did not wait its {menu_timeout:?}"
    );
    s.report(&client, false);

    s.stop_appliance();
    let machines = s
        .appliance()
        .stored_machines()
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    let machine = machines
        .iter()
        .find(|m| {
            m["mac"]
                .as_str()
                .is_some_and(|mac| mac.eq_ignore_ascii_case(MAC[0]))
        })
        .unwrap_or_else(|| s.fail(&format!("{} is not in the store: {machines:?}", MAC[0])));
    eprintln!("stored machine: {machine}");
    assert_eq!(machine["firmware"], "ipxe-bios", "{machine}");
    assert!(
        machine["host"].is_null(),
        "the machine was never assigned: {machine}"
    );
}
