//! Remote management over WireGuard: server-mode settings, the admins' peers and hub-mode
//! settings. Private keys are never here: the appliance's own keys are files in the state
//! directory, and a peer's private key is shown once and dropped.
//!
//! - `vpn_settings`: `server` -> JSON [`VpnServerRecord`], `hub` -> JSON [`VpnHubRecord`],
//!   `next_peer_id` -> JSON number (ids are never reused, even after a revoke).
//! - `vpn_peers`: peer id -> JSON [`VpnPeerRecord`].
//!
//! These tables are created on first write; readers treat a missing table as empty.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::schema::{decode, encode, read_table};
use crate::{Store, StoreError};

/// Named VPN settings -> JSON.
pub const VPN_SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("vpn_settings");
/// Peers by id (ascending) -> JSON [`VpnPeerRecord`].
pub const VPN_PEERS: TableDefinition<u64, &[u8]> = TableDefinition::new("vpn_peers");

const SERVER_KEY: &str = "server";
const HUB_KEY: &str = "hub";
const NEXT_PEER_ID_KEY: &str = "next_peer_id";

/// Server mode: the appliance listens for admins' devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnServerRecord {
    /// Whether the interface is up.
    pub enabled: bool,
    /// The UDP port.
    pub listen_port: u16,
    /// The appliance's tunnel address with prefix (`10.77.0.1/24`).
    pub address: String,
    /// The host (and optional port) peers dial; empty: they fill it in.
    pub endpoint: String,
}

/// Hub mode: the appliance dials out to the admin's WireGuard hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnHubRecord {
    /// Whether the appliance dials the hub.
    pub enabled: bool,
    /// The hub's `host:port`.
    pub endpoint: String,
    /// The hub's public key (base64).
    pub public_key: String,
    /// Networks reached through the hub.
    pub allowed_ips: Vec<String>,
    /// Persistent keepalive in seconds (0: off).
    pub keepalive: u16,
    /// The appliance's address in the hub's network, with prefix.
    pub address: String,
}

/// One admin device allowed in through server mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnPeerRecord {
    /// Assigned by [`Store::insert_vpn_peer`]; never reused.
    pub id: u64,
    /// The admin's name for it.
    pub name: String,
    /// Its public key (base64).
    pub public_key: String,
    /// Its tunnel address.
    pub address: Ipv4Addr,
    /// When it was added.
    pub created: SystemTime,
}

impl Store {
    fn vpn_setting<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, VPN_SETTINGS)? else {
            return Ok(None);
        };
        match table.get(key)? {
            Some(v) => Ok(Some(decode("vpn_settings", key, v.value())?)),
            None => Ok(None),
        }
    }

    fn put_vpn_setting<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = encode("vpn_settings", value)?;
        let txn = self.db.begin_write()?;
        txn.open_table(VPN_SETTINGS)?
            .insert(key, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Server-mode settings, or `None` when never saved.
    pub fn vpn_server(&self) -> Result<Option<VpnServerRecord>, StoreError> {
        self.vpn_setting(SERVER_KEY)
    }

    /// Saves server-mode settings.
    pub fn put_vpn_server(&self, server: &VpnServerRecord) -> Result<(), StoreError> {
        self.put_vpn_setting(SERVER_KEY, server)
    }

    /// Hub-mode settings, or `None` when never saved.
    pub fn vpn_hub(&self) -> Result<Option<VpnHubRecord>, StoreError> {
        self.vpn_setting(HUB_KEY)
    }

    /// Saves hub-mode settings.
    pub fn put_vpn_hub(&self, hub: &VpnHubRecord) -> Result<(), StoreError> {
        self.put_vpn_setting(HUB_KEY, hub)
    }

    /// Every peer, oldest (lowest id) first.
    pub fn vpn_peers(&self) -> Result<Vec<VpnPeerRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, VPN_PEERS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode("vpn_peers", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Stores a new peer under the next id (the record's `id` is ignored) and returns it. Ids
    /// are never reused, so a revoked peer's id never names another device.
    pub fn insert_vpn_peer(&self, peer: &VpnPeerRecord) -> Result<VpnPeerRecord, StoreError> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut settings = txn.open_table(VPN_SETTINGS)?;
            let stored: Option<u64> = match settings.get(NEXT_PEER_ID_KEY)? {
                Some(v) => Some(decode("vpn_settings", NEXT_PEER_ID_KEY, v.value())?),
                None => None,
            };
            let mut peers = txn.open_table(VPN_PEERS)?;
            let after_last = peers
                .last()?
                .map_or(1, |(k, _)| k.value().saturating_add(1));
            let id = stored.unwrap_or(1).max(after_last);
            let record = VpnPeerRecord { id, ..peer.clone() };
            peers.insert(id, encode("vpn_peers", &record)?.as_slice())?;
            settings.insert(
                NEXT_PEER_ID_KEY,
                encode("vpn_settings", &id.saturating_add(1))?.as_slice(),
            )?;
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// Renames a peer; `false` when there is no such peer.
    pub fn rename_vpn_peer(&self, id: u64, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let found = {
            let mut table = txn.open_table(VPN_PEERS)?;
            let current: Option<VpnPeerRecord> = match table.get(id)? {
                Some(v) => Some(decode("vpn_peers", id, v.value())?),
                None => None,
            };
            match current {
                Some(mut peer) => {
                    peer.name = name.to_owned();
                    table.insert(id, encode("vpn_peers", &peer)?.as_slice())?;
                    true
                }
                None => false,
            }
        };
        txn.commit()?;
        Ok(found)
    }

    /// Removes a peer and returns it; `None` when there was no such peer.
    pub fn remove_vpn_peer(&self, id: u64) -> Result<Option<VpnPeerRecord>, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut table = txn.open_table(VPN_PEERS)?;
            let removed = table.remove(id)?;
            match removed {
                Some(v) => Some(decode("vpn_peers", id, v.value())?),
                None => None,
            }
        };
        txn.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn peer(name: &str, last: u8) -> VpnPeerRecord {
        VpnPeerRecord {
            id: 0,
            name: name.into(),
            public_key: format!("key-of-{name}"),
            address: Ipv4Addr::new(10, 77, 0, last),
            created: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    #[test]
    fn settings_are_none_until_saved_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let server = VpnServerRecord {
            enabled: true,
            listen_port: 51820,
            address: "10.77.0.1/24".into(),
            endpoint: "office.example.net".into(),
        };
        let hub = VpnHubRecord {
            enabled: true,
            endpoint: "hub.example.net:51820".into(),
            public_key: "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=".into(),
            allowed_ips: vec!["10.99.0.0/24".into()],
            keepalive: 25,
            address: "10.99.0.5/24".into(),
        };
        {
            let store = Store::open(tmp.path()).unwrap();
            assert_eq!(store.vpn_server().unwrap(), None);
            assert_eq!(store.vpn_hub().unwrap(), None);
            store.put_vpn_server(&server).unwrap();
            store.put_vpn_hub(&hub).unwrap();
        }
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.vpn_server().unwrap(), Some(server));
        assert_eq!(store.vpn_hub().unwrap(), Some(hub));
    }

    #[test]
    fn peers_get_ids_that_are_never_reused_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            assert!(store.vpn_peers().unwrap().is_empty());
            assert_eq!(store.insert_vpn_peer(&peer("laptop", 2)).unwrap().id, 1);
            assert_eq!(store.insert_vpn_peer(&peer("phone", 3)).unwrap().id, 2);
            // Revoking the newest peer does not hand its id to the next one.
            assert_eq!(store.remove_vpn_peer(2).unwrap().unwrap().name, "phone");
            assert_eq!(store.remove_vpn_peer(2).unwrap(), None);
            assert_eq!(store.insert_vpn_peer(&peer("tablet", 3)).unwrap().id, 3);
            assert!(store.rename_vpn_peer(1, "work laptop").unwrap());
            assert!(!store.rename_vpn_peer(9, "nobody").unwrap());
        }
        let store = Store::open(tmp.path()).unwrap();
        let peers = store.vpn_peers().unwrap();
        let names: Vec<(u64, &str)> = peers.iter().map(|p| (p.id, p.name.as_str())).collect();
        assert_eq!(names, [(1, "work laptop"), (3, "tablet")]);
        assert_eq!(peers[1].address, Ipv4Addr::new(10, 77, 0, 3));
        assert_eq!(peers[0].public_key, "key-of-laptop");
        assert_eq!(store.insert_vpn_peer(&peer("next", 4)).unwrap().id, 4);
    }
}
