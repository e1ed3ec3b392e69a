//! Discovering a locked flake's hosts: ONE `nix eval --json <locked>#nixosConfigurations
//! --apply <fn>` that reports, per configuration, whether it can netboot (it has
//! `config.system.build.{kernel,netbootRamdisk,toplevel}`) and its kernel file and parameters,
//! or why it cannot. Evaluation builds nothing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use flakeboot_config::{Problem, flake_host_problems};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::command::{CommandError, NixSettings, run_nix};

/// How long discovery may evaluate.
pub const DISCOVER_TIMEOUT: Duration = Duration::from_secs(600);

/// The function applied to `nixosConfigurations`. `builtins.tryEval` keeps a configuration that
/// throws (or fails an assertion) from hiding the others; `deepSeq` forces each host's answer
/// inside its own `tryEval`.
pub const DISCOVER_FN: &str = r#"hosts: builtins.mapAttrs (name: host:
  let
    r = builtins.tryEval (
      let
        cfg = host.config;
        b = cfg.system.build or { };
        missing = builtins.filter (o: !(b ? ${o})) [ "kernel" "netbootRamdisk" "toplevel" ];
        kernelFile = cfg.system.boot.loader.kernelFile or "bzImage";
      in
      if missing != [ ] then {
        netboot = false;
        reason = "config.system.build has no " + builtins.concatStringsSep ", " missing;
      } else {
        netboot = true;
        inherit kernelFile;
        kernelParams = cfg.boot.kernelParams or [ ];
        system = b.toplevel.system or null;
        kernel = "${b.kernel}/${kernelFile}";
        initrd = "${b.netbootRamdisk}/initrd";
        init = "${b.toplevel}/init";
      });
    forced = builtins.tryEval (builtins.deepSeq r.value r.value);
  in
  if r.success && forced.success then forced.value
  else { netboot = false; reason = "the configuration does not evaluate (it throws or fails an assertion)"; }
) hosts"#;

/// One `nixosConfigurations.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredHost {
    /// The configuration's name.
    pub name: String,
    /// Whether and how it netboots.
    pub status: HostStatus,
}

/// Whether a configuration can netboot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStatus {
    /// It has every netboot output.
    Netboot(NetbootInfo),
    /// It cannot, and why.
    Unbootable {
        /// A sentence for the user.
        reason: String,
    },
}

/// What discovery knows of a netbootable host before building it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetbootInfo {
    /// `config.system.boot.loader.kernelFile`.
    pub kernel_file: String,
    /// `config.boot.kernelParams`.
    pub kernel_params: Vec<String>,
    /// The toplevel's `system` (e.g. `x86_64-linux`), if it says.
    pub system: Option<String>,
    /// The kernel's path once built.
    pub kernel: String,
    /// The initrd's path once built.
    pub initrd: String,
    /// The `init=` path once built.
    pub init: String,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// nix could not evaluate `nixosConfigurations` (nix's own message).
    #[error("cannot evaluate nixosConfigurations of {locked_url}: {source}")]
    Nix {
        /// The locked reference.
        locked_url: String,
        /// What nix said.
        source: CommandError,
    },
    /// nix answered with JSON flakeboot cannot read.
    #[error("cannot read the discovery of {locked_url}: {reason}")]
    BadOutput {
        /// The locked reference.
        locked_url: String,
        /// What was wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHost {
    netboot: bool,
    reason: Option<String>,
    kernel_file: Option<String>,
    #[serde(default)]
    kernel_params: Vec<String>,
    system: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
    init: Option<String>,
}

/// Parse the discovery's JSON (pure). Hosts come sorted by name.
pub fn parse_discovery(
    locked_url: &str,
    json: &[u8],
) -> Result<Vec<DiscoveredHost>, DiscoverError> {
    let raw: BTreeMap<String, RawHost> =
        serde_json::from_slice(json).map_err(|e| DiscoverError::BadOutput {
            locked_url: locked_url.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(raw
        .into_iter()
        .map(|(name, h)| {
            let status = match (h.netboot, h.kernel, h.initrd, h.init) {
                (true, Some(kernel), Some(initrd), Some(init)) => {
                    let kernel_file = h.kernel_file.unwrap_or_else(|| "bzImage".into());
                    let problems = flake_host_problems(&name, &kernel_file, &h.kernel_params);
                    if problems.is_empty() {
                        HostStatus::Netboot(NetbootInfo {
                            kernel_file,
                            kernel_params: h.kernel_params,
                            system: h.system,
                            kernel,
                            initrd,
                            init,
                        })
                    } else {
                        HostStatus::Unbootable {
                            reason: unbootable_values(&problems),
                        }
                    }
                }
                (true, ..) => HostStatus::Unbootable {
                    reason: "discovery returned no kernel, initrd or init path".into(),
                },
                (false, ..) => HostStatus::Unbootable {
                    reason: h
                        .reason
                        .unwrap_or_else(|| "it has no netboot outputs".into()),
                },
            };
            DiscoveredHost { name, status }
        })
        .collect())
}

/// Why a host's values from the flake keep it from netbooting, as one sentence.
pub(crate) fn unbootable_values(problems: &[Problem]) -> String {
    let all: Vec<String> = problems.iter().map(Problem::to_string).collect();
    format!(
        "flakeboot cannot put what the flake says of it into a boot script: {}",
        all.join("; ")
    )
}

/// Discover the hosts of a locked flake.
pub async fn discover(
    settings: &NixSettings,
    locked_url: &str,
    cancel: &CancellationToken,
) -> Result<Vec<DiscoveredHost>, DiscoverError> {
    let args: Vec<OsString> = vec![
        "eval".into(),
        "--json".into(),
        format!("{locked_url}#nixosConfigurations").into(),
        "--apply".into(),
        DISCOVER_FN.into(),
    ];
    let out = run_nix(
        settings,
        &args,
        cancel,
        Some(DISCOVER_TIMEOUT),
        &mut |line| {
            tracing::trace!(target: "flakeboot_nix::nix", "{line}");
        },
    )
    .await
    .map_err(|source| DiscoverError::Nix {
        locked_url: locked_url.to_owned(),
        source,
    })?;
    parse_discovery(locked_url, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netbootable_and_unbootable_hosts_are_told_apart() {
        let json = br#"{"alpha":{"init":"/nix/store/t-alpha-toplevel/init","initrd":"/nix/store/r-alpha-netboot-ramdisk/initrd","kernel":"/nix/store/k-alpha-kernel/bzImage","kernelFile":"bzImage","kernelParams":["console=ttyS0","quiet"],"netboot":true,"system":"x86_64-linux"},"diskonly":{"netboot":false,"reason":"config.system.build has no kernel, netbootRamdisk"},"evalfail":{"netboot":false,"reason":"the configuration does not evaluate"},"odd":{"netboot":true}}"#;
        let hosts = parse_discovery("path:/f", json).unwrap();
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["alpha", "diskonly", "evalfail", "odd"]);
        let HostStatus::Netboot(alpha) = &hosts[0].status else {
            panic!("{:?}", hosts[0])
        };
        assert_eq!(alpha.kernel_params, ["console=ttyS0", "quiet"]);
        assert_eq!(alpha.kernel, "/nix/store/k-alpha-kernel/bzImage");
        assert!(matches!(&hosts[1].status,
            HostStatus::Unbootable { reason } if reason.contains("netbootRamdisk")));
        assert!(matches!(&hosts[3].status, HostStatus::Unbootable { .. }));
    }

    /// Values the boot script cannot carry make the host unbootable at discovery, with the
    /// field and the reason (a build of it is then refused; the flake's other hosts are fine).
    #[test]
    fn hosts_whose_values_a_boot_script_cannot_carry_are_unbootable() {
        let host = |name: &str, file: &str, params: &str| {
            format!(
                r#"{name}:{{"init":"/nix/store/t/init","initrd":"/nix/store/r/initrd","kernel":"/nix/store/k/bzImage","kernelFile":{file},"kernelParams":{params},"netboot":true}}"#
            )
        };
        let long = format!("\"{}\"", "n".repeat(64));
        let json = format!(
            "{{{},{},{},{},{},{}}}",
            host("\"good\"", "\"bzImage\"", r#"["console=ttyS0"]"#),
            host("\"dollar\"", "\"bzImage\"", r#"["root=${x}"]"#),
            host("\"oror\"", "\"bzImage\"", r#"["quiet","||","shell"]"#),
            host("\"newline\"", "\"bzImage\"", r#"["quiet\nkernel evil"]"#),
            host(&long, "\"bzImage\"", "[]"),
            host("\"escape\"", "\"../../../etc/shadow\"", "[]"),
        );
        let hosts = parse_discovery("path:/f", json.as_bytes()).unwrap();
        let why: BTreeMap<&str, String> = hosts
            .iter()
            .map(|h| match &h.status {
                HostStatus::Netboot(_) => (h.name.as_str(), "netboot".to_owned()),
                HostStatus::Unbootable { reason } => (h.name.as_str(), reason.clone()),
            })
            .collect();
        assert_eq!(why["good"], "netboot");
        assert!(
            why["dollar"].contains("kernel_params[0]: \"root=${x}\" contains '$'"),
            "{}",
            why["dollar"]
        );
        assert!(
            why["oror"].contains("kernel_params[1]: \"||\" contains \"||\""),
            "{}",
            why["oror"]
        );
        assert!(
            why["newline"]
                .contains("kernel_params[0]: \"quiet\\nkernel evil\" contains a line break"),
            "{}",
            why["newline"]
        );
        assert!(why[&*"n".repeat(64)].contains("name: "), "{why:?}");
        assert!(why["escape"].contains("kernel_file: "), "{}", why["escape"]);
        assert!(
            why["escape"]
                .starts_with("flakeboot cannot put what the flake says of it into a boot script")
        );
    }

    #[test]
    fn unreadable_output_is_an_error() {
        for bad in [&b"null"[..], b"[1]", b"{\"a\":{}}", b"garbage"] {
            assert!(parse_discovery("path:/f", bad).is_err());
        }
    }
}
