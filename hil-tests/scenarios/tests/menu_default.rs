//! Scenario 4: a machine nobody assigned gets the menu, boots its default entry when the timeout
//! runs out, and is then in the store with its firmware type. Then, with the local disk as the
//! menu's default, a second machine leaves iPXE for its local disk (SeaBIOS boots the disk's
//! boot sector, which prints a marker) and its boot ends as "local"; so does a UEFI machine
//! whose firmware's own PXE client loads the appliance's `ipxe.efi` (Debian 13's iPXE, the one
//! the appliance image serves), which leaves for its disk's EFI application. Then boot control: a third
//! machine set to its local disk with the marker host once (through the CLI on the API socket)
//! boots the marker host, and powered on again (now with UEFI firmware), its local disk's EFI
//! application.

use std::time::{Duration, Instant};

use flakeboot_catalogue::BootStage::{Dhcp, Initrd, Kernel, Local, Script, Tftp};
use flakeboot_catalogue::ClientFirmware;
use flakeboot_hil_tests::{BOOT_TIMEOUT, HOST, HOST_DESCRIPTION, MAC, Mode, Scenario, first_ok};
use flakeboot_testbed::{ClientKind, QemuClient, marker_disk, marker_efi_disk};

/// What the local disk's boot sector prints: the run's token and the machine.
fn disk_line(s: &Scenario, client: &str) -> String {
    format!("FLAKEBOOT-LOCAL-DISK {}:{client}", s.token())
}

/// A disk for `client` whose boot sector prints [`disk_line`].
fn disk(s: &Scenario, client: &str) -> std::path::PathBuf {
    let path = s.dir().join(format!("{client}-disk.img"));
    marker_disk(&path, &disk_line(s, client)).unwrap_or_else(|e| s.fail(&format!("disk: {e}")));
    path
}

/// A GPT disk for `client` whose EFI system partition's `BOOTX64.EFI` prints [`disk_line`].
fn efi_disk(s: &Scenario, client: &str) -> std::path::PathBuf {
    let path = s.dir().join(format!("{client}-efi-disk.img"));
    marker_efi_disk(&path, &disk_line(s, client))
        .unwrap_or_else(|e| s.fail(&format!("EFI disk: {e}")));
    path
}

/// Debian 13's iPXE binaries (`scripts/install-deps.sh` puts them there), what the appliance
/// image serves.
fn trixie_ipxe(s: &Scenario) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from("/opt/flakeboot/ipxe-trixie");
    if !dir.join("ipxe.efi").is_file() {
        s.fail(&format!(
            "{} has no ipxe.efi: run scripts/install-deps.sh (as root)",
            dir.display()
        ));
    }
    dir
}

/// `client` left iPXE for its local disk: the script's echo, then the disk's own line.
fn expect_local_disk(s: &Scenario, client: &QemuClient, disk_of: &str) {
    if let Err(e) = client.wait_for_serial("flakeboot: booting from the local disk", BOOT_TIMEOUT) {
        s.fail(&format!(
            "{} did not leave for its local disk: {e}",
            client.name()
        ));
    }
    match client.wait_for_serial(&disk_line(s, disk_of), Duration::from_secs(90)) {
        Ok(line) => eprintln!("== {} booted its local disk: {line}", client.name()),
        Err(e) => s.fail(&format!(
            "the firmware did not boot {}'s disk: {e}",
            client.name()
        )),
    }
}

#[test]
fn unassigned_machine_boots_the_menu_default_and_is_recorded() {
    let mut s = Scenario::new("menu_default", 3);
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
    // out. iPXE tells the appliance, then exits to the firmware, which boots the next device
    // in its boot order: the disk (its boot sector prints a line of its own).
    let config = s
        .config(Mode::Router)
        .menu("local", Duration::from_secs(1))
        .ipxe_dir(&trixie_ipxe(&s));
    s.start_appliance(&config);
    let local = s.power_on_with_disk("menu2", ClientKind::Bios, 1, MAC[1], &disk(&s, "menu2"));
    expect_local_disk(&s, &local, "menu2");
    s.expect_stages(&local, &[Dhcp, Script, Local], false);
    s.report(&local, false);
    drop(local);

    // UEFI's own PXE client (no iPXE in the NIC's ROM), the usual UEFI machine: the firmware
    // loads ipxe.efi over TFTP, whose `exit 1` returns to the firmware, which goes on to the
    // disk's `\EFI\BOOT\BOOTX64.EFI`. Debian 12's 2019 iPXE never returns (docs/boot-flow.md).
    let efi = efi_disk(&s, "menu4");
    let pxe = s.power_on_with_disk("menu4", ClientKind::UefiPxe, 1, MAC[3], &efi);
    expect_local_disk(&s, &pxe, "menu4");
    s.expect_stages(&pxe, &[Dhcp, Tftp, Script, Local], false);
    s.expect_firmware(&pxe, ClientFirmware::UefiX64Pxe);
    s.report(&pxe, false);
    drop(pxe);

    boot_once_then_local_disk(&s);

    s.stop_appliance();
    let machine = stored_machine(&s, MAC[1]);
    assert_eq!(machine["last_boot"]["state"], "local", "{machine}");
    assert_eq!(
        machine["last_boot"]["detail"], "local disk: the boot menu's local entry",
        "{machine}"
    );
    let machine = stored_machine(&s, MAC[3]);
    assert_eq!(machine["last_boot"]["state"], "local", "{machine}");
    let machine = stored_machine(&s, MAC[2]);
    assert_eq!(machine["host"], "local", "{machine}");
    assert_eq!(machine["last_boot"]["state"], "local", "{machine}");
    assert_eq!(
        machine["last_boot"]["detail"], "local disk: the machine is set to boot its local disk",
        "{machine}"
    );
}

/// A machine set to its local disk with the marker host once (the CLI over the API socket):
/// its first boot is the marker host; once that kernel was delivered the boot-once host is
/// gone, and the same machine powered on again boots its local disk.
fn boot_once_then_local_disk(s: &Scenario) {
    let started = Instant::now();
    let mac = MAC[2];
    let cli = |args: &[&str]| {
        s.appliance()
            .cli(args)
            .unwrap_or_else(|e| s.fail(&format!("flakeboot {args:?}: {e}")))
    };
    let out = cli(&["machine", "assign", mac, "--local-disk"]);
    assert_eq!(out.trim(), format!("{mac} boots its local disk now."));
    let out = cli(&["machine", "boot-once", mac, HOST]);
    assert_eq!(
        out.trim(),
        format!("{mac}'s next boot: {HOST} once, then its local disk.")
    );
    let disk = disk(s, "once");

    let first = s.power_on_with_disk("once", ClientKind::Bios, 2, mac, &disk);
    // No [[machines]] entry: the marker line says `<token>:none`.
    s.expect_marker(&first, "none", BOOT_TIMEOUT);
    s.expect_stages(&first, &[Dhcp, Script, Kernel, Initrd], false);
    wait_boot_once_cleared(s, mac, &cli);
    drop(first);

    // The next boot: its own choice again, the local disk. This time the machine starts with
    // UEFI firmware (OVMF, iPXE's EFI ROM): iPXE's `exit 1` fails the network boot option, and
    // the firmware's boot manager goes on through the NIC's other options to the disk's
    // `\EFI\BOOT\BOOTX64.EFI` (with plain `exit` OVMF stopped in its boot menu).
    let efi = efi_disk(s, "once");
    let again = s.power_on_with_disk("once-again", ClientKind::Uefi, 2, mac, &efi);
    expect_local_disk(s, &again, "once");
    s.expect_stages(&again, &[Local], false);
    s.report(&again, false);
    eprintln!(
        "== boot once, then the local disk: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Wait until the machine's boot-once host is gone (cleared when its kernel was delivered).
fn wait_boot_once_cleared(s: &Scenario, mac: &str, cli: &dyn Fn(&[&str]) -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let machines: serde_json::Value = serde_json::from_str(&cli(&["machines", "--json"]))
            .unwrap_or_else(|e| s.fail(&format!("machines --json: {e}")));
        let machine = machines
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|m| m.get("mac").and_then(|m| m.as_str()) == Some(mac))
            })
            .cloned()
            .unwrap_or_else(|| s.fail(&format!("{mac} is not listed")));
        if machine
            .pointer("/options/boot_once")
            .is_some_and(serde_json::Value::is_null)
        {
            assert_eq!(
                machine.get("next_boot").and_then(|n| n.as_str()),
                Some("its local disk"),
                "{machine}"
            );
            return;
        }
        if Instant::now() > deadline {
            s.fail(&format!("the boot-once host was not cleared: {machine}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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
