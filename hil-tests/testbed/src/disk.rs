//! A local disk for a client VM that proves the firmware booted it: its MBR boot sector writes
//! one line to COM1 (port 0x3f8, raw `out` instructions, no BIOS call) and halts. Made here, 512
//! bytes ending 0x55 0xAA, so no image needs to be downloaded or kept.

use std::io;
use std::path::Path;

/// 16-bit real-mode code at 0000:7C00: `xor ax,ax; mov ds,ax; cld; mov dx,0x3f8;
/// mov si,MSG; next: lodsb; test al,al; jz halt; out dx,al; jmp next; halt: cli; hlt;
/// jmp halt`, the message right after it (MSG = 0x7C00 + 23).
const CODE: [u8; 23] = [
    0x31, 0xC0, // xor ax, ax
    0x8E, 0xD8, // mov ds, ax
    0xFC, // cld
    0xBA, 0xF8, 0x03, // mov dx, 0x3f8
    0xBE, 0x17, 0x7C, // mov si, 0x7c17 (the message)
    0xAC, // next: lodsb
    0x84, 0xC0, // test al, al
    0x74, 0x03, // jz halt
    0xEE, // out dx, al
    0xEB, 0xF8, // jmp next
    0xFA, // halt: cli
    0xF4, // hlt
    0xEB, 0xFD, // jmp hlt
];

/// The boot sector that prints `line` (then CR LF) on COM1 and halts; `None` when the line does
/// not fit (at most 480 bytes, no NUL).
pub fn marker_boot_sector(line: &str) -> Option<[u8; 512]> {
    let text = line.as_bytes();
    if text.contains(&0) || CODE.len() + text.len() + 3 > 510 {
        return None;
    }
    let mut sector = [0u8; 512];
    sector[..CODE.len()].copy_from_slice(&CODE);
    let msg = &mut sector[CODE.len()..];
    msg[..text.len()].copy_from_slice(text);
    msg[text.len()..text.len() + 2].copy_from_slice(b"\r\n");
    sector[510] = 0x55;
    sector[511] = 0xAA;
    Some(sector)
}

/// Writes a 1 MiB raw disk image at `path` whose boot sector prints `line` on COM1.
pub fn marker_disk(path: &Path, line: &str) -> io::Result<()> {
    let sector = marker_boot_sector(line)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "marker line too long"))?;
    let mut image = vec![0u8; 1024 * 1024];
    image[..512].copy_from_slice(&sector);
    std::fs::write(path, image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sector_is_bootable_and_points_at_its_message() {
        let s = marker_boot_sector("FLAKEBOOT-LOCAL-DISK t:x").unwrap();
        assert_eq!(s[510..], [0x55, 0xAA]);
        // `mov si, imm16` loads the message's address.
        let msg = usize::from(u16::from_le_bytes([s[9], s[10]])) - 0x7C00;
        assert_eq!(msg, CODE.len());
        assert_eq!(&s[msg..msg + 26], b"FLAKEBOOT-LOCAL-DISK t:x\r\n");
        assert_eq!(s[msg + 26], 0, "NUL-terminated");
        assert!(marker_boot_sector(&"x".repeat(600)).is_none());
        assert!(marker_boot_sector("a\0b").is_none());
    }
}
