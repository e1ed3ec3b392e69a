//! Real nix reads flakeboot's owner-only `nix.conf` (`NIX_USER_CONF_FILES`): the `[nix]`
//! settings and the access tokens reach nix without appearing on its command line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use flakeboot_config::NixConfig;
use flakeboot_nix::NixSettings;
use flakeboot_nix::command::run_nix;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn nix_takes_settings_and_tokens_from_the_generated_conf() {
    let state = tempfile::tempdir().unwrap();
    let tokens = state.path().join("forge-tokens");
    std::fs::write(
        &tokens,
        "# private flakes\ngithub.com=ghp_flakebootTestToken\n",
    )
    .unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = NixConfig {
        substituters: Some(vec![]),
        max_jobs: Some(7),
        access_tokens_file: Some(tokens.clone()),
        extra_options: [("connect-timeout".to_owned(), "3".to_owned())].into(),
        ..NixConfig::default()
    };
    let settings = NixSettings::from_config(&config).with_files(state.path());
    let out = run_nix(
        &settings,
        &["show-config".into()],
        &CancellationToken::new(),
        None,
        &mut |_| {},
    )
    .await
    .unwrap();
    let shown = String::from_utf8(out).unwrap();
    for line in [
        "max-jobs = 7",
        "connect-timeout = 3",
        "access-tokens = github.com=ghp_flakebootTestToken",
    ] {
        assert!(
            shown.lines().any(|l| l.trim() == line),
            "nix show-config lacks `{line}`"
        );
    }
    let conf = state.path().join("nix/nix.conf");
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A token file others can read stops nix before it starts, and says what to do.
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = run_nix(
        &settings,
        &["show-config".into()],
        &CancellationToken::new(),
        None,
        &mut |_| {},
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("chmod 600"), "{msg}");
    assert!(!msg.contains("ghp_"), "{msg}");
}
