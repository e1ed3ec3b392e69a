//! A local disk for a client VM that proves the firmware booted it by writing one line to COM1
//! (port 0x3f8, raw `out` instructions, no firmware call) and halting: for BIOS an MBR boot
//! sector (512 bytes ending 0x55 0xAA), for UEFI a GPT disk whose EFI system partition holds
//! `\EFI\BOOT\BOOTX64.EFI`, a PE32+ application of a few dozen instructions. Both are made
//! here, so no image needs to be downloaded or kept.

use std::io;
use std::path::Path;
use std::process::Command;

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

/// x86-64 code of the EFI application, position independent: `lea rsi, [rip + 20]` (the
/// message right after the code); `mov dx, 0x3f8; next: lodsb; test al, al; jz halt;
/// out dx, al; jmp next; halt: cli; hlt; jmp halt`.
const EFI_CODE: [u8; 27] = [
    0x48, 0x8D, 0x35, 0x14, 0x00, 0x00, 0x00, // lea rsi, [rip + 20]
    0x66, 0xBA, 0xF8, 0x03, // mov dx, 0x3f8
    0xAC, // next: lodsb
    0x84, 0xC0, // test al, al
    0x74, 0x03, // jz halt
    0xEE, // out dx, al
    0xEB, 0xF8, // jmp next
    0xFA, // halt: cli
    0xF4, // hlt
    0xEB, 0xFD, // jmp hlt
    0x90, 0x90, 0x90, 0x90, // padding up to the message
];

/// File offsets and RVAs of the application's one section.
const EFI_HEADERS: usize = 0x200;
const EFI_SECTION_RVA: u32 = 0x1000;

/// A PE32+ EFI application (subsystem 10) that prints `line` (then CR LF) on COM1 and halts;
/// `None` when the line does not fit (at most 400 bytes, no NUL). No relocations: the code
/// addresses its message relative to RIP, wherever the firmware loads it.
pub fn marker_efi_app(line: &str) -> Option<Vec<u8>> {
    let text = line.as_bytes();
    if text.contains(&0) || text.len() > 400 {
        return None;
    }
    let mut body = EFI_CODE.to_vec();
    body.extend_from_slice(text);
    body.extend_from_slice(b"\r\n\0");
    body.resize(0x200, 0);
    let mut pe = vec![0u8; EFI_HEADERS];
    let put = |pe: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        pe[at..at + bytes.len()].copy_from_slice(bytes);
    };
    // DOS header: "MZ" and where the PE header is.
    put(&mut pe, 0, b"MZ");
    put(&mut pe, 0x3C, &0x40u32.to_le_bytes());
    // PE signature and COFF header: x86-64, one section, a PE32+ optional header of 240
    // bytes, an executable image (relocations not stripped: the loader may move it).
    put(&mut pe, 0x40, b"PE\0\0");
    put(&mut pe, 0x44, &0x8664u16.to_le_bytes());
    put(&mut pe, 0x46, &1u16.to_le_bytes());
    put(&mut pe, 0x54, &240u16.to_le_bytes());
    put(&mut pe, 0x56, &0x0022u16.to_le_bytes());
    // Optional header (PE32+).
    let opt = 0x58;
    put(&mut pe, opt, &0x20Bu16.to_le_bytes());
    put(&mut pe, opt + 4, &0x200u32.to_le_bytes()); // SizeOfCode
    put(&mut pe, opt + 16, &EFI_SECTION_RVA.to_le_bytes()); // AddressOfEntryPoint
    put(&mut pe, opt + 20, &EFI_SECTION_RVA.to_le_bytes()); // BaseOfCode
    put(&mut pe, opt + 24, &0x1000_0000u64.to_le_bytes()); // ImageBase
    put(&mut pe, opt + 32, &0x1000u32.to_le_bytes()); // SectionAlignment
    put(&mut pe, opt + 36, &0x200u32.to_le_bytes()); // FileAlignment
    put(&mut pe, opt + 56, &0x2000u32.to_le_bytes()); // SizeOfImage
    put(&mut pe, opt + 60, &(EFI_HEADERS as u32).to_le_bytes()); // SizeOfHeaders
    put(&mut pe, opt + 68, &10u16.to_le_bytes()); // Subsystem: EFI application
    put(&mut pe, opt + 72, &0x10000u64.to_le_bytes()); // SizeOfStackReserve
    put(&mut pe, opt + 80, &0x10000u64.to_le_bytes()); // SizeOfStackCommit
    put(&mut pe, opt + 108, &16u32.to_le_bytes()); // NumberOfRvaAndSizes (all empty)
    // The section: .text, 0x200 bytes at file offset 0x200, mapped at RVA 0x1000, code,
    // readable and executable.
    let sec = opt + 240;
    put(&mut pe, sec, b".text\0\0\0");
    put(&mut pe, sec + 8, &0x200u32.to_le_bytes()); // VirtualSize
    put(&mut pe, sec + 12, &EFI_SECTION_RVA.to_le_bytes());
    put(&mut pe, sec + 16, &0x200u32.to_le_bytes()); // SizeOfRawData
    put(&mut pe, sec + 20, &(EFI_HEADERS as u32).to_le_bytes()); // PointerToRawData
    put(&mut pe, sec + 36, &0x6000_0020u32.to_le_bytes());
    pe.extend_from_slice(&body);
    Some(pe)
}

/// Writes a 40 MiB GPT disk image at `path` with one EFI system partition (FAT) holding
/// `\EFI\BOOT\BOOTX64.EFI`, the [`marker_efi_app`] printing `line`: the removable-media path
/// UEFI firmware boots from a disk without a boot entry of its own. Uses sfdisk, mkfs.fat and
/// mtools.
pub fn marker_efi_disk(path: &Path, line: &str) -> io::Result<()> {
    let app = marker_efi_app(line)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "marker line too long"))?;
    let file = std::fs::File::create(path)?;
    file.set_len(40 << 20)?;
    drop(file);
    let run = |cmd: &mut Command, stdin: Option<&str>| -> io::Result<()> {
        use std::io::Write as _;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    };
    // The partition from 1 MiB to the end, type "EFI System".
    run(
        Command::new("sfdisk")
            .args(["--quiet", "--label", "gpt"])
            .arg(path),
        Some("start=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"),
    )?;
    let fs = format!("{}@@1M", path.display());
    run(
        Command::new("mkfs.fat")
            .args(["-F", "16", "--offset", "2048", "-n", "MARKER"])
            .arg(path)
            .arg("32768"),
        None,
    )?;
    run(
        Command::new("mmd").args(["-i", &fs, "::EFI", "::EFI/BOOT"]),
        None,
    )?;
    let app_path = path.with_extension("BOOTX64.EFI");
    std::fs::write(&app_path, app)?;
    let copied = run(
        Command::new("mcopy")
            .args(["-i", &fs])
            .arg(&app_path)
            .arg("::EFI/BOOT/BOOTX64.EFI"),
        None,
    );
    std::fs::remove_file(&app_path)?;
    copied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_efi_app_is_a_pe32_plus_efi_application_pointing_at_its_message() {
        let pe = marker_efi_app("FLAKEBOOT-LOCAL-DISK t:x").unwrap();
        assert_eq!(pe.len(), 0x400);
        assert_eq!(&pe[..2], b"MZ");
        assert_eq!(&pe[0x40..0x44], b"PE\0\0");
        assert_eq!(u16::from_le_bytes([pe[0x58], pe[0x59]]), 0x20B);
        assert_eq!(u16::from_le_bytes([pe[0x58 + 68], pe[0x58 + 69]]), 10);
        // The entry point is the section's first byte; `lea rsi, [rip + d]` ends 7 bytes in.
        let code = &pe[EFI_HEADERS..];
        let d = i32::from_le_bytes([code[3], code[4], code[5], code[6]]);
        let msg = usize::try_from(7 + d).unwrap();
        assert_eq!(msg, EFI_CODE.len());
        assert_eq!(&code[msg..msg + 26], b"FLAKEBOOT-LOCAL-DISK t:x\r\n");
        assert_eq!(code[msg + 26], 0, "NUL-terminated");
        assert!(marker_efi_app(&"x".repeat(500)).is_none());
        assert!(marker_efi_app("a\0b").is_none());
    }

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
