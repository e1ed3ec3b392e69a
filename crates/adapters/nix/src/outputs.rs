//! What a build asks nix for, and which of nix's answers is which.
//!
//! A host's build is ONE `nix build --json` of its three netboot outputs
//! (`config.system.build.{kernel,netbootRamdisk,toplevel}`). nix does not answer in the order of
//! the installables (nix 2.8 sorts its results by derivation name: a flake whose derivations are
//! `<host>-kernel`, `<host>-initrd`, `<host>-system` gets the ramdisk first), so results are
//! matched by derivation: one `nix eval` before the build gives each output's `drvPath` and
//! `outputName` (evaluation writes the .drv files and builds nothing), and
//! [`match_build_output`] picks each output from the result of its own derivation.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;

/// The outputs a build asks for: kernel, ramdisk, toplevel (the order of every `[_; 3]` here).
pub const BUILD_OUTPUTS: [&str; 3] = ["kernel", "netbootRamdisk", "toplevel"];

/// Applied to a host's `config.system.build`: each netboot output's derivation and output name.
pub const DERIVATIONS_FN: &str = r#"b: builtins.mapAttrs (name: d: {
  inherit (d) drvPath;
  outputName = d.outputName or "out";
}) { inherit (b) kernel netbootRamdisk toplevel; }"#;

/// Why nix's answers about a build cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum OutputsError {
    /// The evaluation of the outputs' derivations printed something flakeboot cannot read.
    #[error("cannot read the derivations of the netboot outputs: {reason}")]
    BadDerivations {
        /// What was wrong.
        reason: String,
    },
    /// `nix build --json` printed something flakeboot cannot read.
    #[error("cannot read `nix build --json` output: {reason}")]
    BadBuildOutput {
        /// What was wrong.
        reason: String,
    },
    /// `nix build --json` has no result for an output's derivation.
    #[error("`nix build --json` has no output {output_name:?} of {} (the {output})", drv_path.display())]
    NotBuilt {
        /// `kernel`, `netbootRamdisk` or `toplevel`.
        output: &'static str,
        /// Its derivation.
        drv_path: PathBuf,
        /// The derivation's output that was asked for.
        output_name: String,
    },
}

/// One netboot output as evaluation knows it, before it is built.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputDerivation {
    /// The derivation that builds it.
    pub drv_path: PathBuf,
    /// Which of the derivation's outputs it is (`out` nearly always).
    pub output_name: String,
}

/// The installable of one output of a host: `<locked>#nixosConfigurations."<host>".config.system.build.<out>`.
fn installable(locked_url: &str, host: &str, attr: &str) -> String {
    let host = host.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{locked_url}#nixosConfigurations.\"{host}\".config.system.build{attr}")
}

/// `nix eval --json <locked>#nixosConfigurations."<host>".config.system.build --apply <fn>`.
pub fn derivations_args(locked_url: &str, host: &str) -> Vec<OsString> {
    vec![
        "eval".into(),
        "--json".into(),
        installable(locked_url, host, "").into(),
        "--apply".into(),
        DERIVATIONS_FN.into(),
    ]
}

/// `nix build --json --no-link <installable of each output>`.
pub fn build_args(locked_url: &str, host: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["build".into(), "--json".into(), "--no-link".into()];
    for out in BUILD_OUTPUTS {
        args.push(installable(locked_url, host, &format!(".{out}")).into());
    }
    args
}

/// Each output's derivation from the evaluation's JSON (pure), in [`BUILD_OUTPUTS`] order.
pub fn parse_derivations(json: &[u8]) -> Result<[OutputDerivation; 3], OutputsError> {
    let bad = |reason: String| OutputsError::BadDerivations { reason };
    let mut all: BTreeMap<String, OutputDerivation> =
        serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let mut take = |out: &str| all.remove(out).ok_or_else(|| bad(format!("no {out}")));
    Ok([
        take(BUILD_OUTPUTS[0])?,
        take(BUILD_OUTPUTS[1])?,
        take(BUILD_OUTPUTS[2])?,
    ])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuiltPath {
    drv_path: PathBuf,
    outputs: BTreeMap<String, PathBuf>,
}

/// The store path of each output (kernel, ramdisk, toplevel) from `nix build --json` (pure),
/// each taken from the result of its own derivation, whatever order nix answered in.
pub fn match_build_output(
    json: &[u8],
    derivations: &[OutputDerivation; 3],
) -> Result<[PathBuf; 3], OutputsError> {
    let built: Vec<BuiltPath> =
        serde_json::from_slice(json).map_err(|e| OutputsError::BadBuildOutput {
            reason: e.to_string(),
        })?;
    let find = |output: &'static str, want: &OutputDerivation| {
        built
            .iter()
            .filter(|b| b.drv_path == want.drv_path)
            .find_map(|b| b.outputs.get(&want.output_name).cloned())
            .ok_or_else(|| OutputsError::NotBuilt {
                output,
                drv_path: want.drv_path.clone(),
                output_name: want.output_name.clone(),
            })
    };
    let [kernel, ramdisk, toplevel] = derivations;
    let [k, r, t] = BUILD_OUTPUTS;
    Ok([find(k, kernel)?, find(r, ramdisk)?, find(t, toplevel)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from nix 2.8 evaluating tests/fixtures/permuted's `ktr` (kernel `a-ktr`,
    /// ramdisk `c-ktr`, toplevel `b-ktr`).
    const KTR_DERIVATIONS: &[u8] = br#"{"kernel":{"drvPath":"/nix/store/1x4isji4775xrnga9622s4cchfcan8qk-a-ktr.drv","outputName":"out"},"netbootRamdisk":{"drvPath":"/nix/store/j1dy8h1z2dg2yszfrb360qvlpm9y90gd-c-ktr.drv","outputName":"out"},"toplevel":{"drvPath":"/nix/store/14d2ssy0jf760wvjf81mmk7kvi60180w-b-ktr.drv","outputName":"out"}}"#;

    /// Captured from nix 2.8 building `ktr`: sorted by derivation name (a, b, c), so the
    /// toplevel comes second and the ramdisk last.
    const KTR_BUILT: &[u8] = br#"[{"drvPath":"/nix/store/1x4isji4775xrnga9622s4cchfcan8qk-a-ktr.drv","outputs":{"out":"/nix/store/c4val10jmhcc7hsiaqizfgfxpsjcsjry-a-ktr"}},{"drvPath":"/nix/store/14d2ssy0jf760wvjf81mmk7kvi60180w-b-ktr.drv","outputs":{"out":"/nix/store/sqlwrvp629vsjvjghixvrd7lm27qdgv4-b-ktr"}},{"drvPath":"/nix/store/j1dy8h1z2dg2yszfrb360qvlpm9y90gd-c-ktr.drv","outputs":{"out":"/nix/store/xgrndrfh0pnxx2rcgfazgr1a04knzpiw-c-ktr"}}]"#;

    fn results(json: &[u8]) -> Vec<serde_json::Value> {
        serde_json::from_slice(json).unwrap()
    }

    #[test]
    fn results_are_matched_by_derivation_in_any_order() {
        let drvs = parse_derivations(KTR_DERIVATIONS).unwrap();
        let want = [
            "/nix/store/c4val10jmhcc7hsiaqizfgfxpsjcsjry-a-ktr",
            "/nix/store/xgrndrfh0pnxx2rcgfazgr1a04knzpiw-c-ktr",
            "/nix/store/sqlwrvp629vsjvjghixvrd7lm27qdgv4-b-ktr",
        ]
        .map(PathBuf::from);
        let captured = results(KTR_BUILT);
        // Every order of the three results gives the same answer.
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let shuffled = serde_json::to_vec(&order.map(|i| &captured[i])).unwrap();
            assert_eq!(
                match_build_output(&shuffled, &drvs).unwrap(),
                want,
                "{order:?}"
            );
        }
    }

    #[test]
    fn the_output_asked_for_is_taken_from_a_derivation_with_several() {
        let mut drvs = parse_derivations(KTR_DERIVATIONS).unwrap();
        drvs[0].output_name = "bin".into();
        let json = br#"[{"drvPath":"/nix/store/1x4isji4775xrnga9622s4cchfcan8qk-a-ktr.drv","outputs":{"bin":"/nix/store/k-bin","out":"/nix/store/k"}},{"drvPath":"/nix/store/j1dy8h1z2dg2yszfrb360qvlpm9y90gd-c-ktr.drv","outputs":{"out":"/nix/store/r"}},{"drvPath":"/nix/store/14d2ssy0jf760wvjf81mmk7kvi60180w-b-ktr.drv","outputs":{"out":"/nix/store/t"}}]"#;
        let [k, r, t] = match_build_output(json, &drvs).unwrap();
        assert_eq!(
            [k, r, t],
            ["/nix/store/k-bin", "/nix/store/r", "/nix/store/t"].map(PathBuf::from)
        );
    }

    #[test]
    fn a_missing_or_unreadable_result_is_an_error() {
        let drvs = parse_derivations(KTR_DERIVATIONS).unwrap();
        // Only two results: the ramdisk's derivation was not built.
        let mut two = results(KTR_BUILT);
        two.truncate(2);
        let err = match_build_output(&serde_json::to_vec(&two).unwrap(), &drvs).unwrap_err();
        assert!(
            matches!(
                &err,
                OutputsError::NotBuilt {
                    output: "netbootRamdisk",
                    ..
                }
            ),
            "{err}"
        );
        for bad in [&b"[]"[..], b"{}", b"[{\"outputs\":{}}]", b"garbage"] {
            assert!(match_build_output(bad, &drvs).is_err());
        }
        for bad in [
            &b"{}"[..],
            b"[]",
            br#"{"kernel":{"drvPath":"/nix/store/k.drv","outputName":"out"}}"#,
        ] {
            assert!(parse_derivations(bad).is_err());
        }
    }

    #[test]
    fn arguments_name_the_locked_reference_and_a_quoted_host() {
        let strings = |args: Vec<OsString>| -> Vec<String> {
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            strings(build_args("github:a/f/0123", "web.1")),
            [
                "build",
                "--json",
                "--no-link",
                "github:a/f/0123#nixosConfigurations.\"web.1\".config.system.build.kernel",
                "github:a/f/0123#nixosConfigurations.\"web.1\".config.system.build.netbootRamdisk",
                "github:a/f/0123#nixosConfigurations.\"web.1\".config.system.build.toplevel",
            ]
        );
        assert_eq!(
            strings(derivations_args("path:/f", "a\"b")),
            [
                "eval",
                "--json",
                "path:/f#nixosConfigurations.\"a\\\"b\".config.system.build",
                "--apply",
                DERIVATIONS_FN,
            ]
        );
    }
}
