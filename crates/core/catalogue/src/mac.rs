use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet MAC address, shown as `52:54:00:12:34:56`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The MAC from a DHCP `chaddr` field, when the hardware type is Ethernet (6 bytes).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(arr))
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this can be one machine's own address: not all zeros, and not a group address
    /// (the I/G bit of the first octet, set in every multicast address and in the broadcast
    /// address `ff:ff:ff:ff:ff:ff`). No NIC sends from anything else, so flakeboot refuses the
    /// rest wherever a MAC arrives (DHCP `chaddr`, `?mac=`, reports, settings).
    pub fn is_station(&self) -> bool {
        let [first, ..] = self.0;
        self.0 != [0; 6] && first & 1 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a MAC address: expected six hex pairs like 52:54:00:12:34:56")]
pub struct ParseMacError {
    pub input: String,
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Accepts `:` or `-` separators (as iPXE's `${net0/mac}` and Windows print them), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError {
            input: s.to_owned(),
        };
        let mut out = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let mac: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(mac.0, [0x52, 0x54, 0, 0xab, 0xcd, 0x0f]);
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!("52-54-00-ab-cd-0f".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "5:254:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert!(err.to_string().contains("six hex pairs"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_unicast_nonzero_addresses_are_stations() {
        for station in [
            "52:54:00:12:34:56",
            "02:00:00:00:00:01",
            "fe:ff:ff:ff:ff:ff",
        ] {
            assert!(
                station.parse::<MacAddr>().unwrap().is_station(),
                "{station}"
            );
        }
        for group in [
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "33:33:00:00:00:01",
            "53:54:00:12:34:56",
        ] {
            assert!(!group.parse::<MacAddr>().unwrap().is_station(), "{group}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, "\"52:54:00:12:34:56\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&json).unwrap(), mac);
    }
}
