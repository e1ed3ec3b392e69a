//! The flake hosts `check-config` checks a config's host names against: what the daemon's
//! last lock and evaluation of each flake found (`nixosConfigurations` that can netboot), from
//! the running daemon over its API socket, else from its store with the daemon stopped. The
//! config file alone does not say which hosts a flake defines.

use std::os::unix::net::UnixStream;
use std::path::Path;

use flakeboot_appliance::wire;
use flakeboot_config::Config;
use flakeboot_store::Store;

use crate::api_client::ApiClient;

/// What `check-config` knows of the flake hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlakeHosts {
    /// Every bootable flake host as `<flake>#<host>`: every flake of the config was locked and
    /// evaluated by the daemon.
    Known(Vec<String>),
    /// Not known: why, said so the user knows what to do. Names of flake hosts are then not
    /// checked.
    Unknown(String),
}

/// The flake hosts for `config`, from the daemon whose state directory is `state_dir`.
/// A config without flakes knows its (no) flake hosts without asking.
pub fn flake_hosts(config: &Config, state_dir: &Path) -> FlakeHosts {
    if config.flakes.is_empty() {
        return FlakeHosts::Known(Vec::new());
    }
    match records(state_dir) {
        Ok(flakes) => judge(config, &flakes),
        Err(why) => FlakeHosts::Unknown(why),
    }
}

/// The flakes the daemon has: over the API socket when it runs, else from its store.
fn records(state_dir: &Path) -> Result<Vec<wire::Flake>, String> {
    let socket = state_dir.join(flakeboot_webui::API_SOCKET);
    if UnixStream::connect(&socket).is_ok() {
        let client = ApiClient::local(socket).map_err(|e| e.to_string())?;
        let value = client
            .get("/flakes")
            .map_err(|e| format!("the daemon's API did not list its flakes: {e}"))?;
        return serde_json::from_value(value).map_err(|e| {
            format!("the daemon's flake list is not understood ({e}): same version?")
        });
    }
    if !state_dir.join(flakeboot_store::DB_FILE).exists() {
        return Err(format!(
            "{} holds no flakeboot store: the daemon has never run there (give its --state-dir)",
            state_dir.display()
        ));
    }
    let store = Store::open(state_dir)
        .map_err(|e| format!("cannot read the store in {}: {e}", state_dir.display()))?;
    let flakes = store
        .flakes()
        .map_err(|e| format!("cannot read the flakes in {}: {e}", state_dir.display()))?;
    Ok(flakes.into_iter().map(wire::Flake::from).collect())
}

/// Known when every flake of `config` is among `flakes` (by URL, and by name when the config
/// gives one) and was locked; then every bootable host of every flake the daemon has (flakes
/// added in the UI or API may be named too).
fn judge(config: &Config, flakes: &[wire::Flake]) -> FlakeHosts {
    for wanted in &config.flakes {
        let found = flakes.iter().find(|f| {
            f.url == wanted.url && wanted.name.as_ref().is_none_or(|name| *name == f.name)
        });
        match found {
            None => {
                return FlakeHosts::Unknown(format!(
                    "the daemon has not added flake {:?} yet (start `flakeboot serve` with this \
                     file, then check again)",
                    wanted.url
                ));
            }
            Some(f) if f.locked_at.is_none() => {
                let why = f
                    .error
                    .as_deref()
                    .map_or_else(String::new, |e| format!(": {}", first_line(e)));
                return FlakeHosts::Unknown(format!(
                    "the daemon has never locked flake {:?}{why}",
                    f.name
                ));
            }
            Some(_) => {}
        }
    }
    FlakeHosts::Known(
        flakes
            .iter()
            .filter(|f| f.locked_at.is_some())
            .flat_map(|f| {
                f.hosts
                    .iter()
                    .filter(|h| h.unbootable.is_none())
                    .map(move |h| format!("{}#{}", f.name, h.name))
            })
            .collect(),
    )
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::SystemTime;

    fn flake(name: &str, url: &str, locked: bool, hosts: &[(&str, bool)]) -> wire::Flake {
        wire::Flake {
            name: name.into(),
            url: url.into(),
            locked_url: None,
            revision: None,
            locked_at: locked.then_some(SystemTime::UNIX_EPOCH),
            hosts: hosts
                .iter()
                .map(|(h, bootable)| wire::FlakeHost {
                    name: (*h).into(),
                    unbootable: (!bootable).then(|| "no kernel".to_owned()),
                    kernel_file: "bzImage".into(),
                    kernel_params: vec![],
                })
                .collect(),
            error: (!locked).then(|| "error: no flake.nix\nmore".to_owned()),
        }
    }

    fn config(flakes: &str) -> Config {
        Config::parse_unchecked(
            &format!("[lan]\ninterface = \"lan0\"\n{flakes}"),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn every_locked_flakes_bootable_hosts_are_known() {
        let c = config("[[flakes]]\nurl = \"path:/f\"\nname = \"lab\"\n");
        let flakes = [
            flake(
                "lab",
                "path:/f",
                true,
                &[("alpha", true), ("broken", false)],
            ),
            flake("ui", "github:a/b", true, &[("beta", true)]),
        ];
        assert_eq!(
            judge(&c, &flakes),
            FlakeHosts::Known(vec!["lab#alpha".into(), "ui#beta".into()])
        );
    }

    #[test]
    fn a_flake_not_added_or_never_locked_makes_the_hosts_unknown() {
        let c = config("[[flakes]]\nurl = \"path:/f\"\nname = \"lab\"\n");
        let FlakeHosts::Unknown(why) = judge(&c, &[]) else {
            panic!("known without the flake")
        };
        assert!(why.contains("has not added flake \"path:/f\""), "{why}");
        let other_name = [flake("other", "path:/f", true, &[])];
        assert!(matches!(judge(&c, &other_name), FlakeHosts::Unknown(_)));
        let FlakeHosts::Unknown(why) = judge(&c, &[flake("lab", "path:/f", false, &[])]) else {
            panic!("known while never locked")
        };
        assert!(
            why.ends_with("never locked flake \"lab\": error: no flake.nix"),
            "{why}"
        );
    }

    #[test]
    fn no_flakes_no_store_needed() {
        let c = config("");
        assert_eq!(
            flake_hosts(&c, Path::new("/nonexistent/flakeboot")),
            FlakeHosts::Known(vec![])
        );
        let c = config("[[flakes]]\nurl = \"path:/f\"\n");
        let FlakeHosts::Unknown(why) = flake_hosts(&c, Path::new("/nonexistent/flakeboot")) else {
            panic!("known without a store")
        };
        assert!(why.contains("holds no flakeboot store"), "{why}");
    }
}
