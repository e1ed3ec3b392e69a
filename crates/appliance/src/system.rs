//! This machine as the config's validation sees it ([`flakeboot_config::System`]): interfaces
//! from the kernel over netlink (`flakeboot-netif`, never `/sys`), paths from the file system.

use std::net::IpAddr;
use std::path::Path;

use flakeboot_config::{InterfaceFacts, PathKind, System};

/// The machine the daemon (or `check-config`) runs on, in its network namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveSystem;

impl System for LiveSystem {
    fn interface(&self, name: &str) -> Result<Option<InterfaceFacts>, String> {
        let found = flakeboot_netif::interface(name).map_err(|e| e.to_string())?;
        Ok(found.map(|i| InterfaceFacts {
            ipv4: i
                .addresses
                .iter()
                .filter_map(|a| match a.address {
                    IpAddr::V4(v4) => Some((v4, a.prefix_len)),
                    IpAddr::V6(_) => None,
                })
                .collect(),
        }))
    }

    fn interface_names(&self) -> Vec<String> {
        crate::lan::list_interfaces()
    }

    fn path(&self, path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => PathKind::File,
            Ok(m) if m.is_dir() => PathKind::Directory,
            Ok(_) => PathKind::Other,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PathKind::Missing,
            Err(e) => PathKind::Unreadable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_this_files_directory_are_there() {
        let lo = LiveSystem.interface("lo").unwrap().unwrap();
        assert!(
            lo.ipv4.contains(&(std::net::Ipv4Addr::LOCALHOST, 8)),
            "{lo:?}"
        );
        assert_eq!(LiveSystem.interface("nosuch-if0").unwrap(), None);
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(LiveSystem.path(here), PathKind::Directory);
        assert_eq!(LiveSystem.path(&here.join("Cargo.toml")), PathKind::File);
        assert_eq!(LiveSystem.path(&here.join("nosuch")), PathKind::Missing);
    }
}
