//! The real daemon in a namespace made by plain `unshare --net`, which leaves the host's `/sys`
//! mounted: `/sys/class/net` there lists the host's interfaces, not the namespace's. The daemon
//! must find its LAN port (`tap0`, only in the namespace) through the kernel of its own network
//! namespace, and serve on it: a QEMU machine (BIOS, iPXE from the NIC's option ROM) on that tap
//! gets its address from the daemon's DHCP (router mode), its script, the pinned Debian kernel
//! and a marker initramfs over HTTP, and runs them.

// Helpers here run only inside tests: a failed step panics with its message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use flakeboot_testbed::{
    ClientKind, Netns, Proc, QemuClient, kernel, marker_initramfs, marker_line, require_root,
    require_tool, unique_token,
};

const LAN_IF: &str = "tap0";
const SERVER_IP: &str = "10.79.0.1";
const LAN_MAC: &str = "02:fb:79:00:00:01";
const CLIENT_MAC: &str = "52:54:00:79:00:02";

/// Inside the new namespace: `lo` and a tap `tap0` with an address, then exec the daemon (same
/// PID, so `/proc/<pid>/ns/net` is the namespace). Paths arrive as arguments, not in the script.
const SCRIPT: &str = r#"set -e
ip link set lo up
ip tuntap add dev tap0 mode tap
ip link set tap0 address 02:fb:79:00:00:01 mtu 1000
ip addr add 10.79.0.1/24 dev tap0
ip link set tap0 up
exec "$0" serve --config "$1" --state-dir "$2"
"#;

#[test]
fn daemon_under_unshare_net_serves_on_a_namespace_only_interface() {
    require_root();
    require_tool("unshare");
    require_tool("nsenter");
    require_tool("curl");
    // The premise: /sys (the host's) cannot answer for tap0.
    assert!(
        !std::path::Path::new("/sys/class/net").join(LAN_IF).exists(),
        "the host has a {LAN_IF}: this test needs the name to exist only in its namespace"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let token = unique_token();
    marker_initramfs(&path("initrd"), &token).unwrap();
    let config = path("flakeboot.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[lan]
interface = "{LAN_IF}"

[dhcp]
mode = "router"
range = ["10.79.0.100", "10.79.0.109"]

[[hosts]]
name = "demo"
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 panic=-1 fbt.marker=unshare1"

[[machines]]
mac = "{CLIENT_MAC}"
host = "demo"
"#,
            kernel = kernel().unwrap().display(),
            initrd = path("initrd").display(),
        ),
    )
    .unwrap();

    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--", "sh", "-c", SCRIPT])
        .arg(env!("CARGO_BIN_EXE_flakeboot"))
        .arg(&config)
        .arg(path("state"));
    // Dropped (SIGTERM, then SIGKILL, by PID) however the test ends.
    let mut daemon = Proc::spawn("flakeboot-unshare", cmd).unwrap();
    daemon
        .wait_for("serving", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));

    // The LAN port as the namespace's kernel has it.
    let started = daemon
        .wait_for("starting flakeboot", Duration::ZERO)
        .unwrap();
    for field in [
        format!("interface={LAN_IF}"),
        format!("address={SERVER_IP}"),
        "netmask=255.255.255.0".to_owned(),
        format!("mac={LAN_MAC}"),
    ] {
        assert!(started.contains(&field), "{field} not in: {started}");
    }

    // A client in the daemon's own namespace gets the machine's boot script over HTTP.
    let out = curl_in(
        &daemon,
        &[&format!("http://{SERVER_IP}/boot.ipxe?mac={CLIENT_MAC}")],
    );
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.tail(40)
    );
    assert!(script.starts_with("#!ipxe"), "{script}");
    assert!(script.contains("/boot/demo/static/kernel"), "{script}");

    // And the iPXE binary over TFTP (its sockets bound to tap0, the MTU from the namespace).
    let undionly = std::fs::read("/usr/lib/ipxe/undionly.kpxe").unwrap();
    let out = curl_in(
        &daemon,
        &[
            "--tftp-blksize",
            "1468",
            &format!("tftp://{SERVER_IP}/undionly.kpxe"),
        ],
    );
    assert!(
        out.status.success(),
        "TFTP failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.tail(30)
    );
    assert!(out.stdout == undionly, "TFTP download differs");

    // The MTU (1000) is the namespace's: a 1468-byte block is capped to 1000 - 32 in the OACK.
    assert_eq!(tftp_granted_blksize(&daemon, "1468"), "968");

    // The setup page offers the namespace's ports: tap0, not lo, none of the host's.
    let setup = format!("https://{SERVER_IP}/setup");
    let start = Instant::now();
    let page = loop {
        // "serving" is logged before the HTTPS listener is bound.
        let out = curl_in(&daemon, &["-k", "--fail-with-body", &setup]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no setup page at {setup}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            daemon.tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let offered: Vec<&str> = page
        .split("<option value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(offered, [LAN_IF], "LAN ports on the setup page");

    // A machine on tap0 netboots from the daemon: QEMU runs in the daemon's namespace, named
    // for `ip netns exec` (which mounts a /sys of its own for QEMU, not for the daemon).
    let ns = Netns::attach("unshare", daemon.pid()).unwrap();
    let mut client = QemuClient::start(&ns, "unshare1", ClientKind::Bios, LAN_IF, CLIENT_MAC)
        .unwrap_or_else(|e| panic!("{e}"));
    let marker = marker_line(&token, "unshare1");
    if let Err(e) = client.wait_for_serial(&marker, Duration::from_secs(180)) {
        panic!(
            "the machine did not boot its host: {e}\nconsole:\n{}\ndaemon log:\n{}",
            client.console_tail(30),
            daemon.tail(40)
        );
    }
    client.stop();
    drop(ns);

    let status = daemon.stop().unwrap();
    assert!(
        status.success(),
        "daemon exit: {status}\n{}",
        daemon.tail(40)
    );
    // The boot as the store has it: DHCP, the script, kernel and initrd (QEMU's option ROM is
    // iPXE already: no TFTP).
    let out = Command::new(env!("CARGO_BIN_EXE_flakeboot"))
        .args(["events", "--mac", CLIENT_MAC, "--state-dir"])
        .arg(path("state"))
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&out.stdout);
    for stage in [" dhcp Ok", " script Ok", " kernel Ok", " initrd Ok"] {
        assert!(
            events.lines().any(|l| l.contains(stage)),
            "no `{stage}` among the machine's events:\n{events}"
        );
    }
}

/// curl, from inside the daemon's network namespace.
fn curl_in(daemon: &Proc, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", daemon.pid()))
        .args(["curl", "-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap()
}

/// The block size the daemon's TFTP server grants to a read request for `undionly.kpxe` asking
/// for `blksize`, from a socket in the daemon's namespace (the transfer is then aborted).
fn tftp_granted_blksize(daemon: &Proc, blksize: &str) -> String {
    let netns = std::fs::File::open(format!("/proc/{}/ns/net", daemon.pid())).unwrap();
    let blksize = blksize.to_owned();
    std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rrq = vec![0, 1];
        for field in ["undionly.kpxe", "octet", "blksize", &blksize] {
            rrq.extend_from_slice(field.as_bytes());
            rrq.push(0);
        }
        socket.send_to(&rrq, (SERVER_IP, 69)).unwrap();
        let mut buf = [0u8; 1500];
        let (len, tid) = socket.recv_from(&mut buf).unwrap();
        // ERROR 0: the client aborts, so the server does not retransmit.
        socket.send_to(b"\0\x05\0\0done\0", tid).unwrap();
        let oack = &buf[..len];
        assert_eq!(oack[..2], [0, 6], "not an OACK: {oack:?}");
        let fields: Vec<String> = oack[2..]
            .split(|b| *b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let at = fields.iter().position(|f| f == "blksize").unwrap();
        fields[at + 1].clone()
    })
    .join()
    .unwrap()
}
