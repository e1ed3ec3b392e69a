use std::time::Duration;

use serde::Serialize;

use crate::file::{BootFile, FileKind};

/// What a machine boots now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BootSpec {
    /// The machine is assigned to a host: boot it directly.
    Host(HostBoot),
    /// Unassigned: show a menu of every bootable host.
    Menu(Menu),
    /// Set to its local disk: leave iPXE (after telling the appliance), so the firmware boots
    /// the next device in its boot order.
    Local,
}

/// The host value that means "the local disk" (a machine's host, the menu's default).
pub const LOCAL_DISK: &str = "local";

/// Everything needed to boot one host: its files and its full kernel command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostBoot {
    pub host: String,
    /// Generation label ("static" for hosts from the config file).
    pub version: String,
    /// Kernel command line, without `initrd=` (the script renderer adds what iPXE needs).
    pub cmdline: String,
}

impl HostBoot {
    pub fn file(&self, kind: FileKind) -> BootFile {
        BootFile::Host {
            host: self.host.clone(),
            version: self.version.clone(),
            kind,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MenuEntry {
    pub boot: HostBoot,
    /// One line shown next to the host's name.
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Menu {
    pub entries: Vec<MenuEntry>,
    /// The entry chosen when the timeout runs out: a host name, or `None` for local disk.
    pub default: Option<String>,
    pub timeout: Duration,
}
