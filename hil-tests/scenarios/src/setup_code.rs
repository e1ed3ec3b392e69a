//! The web UI's one-time setup code, as the daemon prints it in its log ("... enter the setup
//! code XXXX-XXXX-XXXX ..."): tests that set up the real appliance read it from there, like an
//! admin at the console would.

use std::time::{Duration, Instant};

/// The last setup code in `log`, if the daemon has printed one.
pub fn setup_code_in(log: &str) -> Option<String> {
    let (_, rest) = log.rsplit_once("enter the setup code ")?;
    let code: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!code.is_empty()).then_some(code)
}

/// Polls `log` (the daemon's log so far) until it holds a setup code; `None` after `timeout`.
pub fn wait_for_setup_code(log: impl Fn() -> String, timeout: Duration) -> Option<String> {
    let start = Instant::now();
    loop {
        if let Some(code) = setup_code_in(&log()) {
            return Some(code);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_code_and_nothing_else() {
        let log = "x WARN first-run setup: open https://10.77.0.1/ and enter the setup code \
                   AB12-CD34-EF56 (certificate SHA-256 AA:BB)\n";
        assert_eq!(setup_code_in(log).as_deref(), Some("AB12-CD34-EF56"));
        assert_eq!(setup_code_in("starting flakeboot\n"), None);
        assert_eq!(setup_code_in("enter the setup code \n"), None);
    }
}
