//! An appliance image laid out in a temporary directory for the firmware page and API: slot b
//! running with a try left, slot a blessed, a development build, Secure Boot off, and a keys
//! directory without a key, so that every bundle is refused before anything is written (the real
//! install is the image test's).

use std::path::Path;

use flakeboot_appliance::firmware::{ImagePaths, boot_loader};

pub fn firmware_image(root: &Path) -> ImagePaths {
    let paths = ImagePaths::in_dir(root);
    std::fs::create_dir_all(&paths.keys).unwrap();
    std::fs::create_dir_all(paths.esp.join("EFI/Linux")).unwrap();
    std::fs::write(&paths.board, "qemu-x86_64\n").unwrap();
    std::fs::write(&paths.version, "0.3.0\n").unwrap();
    std::fs::write(&paths.development, "development build: test key\n").unwrap();
    std::fs::write(&paths.cmdline, "flakeboot.slot=b\n").unwrap();
    // efivarfs's SecureBoot: attributes, then 0: the firmware does not enforce it.
    std::fs::create_dir_all(&paths.efivars).unwrap();
    let secure_boot = boot_loader::variable(&paths.efivars, "SecureBoot");
    std::fs::write(secure_boot, [6, 0, 0, 0, 0]).unwrap();
    for name in ["flakeboot-1-a.efi", "flakeboot-2-b+2-1.efi"] {
        std::fs::write(paths.esp.join("EFI/Linux").join(name), b"MZ").unwrap();
    }
    paths
}
