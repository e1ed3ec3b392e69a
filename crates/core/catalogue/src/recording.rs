use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::{BootEvent, BootFile, BootSpec, Catalogue, MacAddr, Menu};

/// A catalogue for tests of the boot services: it serves nothing (an empty menu, no files) and
/// keeps every event it is told, for the test to read back with [`RecordingCatalogue::events`].
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
}
