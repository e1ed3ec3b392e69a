//! Boot attempts as data: a machine's boot events folded into attempts, each from its first
//! DHCP packet to its end, with every stage's start, end, bytes and outcome ([`fold`]), and how
//! each attempt ended, `now` ([`verdict`]: up, failed, no report, booting). Pure: events, now
//! and the report timeout in; attempts and verdicts out. The web UI renders them; the JSON API
//! sends them ([`crate::wire::Attempt`], [`crate::wire::LastBoot`]); [`crate::overview`] lists
//! every machine with its last boot. A line of the machine's logs that says its boot failed (a
//! [`flakeboot_catalogue::BootStage::Console`] event) fails its attempt with that line; the
//! lines themselves are shown with the attempt they arrived in ([`group_by_attempt`]).

mod fold;
mod lines;
mod verdict;

pub use fold::{
    Attempt, ConsoleFailure, NEW_ATTEMPT_GAP, OtherOffer, Stage, StageRun, StageState,
    SystemReport, attempts,
};
pub use lines::{attempt_of, group_by_attempt};
pub use verdict::{BootState, Verdict, generation_of};
