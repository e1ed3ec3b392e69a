//! Every server a comparison starts in the server namespace, on `lan0`: flakeboot itself and
//! the peers users would run instead (dnsmasq, Kea, tftp-hpa, nginx), each with a generated
//! config in the scratch directory and its output in a log. Dropping a [`Server`] ends it by PID.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flakeboot_testbed::{Proc, Serve, TestLan, require_tool};

use crate::error::{BenchError, Result};
use crate::lan::{CLIENT_IF, POOL, PREFIX, SERVER_IF, SERVER_IP, subdir};
use crate::procfs;

/// How long a server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server: its name in result tables and its process.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    proc: Proc,
}

impl Server {
    /// The server's PID (the process `ip netns exec` became).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Peak and current RSS of the server and its children.
    pub fn memory(&self) -> procfs::Memory {
        procfs::memory(self.pid())
    }

    /// CPU seconds used so far by the server and its children.
    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid())
    }

    /// CPU seconds used so far by a group of servers (dnsmasq and nginx together) and their
    /// children.
    pub fn group_cpu_seconds(group: &[Server]) -> f64 {
        group.iter().map(Server::cpu_seconds).sum()
    }

    /// The last lines of its log (for error messages).
    pub fn tail(&self, n: usize) -> String {
        self.proc.tail(n)
    }

    /// Stop it now (SIGTERM, then SIGKILL).
    pub fn stop(mut self) {
        self.proc.stop();
    }

    fn wait_ready(mut self, needle: &str) -> Result<Server> {
        match self.proc.wait_for(needle, READY_TIMEOUT) {
            Ok(_) => Ok(self),
            Err(e) => Err(BenchError::NotReady {
                server: self.name.clone(),
                detail: e.to_string(),
            }),
        }
    }
}

fn spawn(lan: &TestLan, name: &str, argv: &[&str]) -> Result<Server> {
    let proc = lan
        .server
        .spawn(name, argv)
        .map_err(BenchError::io(format!("starting {name}")))?;
    Ok(Server {
        name: name.to_owned(),
        proc,
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(BenchError::io(format!("writing {}", path.display())))
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// DHCP mode of a flakeboot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpMode {
    Off,
    Proxy,
    Router,
}

/// What a flakeboot run serves.
#[derive(Debug, Clone)]
pub struct FlakebootSetup {
    pub dhcp: DhcpMode,
    /// The directory of iPXE binaries (`ipxe.efi`, `undionly.kpxe`, ...).
    pub ipxe_dir: PathBuf,
    /// Host `demo`'s kernel and initrd (HTTP `/boot/demo/static/{kernel,initrd}`).
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Host `demo`'s kernel command line.
    pub cmdline: String,
    /// Machines assigned to `demo`: (MAC, extra command line).
    pub machines: Vec<(String, String)>,
    /// Send IPv6 router advertisements for fd77::/64 (iPXE waits ~13 s for IPv6 without).
    pub ra: bool,
}

impl FlakebootSetup {
    /// `dir`'s iPXE binaries, `kernel` and `initrd`, with `dhcp`; no machines, no RA.
    pub fn serving(dhcp: DhcpMode, dir: &Path) -> FlakebootSetup {
        FlakebootSetup {
            dhcp,
            ipxe_dir: dir.to_owned(),
            kernel: dir.join("kernel"),
            initrd: dir.join("initrd"),
            cmdline: String::new(),
            machines: Vec::new(),
            ra: false,
        }
    }

    /// The TOML config a user would write for this setup.
    pub fn to_toml(&self) -> String {
        let mode = match self.dhcp {
            DhcpMode::Off => "off",
            DhcpMode::Proxy => "proxy",
            DhcpMode::Router => "router",
        };
        let mut t = format!(
            "[lan]\ninterface = \"{SERVER_IF}\"\n\n[dhcp]\nmode = \"{mode}\"\n\
             lease_time = \"1h\"\n"
        );
        if self.dhcp == DhcpMode::Router {
            let _ = writeln!(t, "range = [\"{}\", \"{}\"]", POOL.0, POOL.1);
        }
        let _ = write!(
            t,
            "\n[dhcp.ipv6_ra]\nenabled = {}\nprefix = \"fd77::\"\n\n[tftp]\nmax_transfers = 1024\n\
             max_per_client = 1024\nmax_windowsize = 64\n\n\
             [http]\nmax_connections_per_client = 1024\n\n[ipxe]\ndir = \"{}\"\n\n[menu]\ndefault = \"demo\"\n\
             timeout = \"0s\"\n\n[[hosts]]\nname = \"demo\"\ndescription = \"bench\"\n\
             kernel = \"{}\"\ninitrd = \"{}\"\ncmdline = \"{}\"\n",
            self.ra,
            path_str(&self.ipxe_dir),
            path_str(&self.kernel),
            path_str(&self.initrd),
            self.cmdline,
        );
        for (mac, extra) in &self.machines {
            let _ = write!(
                t,
                "\n[[machines]]\nmac = \"{mac}\"\nhost = \"demo\"\nextra_cmdline = \"{extra}\"\n"
            );
        }
        t
    }
}

/// Start `flakeboot serve` (binary `bin`) with a fresh state directory; ready at "serving".
pub fn flakeboot(lan: &TestLan, bin: &Path, setup: &FlakebootSetup) -> Result<Server> {
    if !bin.is_file() {
        return Err(BenchError::NotReady {
            server: "flakeboot".to_owned(),
            detail: format!(
                "no binary at {}: build it (cargo build --release -p flakeboot)",
                bin.display()
            ),
        });
    }
    let n = next_id();
    let config = lan.path(&format!("flakeboot-{n}.toml"));
    write(&config, &setup.to_toml())?;
    let state = subdir(lan, &format!("flakeboot-state-{n}"))?;
    let proc = Serve::new(&config, &state)
        .bin(bin)
        .spawn(&lan.server)
        .map_err(|e| BenchError::NotReady {
            server: "flakeboot".to_owned(),
            detail: e.to_string(),
        })?;
    Server {
        name: "flakeboot".to_owned(),
        proc,
    }
    .wait_ready("serving")
}

fn next_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What a dnsmasq run does: DHCP (router or proxy, durable or not) and/or TFTP.
#[derive(Debug, Clone, Default)]
pub struct DnsmasqSetup {
    /// Router-mode DHCP over [`POOL`].
    pub router: bool,
    /// proxyDHCP for PXE clients (BIOS: undionly.kpxe, UEFI: ipxe.efi).
    pub proxy: bool,
    /// Keep leases in a lease file (durable); else `--leasefile-ro` (memory only).
    pub durable: bool,
    /// Serve this directory over TFTP.
    pub tftp_root: Option<PathBuf>,
    /// Boot options like the reference netboot server: non-iPXE PXE clients get an iPXE
    /// binary over TFTP, iPXE gets `http://SERVER/boot.ipxe`.
    pub boot_options: bool,
    /// Send IPv6 router advertisements for fd77::/64.
    pub ra: bool,
    /// Run as the LAN's own router in the client namespace (on its `eth0`): addresses only.
    pub lan_router: bool,
}

/// Start dnsmasq (`--no-daemon --port=0 --no-ping`) on `lan0`; ready at "started".
pub fn dnsmasq(lan: &TestLan, name: &str, setup: &DnsmasqSetup) -> Result<Server> {
    let bin = require_tool("dnsmasq");
    let n = next_id();
    let mut args: Vec<String> = [
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--no-ping",
        "--bind-interfaces",
        "--user=root",
        "--group=root",
        "--log-facility=-",
        "--quiet-dhcp",
        "--dhcp-authoritative",
        "--dhcp-lease-max=1000000",
    ]
    .map(String::from)
    .to_vec();
    let (ns, iface) = if setup.lan_router {
        (lan.client(), CLIENT_IF)
    } else {
        (&lan.server, SERVER_IF)
    };
    args.push(format!("--interface={iface}"));
    args.push(format!(
        "--pid-file={}",
        path_str(&lan.path(&format!("dnsmasq-{n}.pid")))
    ));
    if setup.router {
        args.push(format!("--dhcp-range={},{},255.255.0.0,1h", POOL.0, POOL.1));
        if setup.durable {
            args.push(format!(
                "--dhcp-leasefile={}",
                path_str(&lan.path(&format!("dnsmasq-{n}.leases")))
            ));
        } else {
            args.push("--leasefile-ro".to_owned());
        }
    }
    if setup.proxy {
        args.push(format!("--dhcp-range={SERVER_IP},proxy,255.255.0.0"));
        args.push("--leasefile-ro".to_owned());
        // ipxe.org's dnsmasq recipe: PXE firmware chains to iPXE, iPXE gets the script.
        args.push("--dhcp-match=set:ipxe,175".to_owned());
        args.push("--pxe-service=tag:!ipxe,x86PC,bench,undionly.kpxe".to_owned());
        args.push("--pxe-service=tag:!ipxe,X86-64_EFI,bench,ipxe.efi".to_owned());
        let script = format!("http://{SERVER_IP}/boot.ipxe");
        args.push(format!("--pxe-service=tag:ipxe,x86PC,bench,{script}"));
        args.push(format!("--pxe-service=tag:ipxe,X86-64_EFI,bench,{script}"));
        args.push("--pxe-prompt=bench,0".to_owned());
    }
    if setup.ra {
        args.push("--enable-ra".to_owned());
        args.push("--dhcp-range=fd77::,ra-only".to_owned());
    }
    if setup.boot_options {
        args.push("--dhcp-userclass=set:ipxe,iPXE".to_owned());
        args.push("--dhcp-match=set:efi64,option:client-arch,7".to_owned());
        args.push(format!("--dhcp-boot=tag:ipxe,http://{SERVER_IP}/boot.ipxe"));
        args.push("--dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi".to_owned());
        args.push("--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe".to_owned());
    }
    if let Some(root) = &setup.tftp_root {
        args.push("--enable-tftp".to_owned());
        args.push(format!("--tftp-root={}", path_str(root)));
        args.push("--tftp-max=1024".to_owned());
    }
    let mut argv = vec![path_str(&bin)];
    argv.extend(args);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let proc = ns
        .spawn(name, &argv)
        .map_err(BenchError::io(format!("starting {name}")))?;
    Server {
        name: name.to_owned(),
        proc,
    }
    .wait_ready("started")
}

/// Start Kea's DHCPv4 server (memfile lease database, persisted to a CSV in the scratch dir)
/// on `lan0`, raw sockets; ready when it logs that it opened its sockets.
pub fn kea(lan: &TestLan) -> Result<Server> {
    let bin = require_tool("kea-dhcp4");
    let n = next_id();
    let dir = subdir(lan, &format!("kea-{n}"))?;
    let config = serde_json::json!({
        "Dhcp4": {
            "interfaces-config": { "interfaces": [SERVER_IF], "dhcp-socket-type": "raw" },
            "lease-database": {
                "type": "memfile",
                "persist": true,
                "name": path_str(&dir.join("kea-leases4.csv")),
                "lfc-interval": 0
            },
            "valid-lifetime": 3600,
            "subnet4": [{
                "id": 1,
                "subnet": format!("10.77.0.0/{PREFIX}"),
                "pools": [{ "pool": format!("{} - {}", POOL.0, POOL.1) }],
                "interface": SERVER_IF
            }],
            "loggers": [{
                "name": "kea-dhcp4",
                "output_options": [{ "output": "stdout" }],
                "severity": "INFO"
            }]
        }
    });
    let path = dir.join("kea-dhcp4.json");
    write(&path, &config.to_string())?;
    let mut cmd = lan.server.command(&bin);
    cmd.args(["-c", &path_str(&path)])
        .env("KEA_LOCKFILE_DIR", &dir)
        .env("KEA_PIDFILE_DIR", &dir)
        .env("KEA_LOGGER_DESTINATION", "stdout");
    let proc = Proc::spawn("kea-dhcp4", cmd).map_err(BenchError::io("starting kea-dhcp4"))?;
    Server {
        name: "kea".to_owned(),
        proc,
    }
    .wait_ready("DHCP4_STARTED")
}

/// Start tftp-hpa (`in.tftpd -L -s ROOT`) on the server address.
pub fn tftp_hpa(lan: &TestLan, root: &Path) -> Result<Server> {
    let bin = require_tool("in.tftpd");
    let server = spawn(
        lan,
        "tftp-hpa",
        &[
            &path_str(&bin),
            "-L",
            "-v",
            "-a",
            &format!("{SERVER_IP}:69"),
            "-s",
            &path_str(root),
        ],
    )?;
    // in.tftpd -L prints nothing when ready: wait for its socket.
    wait_for_udp_port(lan, 69)?;
    Ok(server)
}

/// Start nginx (`daemon off;`, its own prefix in the scratch dir) serving `root` on port 80.
pub fn nginx(lan: &TestLan, root: &Path) -> Result<Server> {
    nginx_on(lan, root, 80)
}

/// [`nginx`] on another port (beside a server that holds port 80).
pub fn nginx_on(lan: &TestLan, root: &Path, port: u16) -> Result<Server> {
    let bin = require_tool("nginx");
    let n = next_id();
    let prefix = subdir(lan, &format!("nginx-{n}"))?;
    let p = |name: &str| path_str(&prefix.join(name));
    let conf = format!(
        "daemon off;\nuser root;\nworker_processes auto;\npid {pid};\nerror_log {err} warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log {access};\n  sendfile on;\n  tcp_nopush on;\n\
           default_type application/octet-stream;\n\
           client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
           fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
           server {{\n    listen {SERVER_IP}:{port};\n    root {root};\n  }}\n}}\n",
        pid = p("nginx.pid"),
        err = p("error.log"),
        access = p("access.log"),
        t = path_str(&prefix),
        root = path_str(root),
    );
    let conf_path = prefix.join("nginx.conf");
    write(&conf_path, &conf)?;
    let server = spawn(
        lan,
        "nginx",
        &[
            &path_str(&bin),
            "-p",
            &path_str(&prefix),
            "-c",
            &path_str(&conf_path),
            "-e",
            &p("error.log"),
        ],
    )?;
    wait_for_tcp_port(lan, port)?;
    Ok(server)
}

/// Wait until something in the server namespace listens on UDP `port`.
fn wait_for_udp_port(lan: &TestLan, port: u16) -> Result<()> {
    wait_for_socket(lan, "-ulnH", port)
}

/// Wait until something in the server namespace listens on TCP `port`.
fn wait_for_tcp_port(lan: &TestLan, port: u16) -> Result<()> {
    wait_for_socket(lan, "-tlnH", port)
}

fn wait_for_socket(lan: &TestLan, flags: &str, port: u16) -> Result<()> {
    let start = std::time::Instant::now();
    let needle = format!(":{port} ");
    while start.elapsed() < READY_TIMEOUT {
        let out = lan.server.run(&["ss", flags]).unwrap_or_default();
        if out.lines().any(|l| l.contains(&needle)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BenchError::NotReady {
        server: format!("listener on port {port}"),
        detail: format!("nothing listens on port {port} after {READY_TIMEOUT:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flakeboot_config_names_the_interface_pool_and_machines() {
        let setup = FlakebootSetup {
            dhcp: DhcpMode::Router,
            ipxe_dir: "/ipxe".into(),
            kernel: "/k".into(),
            initrd: "/i".into(),
            cmdline: "console=ttyS0".into(),
            machines: vec![("52:54:00:00:00:01".into(), "fbt.marker=a".into())],
            ra: false,
        };
        let t = setup.to_toml();
        assert!(t.contains("interface = \"lan0\""), "{t}");
        assert!(t.contains("mode = \"router\""), "{t}");
        assert!(
            t.contains("range = [\"10.77.1.0\", \"10.77.250.250\"]"),
            "{t}"
        );
        assert!(t.contains("mac = \"52:54:00:00:00:01\""), "{t}");
        let proxy = FlakebootSetup {
            dhcp: DhcpMode::Proxy,
            ..setup
        };
        assert!(!proxy.to_toml().contains("range"));
    }
}
