//! flakeboot's own nftables table, `inet flakeboot`: the WAN firewall (nothing answers on the
//! WAN but WireGuard; drops, never RSTs) and, in router mode, forwarding from the LAN to the WAN
//! with NAT. Nothing else on the machine's firewall is touched.
//!
//! - [`Ruleset`]: what the table says, generated as nft text (pure; golden tests);
//! - [`apply`]: loads it with `nft -f -` (the ruleset on stdin, arguments only), replacing an
//!   earlier version in one transaction; [`remove`] takes the table away;
//! - [`IpForward`]: IPv4 forwarding of the current network namespace, put back at stop.

mod forward;
mod nft;
mod ruleset;

pub use forward::IpForward;
pub use nft::{FirewallError, apply, remove, table_exists};
pub use ruleset::{Ruleset, RulesetError, TABLE};
