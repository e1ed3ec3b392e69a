//! `[updates]`: how automatic updates are told of new revisions (issue #16). The flakes'
//! own settings (`follow`, `check_every`, `notify_txt`) are in `[[flakes]]`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::problem::{Field, Problem};

/// `[updates]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    /// The name server asked for the flakes' `notify_txt` records, "IP:PORT" (e.g.
    /// "192.0.2.53:53", "[2001:db8::53]:53"). Unset: the system's (`/etc/resolv.conf`).
    pub resolver: Option<String>,
    /// How often each `notify_txt` record is asked (1s to 1h; a minute by default).
    #[serde(with = "humantime_serde")]
    pub txt_every: Duration,
}

/// How often a `notify_txt` record is asked by default.
pub const DEFAULT_TXT_EVERY: Duration = Duration::from_secs(60);

/// The shortest and longest `txt_every`.
pub const TXT_EVERY: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3600)];

impl Default for UpdatesConfig {
    fn default() -> Self {
        UpdatesConfig {
            resolver: None,
            txt_every: DEFAULT_TXT_EVERY,
        }
    }
}

impl UpdatesConfig {
    /// The resolver given, when it parses (`None`: the system's, or a value [`problems`]
    /// refuses).
    pub fn resolver(&self) -> Option<SocketAddr> {
        self.resolver
            .as_deref()
            .and_then(|r| parse_resolver(r).ok())
    }
}

/// "IP:PORT" with a port other than 0.
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not an address with a port: write \"192.0.2.53:53\" or \"[2001:db8::53]:53\""
        )
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{text:?} has port 0: name the server's port, usually 53"
        ));
    }
    Ok(addr)
}

/// The problems of `[updates]`.
pub(crate) fn problems(u: &UpdatesConfig) -> Vec<Problem> {
    let section = Field::key("updates");
    let mut problems = Vec::new();
    if let Some(resolver) = &u.resolver
        && let Err(why) = parse_resolver(resolver)
    {
        problems.push(Problem::new(section.clone().then("resolver"), why));
    }
    let [min, max] = TXT_EVERY;
    if u.txt_every < min || u.txt_every > max {
        problems.push(Problem::new(
            section.then("txt_every"),
            "must be between 1s and 1h, e.g. \"1m\"".to_owned(),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    fn parse(updates: &str) -> Result<Config, String> {
        Config::parse(
            &format!("[lan]\ninterface = \"eth0\"\n[updates]\n{updates}\n"),
            Path::new("t.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_ask_the_system_resolver_every_minute() {
        let c = parse("").unwrap();
        assert_eq!(c.updates, UpdatesConfig::default());
        assert_eq!(c.updates.resolver(), None);
        assert_eq!(c.updates.txt_every, Duration::from_secs(60));
        let c = parse("resolver = \"10.77.0.50:5353\"\ntxt_every = \"2s\"").unwrap();
        assert_eq!(
            c.updates.resolver(),
            Some("10.77.0.50:5353".parse().unwrap())
        );
        assert_eq!(c.updates.txt_every, Duration::from_secs(2));
        let c = parse("resolver = \"[2001:db8::53]:53\"").unwrap();
        assert!(c.updates.resolver().is_some_and(|a| a.is_ipv6()));
    }

    #[test]
    fn bad_values_are_named_with_their_field() {
        for (bad, says) in [
            ("resolver = \"10.0.0.1\"", "not an address with a port"),
            (
                "resolver = \"dns.example.org:53\"",
                "not an address with a port",
            ),
            ("resolver = \"10.0.0.1:0\"", "port 0"),
            ("txt_every = \"0s\"", "between 1s and 1h"),
            ("txt_every = \"2h\"", "between 1s and 1h"),
        ] {
            let err = parse(bad).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(&format!("updates.{key}")), "{bad}: {err}");
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(parse("servers = []").unwrap_err().contains("servers"));
    }
}
