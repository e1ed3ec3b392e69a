//! Flakes and generations (written by `flakeboot-nix`; builds are in `builds.rs`).
//!
//! - `flakes`: flake name -> JSON [`FlakeRecord`] (URL, lock, discovered hosts).
//! - `generations`: (qualified host `flake#host`, number) -> JSON [`GenerationRecord`].
//! - `generation_pins`: qualified host -> the generation the user pinned (rollback).
//!
//! These tables are created on first write; readers treat a missing table as empty.

use std::path::PathBuf;
use std::time::SystemTime;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::PreflightState;
use crate::schema::{decode, encode, read_table};
use crate::{PreflightRecord, Store, StoreError, current_of};

/// Flakes by name -> JSON [`FlakeRecord`].
pub const FLAKES: TableDefinition<&str, &[u8]> = TableDefinition::new("flakes");
/// Generations by (qualified host, number) -> JSON [`GenerationRecord`].
pub const GENERATIONS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("generations");
/// The pinned generation of a qualified host.
pub const GENERATION_PINS: TableDefinition<&str, u32> = TableDefinition::new("generation_pins");

/// A flake flakeboot builds hosts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlakeRecord {
    /// Its name: hosts are qualified as `<name>#<host>`.
    pub name: String,
    /// The reference the user gave (moving: `github:acme/fleet`).
    pub url: String,
    /// The locked reference of the last lock (`...?rev=...&narHash=...`).
    pub locked_url: Option<String>,
    /// The locked revision (git and forges; `None` for paths and tarballs).
    pub revision: Option<String>,
    /// When it was last locked.
    pub locked_at: Option<SystemTime>,
    /// The `nixosConfigurations` found at the last lock.
    pub hosts: Vec<FlakeHostRecord>,
    /// Why the last lock or discovery failed, if it did (nix's message).
    pub error: Option<String>,
}

/// One `nixosConfigurations.<name>` of a flake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlakeHostRecord {
    /// The configuration's name.
    pub name: String,
    /// `None` when it can netboot, else why not.
    pub unbootable: Option<String>,
    /// `config.system.boot.loader.kernelFile`, e.g. `bzImage`.
    pub kernel_file: String,
    /// `config.boot.kernelParams`.
    pub kernel_params: Vec<String>,
}

/// A successful build of a host: what a machine assigned to it boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// `<flake>#<host>`.
    pub host: String,
    /// 1, 2, ... per host; assigned by [`Store::add_generation`].
    pub number: u32,
    /// The flake reference as the user gave it.
    pub flake_url: String,
    /// The locked reference built.
    pub locked_url: String,
    /// The locked revision, if any.
    pub revision: Option<String>,
    /// `<kernel output>/<kernelFile>`.
    pub kernel: PathBuf,
    /// `<netbootRamdisk output>/initrd`.
    pub initrd: PathBuf,
    /// `<toplevel>/init` (the command line's `init=`).
    pub init: PathBuf,
    /// Every store path built (kernel, netbootRamdisk, toplevel outputs).
    pub store_paths: Vec<PathBuf>,
    /// `boot.kernelParams`.
    pub kernel_params: Vec<String>,
    /// When the build finished.
    pub built_at: SystemTime,
    /// The build that made it.
    pub build_id: u64,
    /// The build's log file.
    pub log: PathBuf,
    /// GC root symlinks that keep its store paths alive.
    pub gc_roots: Vec<PathBuf>,
    /// Its pre-flight boot (a record without one was stored before pre-flight existed).
    #[serde(default)]
    pub preflight: PreflightRecord,
}

impl Store {
    /// Creates or replaces a flake.
    pub fn put_flake(&self, flake: &FlakeRecord) -> Result<(), StoreError> {
        let bytes = encode("flakes", flake)?;
        let txn = self.db.begin_write()?;
        txn.open_table(FLAKES)?
            .insert(flake.name.as_str(), bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// The flake with this name.
    pub fn flake(&self, name: &str) -> Result<Option<FlakeRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, FLAKES)? else {
            return Ok(None);
        };
        match table.get(name)? {
            Some(v) => Ok(Some(decode("flakes", name, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every flake, by name.
    pub fn flakes(&self) -> Result<Vec<FlakeRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, FLAKES)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode("flakes", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Forgets a flake (its generations stay until removed). Returns whether it existed.
    pub fn remove_flake(&self, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(FLAKES)?.remove(name)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    /// Stores a new generation of `draft.host` under the next number (the draft's `number` is
    /// ignored) and returns it.
    pub fn add_generation(&self, draft: &GenerationRecord) -> Result<GenerationRecord, StoreError> {
        let host = draft.host.as_str();
        let txn = self.db.begin_write()?;
        let record = {
            let mut table = txn.open_table(GENERATIONS)?;
            let last = table
                .range((host, 0)..=(host, u32::MAX))?
                .next_back()
                .transpose()?
                .map_or(0, |(k, _)| k.value().1);
            let record = GenerationRecord {
                number: last + 1,
                ..draft.clone()
            };
            table.insert(
                (host, record.number),
                encode("generations", &record)?.as_slice(),
            )?;
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// Replaces a generation's record (same host and number).
    pub fn put_generation(&self, generation: &GenerationRecord) -> Result<(), StoreError> {
        let bytes = encode("generations", generation)?;
        let txn = self.db.begin_write()?;
        txn.open_table(GENERATIONS)?.insert(
            (generation.host.as_str(), generation.number),
            bytes.as_slice(),
        )?;
        txn.commit()?;
        Ok(())
    }

    /// Every generation of a qualified host, oldest first.
    pub fn generations(&self, host: &str) -> Result<Vec<GenerationRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, GENERATIONS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.range((host, 0)..=(host, u32::MAX))? {
            let (k, v) = entry?;
            let (h, n) = k.value();
            out.push(decode("generations", format!("{h}/{n}"), v.value())?);
        }
        Ok(out)
    }

    /// Every qualified host that has a generation.
    pub fn generation_hosts(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, GENERATIONS)? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<String> = Vec::new();
        for entry in table.iter()? {
            let (k, _) = entry?;
            let host = k.value().0;
            if out.last().is_none_or(|last| last != host) {
                out.push(host.to_owned());
            }
        }
        Ok(out)
    }

    /// Deletes generations of a host (their GC roots are the caller's business). A pin on a
    /// deleted generation is removed too.
    pub fn remove_generations(&self, host: &str, numbers: &[u32]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(GENERATIONS)?;
            for n in numbers {
                table.remove((host, *n))?;
            }
            let mut pins = txn.open_table(GENERATION_PINS)?;
            let pinned = pins.get(host)?.map(|v| v.value());
            if pinned.is_some_and(|p| numbers.contains(&p)) {
                pins.remove(host)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Pins a host to one of its generations (rollback), or unpins it with `None` (back to the
    /// newest). Returns false, changing nothing, when that generation does not exist.
    pub fn pin_generation(&self, host: &str, number: Option<u32>) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let done = {
            let generations = txn.open_table(GENERATIONS)?;
            let mut pins = txn.open_table(GENERATION_PINS)?;
            match number {
                Some(n) if generations.get((host, n))?.is_none() => false,
                Some(n) => {
                    pins.insert(host, n)?;
                    true
                }
                None => {
                    pins.remove(host)?;
                    true
                }
            }
        };
        txn.commit()?;
        Ok(done)
    }

    /// The generation a host is pinned to, if any.
    pub fn pinned_generation(&self, host: &str) -> Result<Option<u32>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, GENERATION_PINS)? else {
            return Ok(None);
        };
        Ok(table.get(host)?.map(|v| v.value()))
    }

    /// What the host boots: its pinned generation, else its newest whose pre-flight passed or
    /// was skipped ([`current_of`]).
    pub fn current_generation(&self, host: &str) -> Result<Option<GenerationRecord>, StoreError> {
        let pinned = self.pinned_generation(host)?;
        let all = self.generations(host)?;
        Ok(current_of(pinned, &all).cloned())
    }

    /// One generation of a host.
    pub fn generation(
        &self,
        host: &str,
        number: u32,
    ) -> Result<Option<GenerationRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, GENERATIONS)? else {
            return Ok(None);
        };
        table
            .get((host, number))?
            .map(|v| decode("generations", format!("{host}/{number}"), v.value()))
            .transpose()
    }

    /// Replaces a generation's pre-flight record; false, changing nothing, when the generation
    /// is gone (removed while it was pre-flighted).
    pub fn set_preflight(
        &self,
        host: &str,
        number: u32,
        preflight: &PreflightRecord,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let done = {
            let mut table = txn.open_table(GENERATIONS)?;
            let existing = table
                .get((host, number))?
                .map(|v| {
                    decode::<GenerationRecord>("generations", format!("{host}/{number}"), v.value())
                })
                .transpose()?;
            match existing {
                Some(mut g) => {
                    g.preflight = preflight.clone();
                    table.insert((host, number), encode("generations", &g)?.as_slice())?;
                    true
                }
                None => false,
            }
        };
        txn.commit()?;
        Ok(done)
    }

    /// Every generation whose pre-flight is queued or running, oldest first by build time
    /// (after a restart, running ones are queued again by the caller).
    pub fn unfinished_preflights(&self) -> Result<Vec<GenerationRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, GENERATIONS)? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<GenerationRecord> = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let (h, n) = k.value();
            let g: GenerationRecord = decode("generations", format!("{h}/{n}"), v.value())?;
            if !g.preflight.state.is_final() {
                out.push(g);
            }
        }
        out.sort_by_key(|g| g.built_at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::UNIX_EPOCH;

    fn generation(host: &str, rev: &str) -> GenerationRecord {
        GenerationRecord {
            host: host.into(),
            number: 0,
            flake_url: "github:acme/fleet".into(),
            locked_url: format!("github:acme/fleet/{rev}"),
            revision: Some(rev.into()),
            kernel: "/nix/store/k/bzImage".into(),
            initrd: "/nix/store/r/initrd".into(),
            init: "/nix/store/t/init".into(),
            store_paths: vec![],
            kernel_params: vec![],
            built_at: UNIX_EPOCH,
            build_id: 1,
            log: "/l".into(),
            gc_roots: vec![],
            preflight: PreflightRecord::skipped("off"),
        }
    }

    #[test]
    fn empty_store_has_no_flakes_builds_or_generations() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert!(store.flakes().unwrap().is_empty());
        assert!(store.builds().unwrap().is_empty());
        assert!(store.generation_hosts().unwrap().is_empty());
        assert_eq!(store.current_generation("fleet#a").unwrap(), None);
        assert!(store.requeue_interrupted_builds().unwrap().is_empty());
    }

    #[test]
    fn flakes_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let flake = FlakeRecord {
            name: "fleet".into(),
            url: "github:acme/fleet".into(),
            locked_url: None,
            revision: None,
            locked_at: None,
            hosts: vec![FlakeHostRecord {
                name: "alpha".into(),
                unbootable: None,
                kernel_file: "bzImage".into(),
                kernel_params: vec![],
            }],
            error: None,
        };
        store.put_flake(&flake).unwrap();
        assert_eq!(store.flake("fleet").unwrap(), Some(flake.clone()));
        assert_eq!(store.flakes().unwrap(), vec![flake]);
        assert!(store.remove_flake("fleet").unwrap());
        assert!(!store.remove_flake("fleet").unwrap());
    }

    #[test]
    fn generations_number_per_host_and_pins_roll_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let g1 = store.add_generation(&generation("fleet#a", "r1")).unwrap();
        let g2 = store.add_generation(&generation("fleet#a", "r2")).unwrap();
        let b1 = store.add_generation(&generation("fleet#b", "r1")).unwrap();
        assert_eq!((g1.number, g2.number, b1.number), (1, 2, 1));
        assert_eq!(
            store.generation_hosts().unwrap(),
            vec!["fleet#a", "fleet#b"]
        );
        assert_eq!(
            store.current_generation("fleet#a").unwrap(),
            Some(g2.clone())
        );

        assert!(store.pin_generation("fleet#a", Some(1)).unwrap());
        assert!(!store.pin_generation("fleet#a", Some(9)).unwrap());
        assert_eq!(store.current_generation("fleet#a").unwrap(), Some(g1));
        // A newer build does not replace a pinned generation.
        store.add_generation(&generation("fleet#a", "r3")).unwrap();
        assert_eq!(
            store.current_generation("fleet#a").unwrap().unwrap().number,
            1
        );

        store.remove_generations("fleet#a", &[1]).unwrap();
        assert_eq!(store.pinned_generation("fleet#a").unwrap(), None);
        assert_eq!(
            store.current_generation("fleet#a").unwrap().unwrap().number,
            3
        );
        let numbers: Vec<u32> = store
            .generations("fleet#a")
            .unwrap()
            .iter()
            .map(|g| g.number)
            .collect();
        assert_eq!(numbers, vec![2, 3]);
        // Numbers are never reused while a newer generation exists.
        assert_eq!(
            store
                .add_generation(&generation("fleet#a", "r4"))
                .unwrap()
                .number,
            4
        );
    }

    fn with_preflight(host: &str, rev: &str, state: PreflightState) -> GenerationRecord {
        let mut g = generation(host, rev);
        g.preflight.state = state;
        g
    }

    /// The promotion rule: a queued, running or failed generation never becomes current by
    /// itself; the newest passed or skipped one does; a pin wins, even on a failed one.
    #[test]
    fn only_passed_or_skipped_generations_become_current_by_themselves() {
        use PreflightState::*;
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let current = |s: &Store| s.current_generation("fleet#a").unwrap().map(|g| g.number);
        assert_eq!(current(&store), None);
        store
            .add_generation(&with_preflight("fleet#a", "r1", Queued))
            .unwrap();
        assert_eq!(
            current(&store),
            None,
            "a queued first generation boots nothing yet"
        );
        store
            .add_generation(&with_preflight("fleet#a", "r2", Skipped))
            .unwrap();
        assert_eq!(current(&store), Some(2));
        for (rev, state) in [
            ("r3", Passed),
            ("r4", Failed),
            ("r5", Running),
            ("r6", Queued),
        ] {
            store
                .add_generation(&with_preflight("fleet#a", rev, state))
                .unwrap();
        }
        assert_eq!(current(&store), Some(3));
        // The first one passes late: still not newer than 3.
        let mut passed = PreflightRecord::queued();
        passed.state = Passed;
        assert!(store.set_preflight("fleet#a", 1, &passed).unwrap());
        assert_eq!(current(&store), Some(3));
        // 6 passes: it is current.
        assert!(store.set_preflight("fleet#a", 6, &passed).unwrap());
        assert_eq!(current(&store), Some(6));
        // A pin on the failed one is honoured.
        assert!(store.pin_generation("fleet#a", Some(4)).unwrap());
        assert_eq!(current(&store), Some(4));
        assert!(!store.set_preflight("fleet#a", 99, &passed).unwrap());
        let unfinished: Vec<u32> = store
            .unfinished_preflights()
            .unwrap()
            .iter()
            .map(|g| g.number)
            .collect();
        assert_eq!(unfinished, vec![5]);
        assert_eq!(
            store
                .generation("fleet#a", 5)
                .unwrap()
                .unwrap()
                .preflight
                .state,
            Running
        );
        assert_eq!(store.generation("fleet#a", 50).unwrap(), None);
    }
}
