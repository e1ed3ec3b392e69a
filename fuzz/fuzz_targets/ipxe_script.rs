//! iPXE script rendering from arbitrary catalogue content: host names, versions, kernel command
//! lines, menu descriptions and defaults, the base URL and the client's MAC.
//!
//! The renderer may refuse a host (an error) or leave a menu entry out; it must never panic, and
//! anything it renders must be a script iPXE reads as intended, whatever the input:
//! - ASCII only, no control character but the line ends, ending with a newline;
//! - every line is empty, a comment, a label, or one of the commands the renderer writes
//!   (`kernel initrd boot menu item choose goto echo imgfetch imgfree shell exit`), and no line can be
//!   read as two commands: the tokens `||`, `&&`, `;` and `#...` appear only where the renderer
//!   puts them (`|| goto failed`, `|| goto shell`, the local entry's `|| goto local-exit`, comment lines), and `$` only in
//!   `${selected}`;
//! - every `goto`, menu item and default names a label of the script, and every kernel and
//!   initrd URL is under the base URL.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use arbitrary::Arbitrary;
use flakeboot_catalogue::{BootSpec, HostBoot, MacAddr, Menu, MenuEntry};
use flakeboot_httpboot::script::{ScriptContext, render};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "http://10.77.0.1:8080";
const HOSTS: [&str; 4] = ["demo", "web-01", "a", "X_9"];
const VERSIONS: [&str; 3] = ["static", "flake.g12", "2026-11-22.3"];
const CMDLINES: [&str; 3] = [
    "",
    "console=ttyS0 panic=-1",
    "init=/nix/store/abc/init a|b x#y",
];

/// A value from a list of good ones (to reach the rendering paths), or anything at all.
#[derive(Debug, Arbitrary)]
enum Text {
    Good(u8),
    Any(String),
}

impl Text {
    fn get(&self, good: &[&str]) -> String {
        match self {
            Text::Good(i) => good[usize::from(*i) % good.len()].to_owned(),
            Text::Any(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Host {
    host: Text,
    version: Text,
    cmdline: Text,
    description: String,
}

#[derive(Debug, Arbitrary)]
struct Input {
    base_url: Option<String>,
    mac: Option<[u8; 6]>,
    menu: bool,
    hosts: Vec<Host>,
    default: Option<Text>,
    timeout_ms: u32,
}

const COMMANDS: [&str; 12] = [
    "kernel", "initrd", "boot", "menu", "item", "choose", "goto", "echo", "imgfetch", "imgfree",
    "shell", "exit",
];

fn check_script(script: &str, base_url: &str) {
    assert!(script.starts_with("#!ipxe\n"), "no #!ipxe header");
    assert!(script.ends_with('\n'));
    assert!(script.is_ascii(), "non-ASCII in the script");
    assert!(
        !script.chars().any(|c| c.is_control() && c != '\n'),
        "a control character in the script"
    );
    let labels: BTreeSet<&str> = script.lines().filter_map(|l| l.strip_prefix(':')).collect();
    for label in &labels {
        assert!(
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "label {label:?}"
        );
    }
    for line in script.lines() {
        if line.is_empty() || line.starts_with(':') || line == "#!ipxe" {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(comment.starts_with("flakeboot: "), "comment {line:?}");
            continue;
        }
        let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
        let command = tokens[0];
        assert!(COMMANDS.contains(&command), "unknown command in {line:?}");
        // Where the command ends: at `||`, which must be the renderer's own fallback.
        let end = tokens
            .iter()
            .position(|t| *t == "||")
            .unwrap_or(tokens.len());
        if end < tokens.len() {
            assert!(
                tokens[end..] == ["||", "goto", "failed"]
                    || tokens[end..] == ["||", "goto", "shell"]
                    || (command == "imgfetch" && tokens[end..] == ["||", "goto", "local-exit"]),
                "a terminator in {line:?}"
            );
        }
        for t in &tokens[1..end] {
            assert!(
                !matches!(*t, "&&" | ";") && !t.starts_with('#'),
                "a terminator in {line:?}"
            );
        }
        if line.contains('$') {
            assert!(
                line == "goto ${selected}"
                    || line
                        == "echo flakeboot: ${selected} failed (see the boot timeline on the appliance)",
                "$ in {line:?}"
            );
        }
        match command {
            "goto" if tokens[1] != "${selected}" => {
                assert!(labels.contains(tokens[1]), "goto to no label: {line:?}")
            }
            "item" if tokens[1] != "--gap" => {
                assert!(labels.contains(tokens[1]), "item of no label: {line:?}")
            }
            "choose" => {
                let default = tokens
                    .iter()
                    .position(|t| *t == "--default")
                    .map(|i| tokens[i + 1]);
                assert!(
                    default.is_some_and(|d| labels.contains(d)),
                    "default: {line:?}"
                );
            }
            "kernel" | "initrd" => {
                assert!(
                    tokens[1].starts_with(&format!("{base_url}/boot/")),
                    "URL in {line:?}"
                )
            }
            // The local entry's report to the appliance: `imgfetch --name local-disk <URL>`.
            "imgfetch" => {
                assert_eq!(tokens[1..3], ["--name", "local-disk"], "{line:?}");
                assert!(
                    tokens[3].starts_with(&format!("{base_url}/boot/local")),
                    "URL in {line:?}"
                )
            }
            _ => {}
        }
    }
}

fuzz_target!(|input: Input| {
    let base_url = input.base_url.as_deref().unwrap_or(BASE);
    let ctx = ScriptContext {
        base_url,
        mac: input.mac.map(MacAddr),
    };
    let boots: Vec<(HostBoot, String)> = input
        .hosts
        .iter()
        .take(16)
        .map(|h| {
            let boot = HostBoot {
                host: h.host.get(&HOSTS),
                version: h.version.get(&VERSIONS),
                cmdline: h.cmdline.get(&CMDLINES),
            };
            (boot, h.description.clone())
        })
        .collect();
    let spec = if input.menu || boots.is_empty() {
        BootSpec::Menu(Menu {
            entries: boots
                .into_iter()
                .map(|(boot, description)| MenuEntry { boot, description })
                .collect(),
            default: input.default.as_ref().map(|d| d.get(&HOSTS)),
            timeout: Duration::from_millis(u64::from(input.timeout_ms)),
        })
    } else {
        BootSpec::Host(boots[0].0.clone())
    };
    let Ok(rendered) = render(&spec, &ctx) else {
        return;
    };
    check_script(&rendered.script, base_url);
    assert!(rendered.summary.is_ascii() && !rendered.summary.contains('\n'));
    assert_eq!(
        render(&spec, &ctx).ok(),
        Some(rendered),
        "rendering is not deterministic"
    );
});
