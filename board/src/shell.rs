//! The board as shell variable assignments, for `image/build.sh` (`eval "$(flakeboot-board shell FILE)"`).

use crate::{Arch, Board, ClientFirmware};

/// Renders `FB_*=value` lines, every value single-quoted.
pub fn to_shell(board: &Board) -> String {
    let arch = match board.arch {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "aarch64",
    };
    let firmware = match board.firmware {
        ClientFirmware::Uefi => "uefi",
        ClientFirmware::Bios => "bios",
        ClientFirmware::UBoot => "u-boot",
    };
    let d = board.disk;
    let vars = [
        ("FB_BOARD", board.name.clone()),
        ("FB_ARCH", arch.to_owned()),
        ("FB_FIRMWARE", firmware.to_owned()),
        ("FB_BUILT", board.built.to_string()),
        ("FB_CONSOLE", board.console.device.clone()),
        ("FB_LAN", board.ports.lan.clone()),
        ("FB_WAN", board.ports.wan.clone().unwrap_or_default()),
        ("FB_CMDLINE", board.cmdline()),
        ("FB_ESP_MIB", d.esp_mib.to_string()),
        ("FB_ROOT_MIB", d.root_mib.to_string()),
        ("FB_VERITY_MIB", d.verity_mib.to_string()),
        ("FB_DATA_MIB", d.data_mib.to_string()),
    ];
    let mut out = String::new();
    for (name, value) in &vars {
        out.push_str(name);
        out.push('=');
        out.push_str(&quote(value));
        out.push('\n');
    }
    out
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_every_value() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn qemu_board_renders_its_layout() {
        let board = Board::parse(
            include_str!("../qemu-x86_64.toml"),
            std::path::Path::new("qemu-x86_64.toml"),
        )
        .unwrap();
        let sh = to_shell(&board);
        assert!(sh.contains("FB_LAN='eth0'\n"), "{sh}");
        assert!(sh.contains("FB_ROOT_MIB='320'\n"), "{sh}");
        assert!(sh.contains("FB_DATA_MIB='320'\n"), "{sh}");
        assert!(
            sh.contains(
                "FB_CMDLINE='console=ttyS0,115200 net.ifnames=0 kvm.enable_virt_at_load=0'\n"
            ),
            "{sh}"
        );
    }
}
