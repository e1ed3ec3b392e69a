//! Checks of a configuration against the machine it runs on: the LAN port exists and has an
//! address, router-mode ranges lie in its subnet, and the files and directories the config
//! names are there. This crate does no I/O: the appliance answers [`System`] from the kernel
//! (netlink) and the file system; tests answer it with fakes.
//!
//! `flakeboot check-config` reports these like any other problem, or as warnings with
//! `--for-another-machine` (a file written here for another appliance).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::problem::{Field, Problem};
use crate::{Config, UefiBinary};

/// A network interface as validation needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceFacts {
    /// IPv4 addresses with their prefix lengths, primary first.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

/// What is at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathKind {
    File,
    Directory,
    /// A socket, a device, ...
    Other,
    Missing,
    /// It cannot be looked at (permissions): the reason.
    Unreadable(String),
}

/// The machine a configuration is checked against.
pub trait System {
    /// The interface called `name`, `Ok(None)` when there is none; `Err` when the kernel could
    /// not be asked.
    fn interface(&self, name: &str) -> Result<Option<InterfaceFacts>, String>;
    /// Every interface's name (to say which there are).
    fn interface_names(&self) -> Vec<String>;
    /// What is at `path`.
    fn path(&self, path: &Path) -> PathKind;
}

/// The netmask of a prefix length (`24` is 255.255.255.0).
pub fn netmask(prefix_len: u8) -> Ipv4Addr {
    let zeros = 32u32.saturating_sub(u32::from(prefix_len));
    Ipv4Addr::from(u32::MAX.checked_shl(zeros).unwrap_or(0))
}

/// Every problem of `c` on the machine `system` describes.
pub fn problems(c: &Config, system: &dyn System) -> Vec<Problem> {
    let mut problems = lan_problems(c, system);
    problems.extend(wan_problems(c, system));
    problems.extend(path_problems(c, system));
    problems
}

/// The WAN port and the DNS forwarder's upstream against this machine: the port exists, a
/// static WAN's subnet does not hold the LAN address, and no upstream server is the LAN address
/// the port has (the file's `[lan] address`, when set, is checked without a machine).
pub fn wan_problems(c: &Config, system: &dyn System) -> Vec<Problem> {
    let found = || {
        let facts = system.interface(&c.lan.interface).ok().flatten()?;
        facts.ipv4.first().map(|(a, _)| *a)
    };
    let lan_address = c.lan.address.or_else(found);
    let mut problems = crate::wan::system_problems(&c.wan, lan_address, system);
    if c.lan.address.is_none()
        && let Some(lan) = lan_address
    {
        problems.extend(crate::dns::upstream_problems(&c.dns, lan));
    }
    problems
}

/// The LAN port, its address and (router mode) its subnet.
pub fn lan_problems(c: &Config, system: &dyn System) -> Vec<Problem> {
    let lan = Field::key("lan");
    let name = &c.lan.interface;
    if !crate::vpn::valid_ifname(name) {
        // Said by `validate` already.
        return Vec::new();
    }
    let facts = match system.interface(name) {
        Ok(Some(facts)) => facts,
        Ok(None) => {
            let mut names = system.interface_names();
            names.retain(|n| n != "lo");
            let there = if names.is_empty() {
                "this machine has no other network interface".to_owned()
            } else {
                format!("use one of: {}", names.join(", "))
            };
            return vec![Problem::new(
                lan.then("interface"),
                format!("{name:?} does not exist on this machine: {there}"),
            )];
        }
        Err(e) => {
            return vec![Problem::new(
                lan.then("interface"),
                format!("cannot look up {name:?}: {e}"),
            )];
        }
    };
    let found = match c.lan.address {
        Some(want) => match facts.ipv4.iter().find(|(a, _)| *a == want) {
            Some(found) => *found,
            None => {
                return vec![Problem::new(
                    lan.then("address"),
                    format!(
                        "{want} is not an address of {name}: add it to the interface or remove the setting"
                    ),
                )];
            }
        },
        None => match facts.ipv4.first() {
            Some(found) => *found,
            None => {
                return vec![Problem::new(
                    lan.then("interface"),
                    format!(
                        "{name} has no IPv4 address: give it one (ip addr add ...) or choose another port"
                    ),
                )];
            }
        },
    };
    let (address, prefix) = found;
    if c.lan.address.is_some() && c.dhcp.netmask.is_some() {
        // The file pins the subnet: `validate` checked it.
        return Vec::new();
    }
    let (mask, how) = match c.dhcp.netmask {
        Some(mask) => (
            mask,
            format!("{name}'s address {address} and [dhcp] netmask"),
        ),
        None => (
            netmask(prefix),
            format!("{name}'s address {address}/{prefix}"),
        ),
    };
    let mut problems = crate::validate::subnet_problems(c, address, mask, &how);
    problems.extend(crate::preflight::lan_overlap_problems(
        &c.preflight,
        address,
        mask,
        &how,
    ));
    problems
}

/// Files and directories the config names.
pub fn path_problems(c: &Config, system: &dyn System) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut want = |field: Field, path: &Path, kind: PathKind| {
        if let Some(message) = path_message(system, path, &kind) {
            problems.push(Problem::new(field, message));
        }
    };
    for (i, h) in c.hosts.iter().enumerate() {
        let field = Field::key("hosts").at(i);
        want(field.clone().then("kernel"), &h.kernel, PathKind::File);
        want(field.then("initrd"), &h.initrd, PathKind::File);
    }
    let ipxe = Field::key("ipxe");
    match system.path(&c.ipxe.dir) {
        PathKind::Directory => {
            let uefi = match c.ipxe.uefi_binary {
                UefiBinary::IpxeEfi => "ipxe.efi",
                UefiBinary::SnponlyEfi => "snponly.efi",
            };
            for (binary, who) in [("undionly.kpxe", "BIOS"), (uefi, "UEFI")] {
                let path = c.ipxe.dir.join(binary);
                if system.path(&path) != PathKind::File {
                    problems.push(Problem::new(
                        ipxe.clone().then("dir"),
                        format!(
                            "{} has no {binary}: {who} machines could not boot (Debian's ipxe package installs it)",
                            c.ipxe.dir.display()
                        ),
                    ));
                }
            }
        }
        kind => {
            if let Some(message) = path_message_of(&c.ipxe.dir, &kind, &PathKind::Directory) {
                problems.push(Problem::new(ipxe.clone().then("dir"), message));
            }
        }
    }
    if let Some(arm64) = &c.ipxe.arm64_efi
        && let Some(message) = path_message(system, arm64, &PathKind::File)
    {
        problems.push(Problem::new(ipxe.then("arm64_efi"), message));
    }
    match system.path(&c.state_dir) {
        PathKind::Directory => {}
        PathKind::Missing => {
            // Created at start when its parent is there.
            let parent = c.state_dir.parent().map(Path::to_path_buf);
            if let Some(parent) = parent.filter(|p| !p.as_os_str().is_empty())
                && system.path(&parent) != PathKind::Directory
            {
                problems.push(Problem::new(
                    Field::key("state_dir"),
                    format!(
                        "{} does not exist and cannot be created: {} is not a directory",
                        c.state_dir.display(),
                        parent.display()
                    ),
                ));
            }
        }
        kind => {
            if let Some(message) = path_message_of(&c.state_dir, &kind, &PathKind::Directory) {
                problems.push(Problem::new(Field::key("state_dir"), message));
            }
        }
    }
    for (i, f) in c.flakes.iter().enumerate() {
        if let Some(dir) = local_flake_dir(&f.url)
            && let Some(message) = path_message(system, &dir, &PathKind::Directory)
        {
            problems.push(Problem::new(
                Field::key("flakes").at(i).then("url"),
                message,
            ));
        }
    }
    problems
}

/// The directory of a `path:` or `git+file:` flake reference.
fn local_flake_dir(url: &str) -> Option<PathBuf> {
    let url = url.trim();
    let rest = url
        .strip_prefix("path:")
        .or_else(|| url.strip_prefix("git+file://"))
        .or_else(|| url.strip_prefix("git+file:"))?;
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    path.starts_with('/').then(|| PathBuf::from(path))
}

fn path_message(system: &dyn System, path: &Path, want: &PathKind) -> Option<String> {
    path_message_of(path, &system.path(path), want)
}

fn path_message_of(path: &Path, found: &PathKind, want: &PathKind) -> Option<String> {
    let p = path.display();
    match (found, want) {
        (found, want) if found == want => None,
        (PathKind::Missing, _) => Some(format!("{p} does not exist")),
        (PathKind::Unreadable(e), _) => Some(format!("cannot look at {p}: {e}")),
        (_, PathKind::File) => Some(format!("{p} is not a file")),
        (_, _) => Some(format!("{p} is not a directory")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A machine with the given interfaces and files.
    #[derive(Default)]
    struct Fake {
        interfaces: BTreeMap<String, InterfaceFacts>,
        paths: BTreeMap<PathBuf, PathKind>,
    }

    impl System for Fake {
        fn interface(&self, name: &str) -> Result<Option<InterfaceFacts>, String> {
            Ok(self.interfaces.get(name).cloned())
        }
        fn interface_names(&self) -> Vec<String> {
            self.interfaces.keys().cloned().collect()
        }
        fn path(&self, path: &Path) -> PathKind {
            self.paths.get(path).cloned().unwrap_or(PathKind::Missing)
        }
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.interfaces.insert(
            "lan0".into(),
            InterfaceFacts {
                ipv4: vec![(Ipv4Addr::new(10, 0, 0, 2), 24)],
            },
        );
        f.interfaces
            .insert("bare0".into(), InterfaceFacts::default());
        for dir in ["/usr/lib/ipxe", "/var/lib", "/srv/flake"] {
            f.paths.insert(dir.into(), PathKind::Directory);
        }
        for file in [
            "/usr/lib/ipxe/undionly.kpxe",
            "/usr/lib/ipxe/ipxe.efi",
            "/srv/k",
            "/srv/i",
        ] {
            f.paths.insert(file.into(), PathKind::File);
        }
        f
    }

    fn check(text: &str) -> Vec<String> {
        let c = Config::parse(text, Path::new("t.toml")).unwrap();
        problems(&c, &fake())
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    const HOST: &str = "[[hosts]]\nname = \"demo\"\nkernel = \"/srv/k\"\ninitrd = \"/srv/i\"\n";

    #[test]
    fn a_config_that_fits_this_machine_has_no_problem() {
        let text = format!(
            "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"router\"\nrange = [\"10.0.0.100\", \"10.0.0.200\"]\n\
             [[flakes]]\nurl = \"path:/srv/flake?dir=x\"\n{HOST}"
        );
        assert_eq!(check(&text), Vec::<String>::new());
    }

    #[test]
    fn the_lan_port_must_exist_and_have_an_address() {
        let p = check("[lan]\ninterface = \"eth9\"\n");
        assert_eq!(
            p,
            ["lan.interface: \"eth9\" does not exist on this machine: use one of: bare0, lan0"]
        );
        let p = check("[lan]\ninterface = \"bare0\"\n");
        assert!(p[0].contains("bare0 has no IPv4 address"), "{p:?}");
        let p = check("[lan]\ninterface = \"lan0\"\naddress = \"10.0.0.3\"\n");
        assert!(
            p[0].starts_with("lan.address: 10.0.0.3 is not an address of lan0"),
            "{p:?}"
        );
    }

    #[test]
    fn the_wan_port_must_exist_and_not_hold_the_lan() {
        let p = check("[lan]\ninterface = \"lan0\"\n[wan]\ninterface = \"wan9\"\n");
        assert_eq!(
            p,
            ["wan.interface: \"wan9\" does not exist on this machine: use one of: bare0, lan0"]
        );
        assert!(check("[lan]\ninterface = \"lan0\"\n[wan]\ninterface = \"bare0\"\n").is_empty());
        let p = check(
            "[lan]\ninterface = \"lan0\"\n[wan]\ninterface = \"bare0\"\nmode = \"static\"\naddress = \"10.0.0.9/16\"\n",
        );
        assert_eq!(
            p,
            [
                "wan.address: 10.0.0.9/16 holds the LAN address 10.0.0.2: the WAN and the LAN need different subnets"
            ]
        );
    }

    #[test]
    fn an_upstream_server_is_not_the_lan_address_the_port_has() {
        let p =
            check("[lan]\ninterface = \"lan0\"\n[dns]\nupstream = [\"9.9.9.9\", \"10.0.0.2\"]\n");
        assert_eq!(
            p,
            [
                "dns.upstream[1]: 10.0.0.2 is the appliance's LAN address: the forwarder would ask itself; name the WAN's servers"
            ]
        );
        // With `[lan] address` pinned, the file's own rules say it (once).
        let c = Config::parse_unchecked(
            "[lan]\ninterface = \"lan0\"\naddress = \"10.0.0.2\"\n[dns]\nupstream = [\"10.0.0.2\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert!(wan_problems(&c, &fake()).is_empty());
        assert_eq!(crate::problems(&c, None).len(), 1);
    }

    #[test]
    fn router_mode_ranges_reservations_and_router_lie_in_the_subnet() {
        let p = check(
            "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"router\"\nrange = [\"10.0.0.100\", \"10.0.1.20\"]\n\
             ranges = [[\"192.168.1.10\", \"192.168.1.20\"], [\"10.0.0.30\", \"10.0.0.40\"]]\nrouter = \"10.9.0.1\"\n\
             [[dhcp.reservations]]\nmac = \"52:54:00:00:00:01\"\naddress = \"10.0.2.5\"\n",
        );
        let fields: Vec<&str> = p.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "dhcp.range",
                "dhcp.ranges[0]",
                "dhcp.reservations[0].address",
                "dhcp.router"
            ],
            "{p:?}"
        );
        assert!(
            p[0].contains("not inside the LAN's subnet 10.0.0.0/24 (lan0's address 10.0.0.2/24)"),
            "{p:?}"
        );
        // Proxy mode hands out no address: its ranges are not used.
        let p = check(
            "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"proxy\"\nrange = [\"192.168.1.10\", \"192.168.1.20\"]\n",
        );
        assert!(p.is_empty(), "{p:?}");
        // [dhcp] netmask wins over the interface's prefix.
        let p = check(
            "[lan]\ninterface = \"lan0\"\n[dhcp]\nmode = \"router\"\nnetmask = \"255.255.0.0\"\nrange = [\"10.0.5.1\", \"10.0.5.9\"]\n",
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn missing_files_and_directories_are_named() {
        // `state_dir` is a top-level key: before the first table.
        let text = "state_dir = \"/nowhere/flakeboot\"\n[lan]\ninterface = \"lan0\"\n\
             [ipxe]\narm64_efi = \"/srv/arm.efi\"\nuefi_binary = \"snponly.efi\"\n\
             [[flakes]]\nurl = \"git+file:///srv/gone\"\n\
             [[hosts]]\nname = \"demo\"\nkernel = \"/srv/k\"\ninitrd = \"/srv\"\n";
        let mut f = fake();
        f.paths.insert("/srv".into(), PathKind::Directory);
        let c = Config::parse(text, Path::new("t.toml")).unwrap();
        let p: Vec<String> = problems(&c, &f).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            p,
            [
                "hosts[0].initrd: /srv is not a file",
                "ipxe.dir: /usr/lib/ipxe has no snponly.efi: UEFI machines could not boot (Debian's ipxe package installs it)",
                "ipxe.arm64_efi: /srv/arm.efi does not exist",
                "state_dir: /nowhere/flakeboot does not exist and cannot be created: /nowhere is not a directory",
                "flakes[0].url: /srv/gone does not exist",
            ]
        );
    }
}
