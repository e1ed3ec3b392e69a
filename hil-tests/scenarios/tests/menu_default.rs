//! Scenario 4: a machine nobody assigned gets the menu, boots its default entry when the timeout
//! runs out, and is then in the store with its firmware type. Then, with the local disk as the
//! menu's default, a second machine leaves iPXE for its local disk and its boot ends as "local".

use std::time::Duration;

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Local, Script};
use flakeboot_catalogue::ClientFirmware;
use flakeboot_hil_tests::{BOOT_TIMEOUT, HOST, HOST_DESCRIPTION, MAC, Mode, Scenario, first_ok};
use flakeboot_testbed::ClientKind;

#[test]
fn unassigned_machine_boots_the_menu_default_and_is_recorded() {
    let mut s = Scenario::new("menu_default", 2);
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
    let machine = stored_machine(&s, MAC[0]);
    assert_eq!(machine["firmware"], "ipxe-bios", "{machine}");
    assert!(
        machine["host"].is_null(),
        "the machine was never assigned: {machine}"
    );

    // The menu's default set to the local disk: its local entry runs when the timeout runs
    // out. iPXE tells the appliance, then exits to the firmware (which finds no disk here).
    let config = s.config(Mode::Router).menu("local", Duration::from_secs(1));
    s.start_appliance(&config);
    let local = s.power_on("menu2", ClientKind::Bios, 1, MAC[1]);
    if let Err(e) = local.wait_for_serial("flakeboot: booting from the local disk", BOOT_TIMEOUT) {
        s.fail(&format!("menu2 did not take the menu's local entry: {e}"));
    }
    s.expect_stages(&local, &[Dhcp, Script, Local], false);
    s.report(&local, false);
    s.stop_appliance();
    let machine = stored_machine(&s, MAC[1]);
    assert_eq!(machine["last_boot"]["state"], "local", "{machine}");
}

/// The stopped appliance's record of `mac` (`flakeboot machines --json`), printed.
fn stored_machine(s: &Scenario, mac: &str) -> serde_json::Value {
    let machines = s
        .appliance()
        .stored_machines()
        .unwrap_or_else(|e| s.fail(&e.to_string()));
    let machine = machines
        .into_iter()
        .find(|m| {
            m["mac"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        })
        .unwrap_or_else(|| s.fail(&format!("{mac} is not in the store")));
    eprintln!("stored machine: {machine}");
    machine
}
