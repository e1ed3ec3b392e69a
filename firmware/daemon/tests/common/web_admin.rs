//! What an admin does in the web UI before using the API, done with curl over the real HTTPS
//! listener: first-run setup with the code from the daemon's log, then an API token, and the
//! certificate's fingerprint as the settings page shows it.

use std::path::Path;

use flakeboot_testbed::{Netns, require_tool};

/// The admin's password in these tests.
pub const PASSWORD: &str = "correct horse battery";

/// What the admin takes from the UI to the command line.
#[derive(Debug)]
pub struct AdminAccess {
    /// A new API token (`fbt_...`).
    pub token: String,
    /// "SHA-256: ..." on Settings > HTTPS certificate, exactly as shown.
    pub fingerprint: String,
}

/// The setup code the daemon printed ("... enter the setup code XXXX-XXXX-XXXX").
pub fn setup_code(daemon_log: &str) -> String {
    let at = daemon_log
        .rfind("setup code ")
        .unwrap_or_else(|| panic!("no setup code in the daemon's log:\n{daemon_log}"));
    daemon_log[at + "setup code ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

/// `value="..."` of the input named `name` in a page.
fn input_value(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no input {name} in the page:\n{page}"));
    let rest = &page[at + needle.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The text between `start` and the next `end`.
fn between(page: &str, start: &str, end: &str) -> String {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in the page:\n{page}"));
    let rest = &page[at + start.len()..];
    rest[..rest.find(end).unwrap()].to_owned()
}

/// Sets the appliance up at `base` (`https://ADDR`), signs in, creates a token named `laptop`.
/// curl runs in `ns` trusting `cacert`; cookies are kept in `dir`.
pub fn set_up_and_create_token(
    ns: &Netns,
    base: &str,
    cacert: &Path,
    daemon_log: &str,
    lan_interface: &str,
    dir: &Path,
) -> AdminAccess {
    require_tool("curl");
    let jar = dir.join("cookies.txt");
    let jar = jar.to_str().unwrap();
    let cacert = cacert.to_str().unwrap();
    let curl = |args: &[&str]| -> String {
        let mut all = vec![
            "curl",
            "-sS",
            "--fail-with-body",
            "--max-time",
            "20",
            "--cacert",
            cacert,
            "-b",
            jar,
            "-c",
            jar,
        ];
        all.extend_from_slice(args);
        ns.run(&all)
            .unwrap_or_else(|e| panic!("curl {args:?}: {e}"))
    };

    let page = curl(&[&format!("{base}/setup")]);
    let form = input_value(&page, "form");
    let code = setup_code(daemon_log);
    let done = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "--data-urlencode",
        &format!("form={form}"),
        "--data-urlencode",
        &format!("code={code}"),
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        "--data-urlencode",
        &format!("confirm={PASSWORD}"),
        "--data-urlencode",
        &format!("lan_interface={lan_interface}"),
        "--data-urlencode",
        "dhcp_mode=off",
        &format!("{base}/setup"),
    ]);
    assert!(done.starts_with("303"), "setup did not finish: {done}");

    let settings = curl(&[&format!("{base}/settings")]);
    let csrf = input_value(&settings, "csrf");
    let fingerprint = between(&settings, "SHA-256: <code class=\"anywhere\">", "</code>");
    let created = curl(&[
        "--data-urlencode",
        &format!("csrf={csrf}"),
        "--data-urlencode",
        "name=laptop",
        &format!("{base}/settings/tokens"),
    ]);
    let token = between(&created, "id=\"new-token\">", "</div>");
    assert!(token.starts_with("fbt_"), "{token}");
    AdminAccess { token, fingerprint }
}
