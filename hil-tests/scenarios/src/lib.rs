//! Hardware-in-the-loop scenarios: real firmware (SeaBIOS + iPXE ROM, OVMF + iPXE EFI ROM, OVMF's
//! native PXE) in QEMU on a tap inside a network namespace each test creates, booting from the
//! real `flakeboot serve`. Each test in `tests/` reads like a script:
//!
//! ```no_run
//! # use flakeboot_hil_tests::*;
//! # use flakeboot_testbed::ClientKind;
//! # use std::time::Duration;
//! let mut s = Scenario::new("bios_router", 1);
//! s.start_appliance(&s.config(Mode::Router).machine(MAC[0], HOST, "fbt.marker=bios1"));
//! let client = s.power_on("bios1", ClientKind::Bios, 0, MAC[0]);
//! s.expect_marker(&client, "bios1", Duration::from_secs(120));
//! ```
//!
//! Failures print the client's console tail, the appliance's log tail and its boot events.

// A test harness fails loudly: a panic with the diagnostics is how a scenario reports failure.
#![allow(clippy::panic)]

mod appliance;
mod events;
mod flake_cli;
mod flake_repo;
pub mod https_admin;
mod lan;
mod peers;
mod scenario;
mod setup_code;
mod timeline;

pub use appliance::{Appliance, ApplianceConfig, ApplianceError, Mode};
pub use events::{LoggedEvent, events_for, first_ok, missing_stages};
pub use flake_cli::{FlakeCli, FlakeCliError, Generation};
pub use flake_repo::{FlakeRepo, FlakeRepoError};
pub use lan::{APPLIANCE_V4, LAN_IF, ROUTER_V4};
pub use scenario::{HOST, HOST_CMDLINE, HOST_DESCRIPTION, Scenario};
pub use setup_code::{setup_code_in, wait_for_setup_code};
pub use timeline::{Row, Timeline, console_stages};

use std::time::Duration;

/// Client MAC addresses (QEMU's locally administered prefix).
pub const MAC: [&str; 4] = [
    "52:54:00:fb:00:01",
    "52:54:00:fb:00:02",
    "52:54:00:fb:00:03",
    "52:54:00:fb:00:04",
];

/// How long one client may take from power-on to the marker under TCG (reference: 10-22 s).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
