//! IPv4 forwarding of the current network namespace (`/proc/sys/net/ipv4/ip_forward` is the
//! namespace's of the process that opens it).

use std::path::PathBuf;

use crate::FirewallError;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Forwarding turned on, with the value it had before, to put back with [`IpForward::restore`].
#[derive(Debug)]
pub struct IpForward {
    path: PathBuf,
    before: String,
}

impl IpForward {
    /// Turns IPv4 forwarding on.
    pub fn enable() -> Result<IpForward, FirewallError> {
        let path = PathBuf::from(IP_FORWARD);
        let io = |source| FirewallError::Forwarding {
            path: path.display().to_string(),
            source,
        };
        let before = std::fs::read_to_string(&path).map_err(io)?;
        std::fs::write(&path, "1\n").map_err(io)?;
        Ok(IpForward {
            path: path.clone(),
            before: before.trim().to_owned(),
        })
    }

    /// Whether it was on before flakeboot turned it on.
    pub fn was_on(&self) -> bool {
        self.before == "1"
    }

    /// Puts the value from before back.
    pub fn restore(self) -> Result<(), FirewallError> {
        std::fs::write(&self.path, format!("{}\n", self.before)).map_err(|source| {
            FirewallError::Forwarding {
                path: self.path.display().to_string(),
                source,
            }
        })
    }
}
