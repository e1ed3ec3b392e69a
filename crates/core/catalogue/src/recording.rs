use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::{BootEvent, BootFile, BootSpec, Catalogue, MacAddr, Menu};

/// A catalogue for tests of the boot services: it serves nothing (an empty menu, no files) and
/// keeps every event it is told, for the test to read back with [`RecordingCatalogue::events`].
/// It keeps events as told (a claimed `?mac=` included: the tests check what the services
/// send), but accepts a system report for a MAC only from the peer of that MAC's newest DHCP
/// event that had one (as the appliance does: the address the machine last took in DHCP;
/// a script fetched with `?mac=` does not count).
#[derive(Debug, Default)]
pub struct RecordingCatalogue {
    events: Mutex<Vec<BootEvent>>,
}

impl RecordingCatalogue {
    /// Every event recorded so far, oldest first.
    pub fn events(&self) -> Vec<BootEvent> {
        match self.events.lock() {
            Ok(events) => events.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Catalogue for RecordingCatalogue {
    fn boot_spec(&self, _mac: Option<MacAddr>) -> BootSpec {
        BootSpec::Menu(Menu {
            entries: Vec::new(),
            default: None,
            timeout: Duration::from_secs(1),
        })
    }

    fn boot_file(&self, _file: &BootFile) -> Option<PathBuf> {
        None
    }

    fn record(&self, event: BootEvent) {
        match self.events.lock() {
            Ok(mut events) => events.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }

    fn accept_report(&self, mac: MacAddr, from: IpAddr) -> bool {
        let last_peer = self
            .events()
            .iter()
            .rev()
            .filter(|e| e.mac == Some(mac) && e.stage.mac_from_wire())
            .find_map(|e| e.peer);
        last_peer == Some(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BootStage, Outcome};

    #[test]
    fn reports_are_accepted_only_from_the_address_the_mac_last_took_in_dhcp() {
        let cat = RecordingCatalogue::default();
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.5".parse().unwrap(), "10.0.0.6".parse().unwrap());
        let event = |stage, peer| BootEvent::new(stage, Outcome::Ok, "e").mac(mac).peer(peer);
        assert!(!cat.accept_report(mac, a), "nothing recorded yet");
        // A script fetched with `?mac=` is a claim: it makes no address the MAC's.
        cat.record(event(BootStage::Script, a));
        assert!(!cat.accept_report(mac, a));
        cat.record(event(BootStage::Dhcp, a));
        assert!(cat.accept_report(mac, a));
        assert!(!cat.accept_report(mac, b));
        assert!(!cat.accept_report(MacAddr([2, 0, 0, 0, 0, 2]), a));
        cat.record(event(BootStage::Script, b));
        assert!(cat.accept_report(mac, a) && !cat.accept_report(mac, b));
        cat.record(event(BootStage::PxeBootServer, b));
        assert!(cat.accept_report(mac, b) && !cat.accept_report(mac, a));
    }
}
