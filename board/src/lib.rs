//! Board definitions (`board/<name>.toml`): what the image build needs to know about a piece of
//! hardware: CPU architecture, boot firmware, console, LAN/WAN port names, disk layout and
//! kernel command line additions. Unknown keys are errors; `image/build.sh` reads a board
//! through this crate's binary (`flakeboot-board shell FILE`).

pub mod delta;
mod error;
mod shell;
pub mod signing;
pub mod uki;
pub mod update;

pub use error::BoardError;

/// Bytes (a digest) as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
pub use shell::to_shell;

use std::path::Path;

use serde::Deserialize;

/// One board definition file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// The board's name; must equal the file name without `.toml`.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// CPU architecture.
    pub arch: Arch,
    /// How the board boots.
    pub firmware: ClientFirmware,
    /// Whether `image/build.sh` can build this board yet.
    pub built: bool,
    /// The console the kernel and the address banner write to.
    pub console: Console,
    /// Network port names.
    pub ports: Ports,
    /// Partition sizes.
    pub disk: DiskLayout,
    /// Kernel command line additions.
    #[serde(default)]
    pub kernel: Kernel,
}

/// CPU architecture of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 64-bit x86.
    X86_64,
    /// 64-bit ARM.
    Aarch64,
}

/// Boot firmware of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientFirmware {
    /// UEFI: systemd-boot on a FAT ESP loads one UKI per slot.
    Uefi,
    /// Legacy PC BIOS.
    Bios,
    /// U-Boot (ARM boards).
    UBoot,
}

/// The serial or screen console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// Kernel device name (`ttyS0`, `ttyAMA0`).
    pub device: String,
    /// Serial speed.
    pub baud: u32,
    /// More consoles (`tty0` for a screen); the last `console=` on the command line is primary,
    /// so `device` is put last.
    #[serde(default)]
    pub extra: Vec<String>,
}

/// Network ports by kernel interface name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// The LAN port flakeboot serves.
    pub lan: String,
    /// The upstream port (router mode), if the board has one.
    pub wan: Option<String>,
}

/// Partition sizes in MiB (GPT: esp | root-a | verity-a | root-b | verity-b | data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskLayout {
    /// EFI system partition (or the boot FAT partition on U-Boot boards).
    pub esp_mib: u32,
    /// Each root slot (squashfs).
    pub root_mib: u32,
    /// Each slot's dm-verity hash partition.
    pub verity_mib: u32,
    /// The data partition in the image (grown to the disk at first boot).
    pub data_mib: u32,
}

/// Kernel command line additions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// Extra parameters, one per item.
    #[serde(default)]
    pub cmdline: Vec<String>,
}

impl Board {
    /// Reads, parses and validates a board file.
    pub fn load(path: &Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|source| BoardError::Read {
            path: path.to_owned(),
            source,
        })?;
        Board::parse(&text, path)
    }

    /// Parses and validates board TOML; `path` names the file in errors and must be
    /// `<name>.toml`.
    pub fn parse(text: &str, path: &Path) -> Result<Board, BoardError> {
        let board: Board = toml::from_str(text).map_err(|source| BoardError::Parse {
            path: path.to_owned(),
            source,
        })?;
        board.validate(path)?;
        Ok(board)
    }

    /// The kernel command line the board adds (consoles first, then `[kernel] cmdline`).
    pub fn cmdline(&self) -> String {
        let mut parts: Vec<String> = self
            .console
            .extra
            .iter()
            .map(|c| format!("console={c}"))
            .collect();
        parts.push(format!(
            "console={},{}",
            self.console.device, self.console.baud
        ));
        parts.extend(self.kernel.cmdline.iter().cloned());
        parts.join(" ")
    }

    fn validate(&self, path: &Path) -> Result<(), BoardError> {
        let invalid = |field, reason: &str| BoardError::Invalid {
            path: path.to_owned(),
            field,
            reason: reason.to_owned(),
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if self.name != stem {
            return Err(invalid(
                "name",
                &format!("must equal the file name {stem:?}"),
            ));
        }
        if !is_word(&self.name) {
            return Err(invalid("name", "only a-z, 0-9, '-', '_' and '.'"));
        }
        if self.arch == Arch::Aarch64 && self.firmware == ClientFirmware::Bios {
            return Err(invalid("firmware", "an aarch64 board has no PC BIOS"));
        }
        if self.built && (self.arch, self.firmware) != (Arch::X86_64, ClientFirmware::Uefi) {
            return Err(invalid(
                "built",
                "image/build.sh builds x86_64 UEFI boards only so far",
            ));
        }
        for (field, name) in [
            ("ports.lan", Some(&self.ports.lan)),
            ("ports.wan", self.ports.wan.as_ref()),
        ] {
            if let Some(name) = name
                && !is_interface_name(name)
            {
                return Err(invalid(
                    field,
                    "not a kernel interface name (1-15 chars, no '/', ':' or space)",
                ));
            }
        }
        if self.ports.wan.as_ref() == Some(&self.ports.lan) {
            return Err(invalid("ports.wan", "must differ from ports.lan"));
        }
        for console in std::iter::once(&self.console.device).chain(&self.console.extra) {
            if !is_word(console) {
                return Err(invalid("console", "a device name such as ttyS0"));
            }
        }
        let d = self.disk;
        for (field, mib, min) in [
            ("disk.esp_mib", d.esp_mib, 33),
            ("disk.root_mib", d.root_mib, 64),
            ("disk.verity_mib", d.verity_mib, 1),
            ("disk.data_mib", d.data_mib, 64),
        ] {
            if mib < min {
                return Err(invalid(field, &format!("at least {min} MiB")));
            }
        }
        if u64::from(d.verity_mib) * 64 < u64::from(d.root_mib) {
            return Err(invalid(
                "disk.verity_mib",
                "too small for root_mib's hash tree (needs 1/64)",
            ));
        }
        for arg in &self.kernel.cmdline {
            if arg.is_empty()
                || arg
                    .chars()
                    .any(|c| c.is_whitespace() || c == '\'' || c == '"')
            {
                return Err(invalid(
                    "kernel.cmdline",
                    "one parameter per item, no spaces or quotes",
                ));
            }
        }
        Ok(())
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_uppercase()
                || c.is_ascii_digit()
                || "-_.".contains(c)
        })
}

fn is_interface_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = include_str!("../qemu-x86_64.toml");

    fn parse(text: &str) -> Result<Board, BoardError> {
        Board::parse(text, Path::new("board/qemu-x86_64.toml"))
    }

    #[test]
    fn qemu_board_cmdline_puts_the_serial_console_last() {
        let b = parse(QEMU).unwrap();
        assert_eq!(
            b.cmdline(),
            "console=ttyS0,115200 net.ifnames=0 kvm.enable_virt_at_load=0"
        );
        assert_eq!(b.ports.lan, "eth0");
        assert_eq!(b.firmware, ClientFirmware::Uefi);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = parse(&QEMU.replace("[disk]", "[disk]\nswap_mib = 4")).unwrap_err();
        assert!(matches!(err, BoardError::Parse { .. }));
        assert!(err.to_string().contains("swap_mib"), "{err}");
    }

    #[test]
    fn name_must_match_the_file() {
        let err = Board::parse(QEMU, Path::new("board/other.toml")).unwrap_err();
        assert!(
            matches!(err, BoardError::Invalid { field: "name", .. }),
            "{err}"
        );
    }

    #[test]
    fn impossible_boards_are_rejected() {
        let cases = [
            (
                QEMU.replace("firmware = \"uefi\"", "firmware = \"bios\"")
                    .replace("arch = \"x86_64\"", "arch = \"aarch64\""),
                "firmware",
            ),
            (
                QEMU.replace("arch = \"x86_64\"", "arch = \"aarch64\""),
                "built",
            ),
            (QEMU.replace("lan = \"eth0\"", "lan = \"a/b\""), "ports.lan"),
            (
                QEMU.replace("lan = \"eth0\"", "lan = \"eth0\"\nwan = \"eth0\""),
                "ports.wan",
            ),
            (
                QEMU.replace("verity_mib = 16", "verity_mib = 1"),
                "disk.verity_mib",
            ),
            (
                QEMU.replace("root_mib = 320", "root_mib = 8"),
                "disk.root_mib",
            ),
            (
                QEMU.replace("\"net.ifnames=0\"", "\"a b\""),
                "kernel.cmdline",
            ),
        ];
        for (text, want) in cases {
            match parse(&text) {
                Err(BoardError::Invalid { field, .. }) => assert_eq!(field, want),
                other => panic!("{want}: expected Invalid, got {other:?}"),
            }
        }
    }
}
