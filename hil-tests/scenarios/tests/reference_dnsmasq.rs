//! The harness itself, against a reference boot server (dnsmasq + busybox httpd) instead
//! of flakeboot: when this passes and a flakeboot scenario fails, the fault is flakeboot's.

use flakeboot_hil_tests::{BOOT_TIMEOUT, MAC, Scenario};
use flakeboot_testbed::ClientKind;

#[test]
fn bios_client_boots_from_the_reference_server() {
    let mut s = Scenario::new("reference", 1);
    s.start_reference_server("ref1");

    let client = s.power_on("ref1", ClientKind::Bios, 0, MAC[0]);
    let marker = s.expect_marker(&client, "ref1", BOOT_TIMEOUT);

    assert!(marker.text.contains("fbt.marker=ref1"), "{marker}");
    assert!(
        client.console().find("iPXE").is_some(),
        "iPXE never printed on the console"
    );
    s.report(&client, true);
}
