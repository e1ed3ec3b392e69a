use serde::{Deserialize, Serialize};

/// The iPXE binaries flakeboot hands to firmware that is not iPXE yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpxeBinary {
    /// BIOS PXE: iPXE over the ROM's UNDI driver.
    Undionly,
    /// x86-64 UEFI: iPXE with its own drivers.
    IpxeEfi,
    /// x86-64 UEFI: iPXE over the firmware's SNP driver.
    SnponlyEfi,
    /// ARM64 UEFI (only when configured: Debian ships no arm64 build on amd64).
    Arm64Efi,
}

impl IpxeBinary {
    pub const ALL: [IpxeBinary; 4] = [
        IpxeBinary::Undionly,
        IpxeBinary::IpxeEfi,
        IpxeBinary::SnponlyEfi,
        IpxeBinary::Arm64Efi,
    ];

    /// The name clients ask for over TFTP or HTTP.
    pub fn file_name(self) -> &'static str {
        match self {
            IpxeBinary::Undionly => "undionly.kpxe",
            IpxeBinary::IpxeEfi => "ipxe.efi",
            IpxeBinary::SnponlyEfi => "snponly.efi",
            IpxeBinary::Arm64Efi => "ipxe-arm64.efi",
        }
    }

    /// The binary with exactly this name (no path, no case folding).
    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.file_name() == name)
    }
}

/// Which of a host's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Kernel,
    Initrd,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Kernel => "kernel",
            FileKind::Initrd => "initrd",
        }
    }
}

/// A file the boot services may serve. Anything a client asks for is first mapped to one of
/// these (or refused); only then does the catalogue say where it lives on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BootFile {
    Ipxe(IpxeBinary),
    /// A host's kernel or initrd. `version` names the generation ("static" for config hosts), so
    /// a machine that fetched a script keeps getting files of that same generation.
    Host {
        host: String,
        version: String,
        kind: FileKind,
    },
}

impl BootFile {
    /// The HTTP path under which this file is served.
    pub fn http_path(&self) -> String {
        match self {
            BootFile::Ipxe(b) => format!("/ipxe/{}", b.file_name()),
            BootFile::Host {
                host,
                version,
                kind,
            } => format!("/boot/{host}/{version}/{}", kind.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipxe_names_round_trip_and_nothing_else_matches() {
        for b in IpxeBinary::ALL {
            assert_eq!(IpxeBinary::from_file_name(b.file_name()), Some(b));
        }
        for bad in [
            "",
            "UNDIONLY.KPXE",
            "/undionly.kpxe",
            "../ipxe.efi",
            "ipxe.efi\0",
        ] {
            assert_eq!(IpxeBinary::from_file_name(bad), None, "{bad:?}");
        }
    }
}
