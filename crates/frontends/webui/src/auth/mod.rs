//! Who may do what: passwords, sessions, login rate limits, the setup code, API tokens, and the
//! middleware that guards every non-public route.

pub mod guard;
pub mod hash_gate;
pub mod hook_signature;
pub mod logsafe;
pub mod password;
pub mod ratelimit;
pub mod secret;
pub mod sessions;
pub mod setup_code;

pub use logsafe::escape_for_log;
