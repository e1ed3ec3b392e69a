//! The LAN at a glance: every machine with its state now (its last boot's [`Verdict`]), the
//! host it boots (a config-file pin wins over the store's assignment), searched, filtered by
//! state and paged. The Machines page, `GET /api/v1/machines` and `flakeboot machines` all read
//! it. Only the page's machines have their events read, unless a state filter needs every
//! machine's. In router mode a machine that reported up but holds no DHCP lease any more is
//! offline ([`Verdict::present`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use flakeboot_catalogue::{BootEvent, MacAddr};
use flakeboot_store::{LeaseState, MachineRecord, Store, StoreError};

use crate::attempts::{Attempt, BootState, Verdict, attempts};

/// How many of a machine's newest events its last boot is read from (a boot takes about ten;
/// retries and size probes add a few).
pub const EVENTS_FOR_LAST_BOOT: usize = 48;
/// How many events a machine's attempts are read from.
pub const EVENTS_FOR_ATTEMPTS: usize = 400;
/// Machines whose events one read transaction reads when a state filter judges every machine.
const STATE_CHUNK: usize = 512;
/// Machines per page unless asked otherwise.
pub const DEFAULT_PER_PAGE: usize = 50;
/// At most this many machines per page a client may ask for.
pub const MAX_PER_PAGE: usize = 1000;

/// Which machines, which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Words that must all appear in the MAC, label, host, firmware or vendor class
    /// (case-insensitive); empty: every machine.
    pub text: String,
    /// Only machines whose last boot is in this state.
    pub state: Option<BootState>,
    /// The order of the list.
    pub sort: Sort,
    /// The page, from 1 (past the last: the last).
    pub page: usize,
    /// Machines per page (at least 1; [`Query::all`]: every machine on one page).
    pub per_page: usize,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            text: String::new(),
            state: None,
            sort: Sort::Seen,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl Query {
    /// Every machine on one page.
    pub fn all() -> Query {
        Query {
            per_page: usize::MAX,
            ..Query::default()
        }
    }
}

/// The order of the overview's list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most recently seen first.
    #[default]
    Seen,
    /// By MAC address.
    Mac,
    /// By label (machines without one last), then MAC.
    Label,
    /// By the host it boots (the menu last), then MAC.
    Host,
}

impl Sort {
    /// Every order, as a page offers them.
    pub const ALL: [Sort; 4] = [Sort::Seen, Sort::Mac, Sort::Label, Sort::Host];

    /// Its name in `?sort=`: `seen`, `mac`, `label`, `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Seen => "seen",
            Sort::Mac => "mac",
            Sort::Label => "label",
            Sort::Host => "host",
        }
    }

    /// Its name on a page.
    pub fn label(self) -> &'static str {
        match self {
            Sort::Seen => "last seen",
            Sort::Mac => "MAC",
            Sort::Label => "label",
            Sort::Host => "host",
        }
    }

    /// The order named `name` (as [`Sort::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One machine of the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What the store knows.
    pub machine: MachineRecord,
    /// The host it boots now (`None`: the menu): the config file's pin, else the store's.
    pub host: Option<String>,
    /// The config file pins it (`[[machines]]`): its host cannot be changed from the UI.
    pub pinned: bool,
    /// Its last boot.
    pub last_boot: Verdict,
}

/// One page of the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page's machines, most recently seen first.
    pub rows: Vec<Row>,
    /// Machines that match the query (on every page).
    pub total: usize,
    /// Machines known at all.
    pub machines: usize,
    /// This page, from 1.
    pub page: usize,
    /// Machines per page.
    pub per_page: usize,
}

impl Page {
    /// How many pages the matching machines fill (at least 1).
    pub fn pages(&self) -> usize {
        self.total.div_ceil(self.per_page.max(1)).max(1)
    }
}

/// What the overview needs beside the store: the config file's pins and the report timeout.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Machines the config file pins, with the host it gives them (`None`: the menu).
    pub pins: BTreeMap<MacAddr, Option<String>>,
    /// `[boot] report_timeout`.
    pub report_timeout: Duration,
    /// flakeboot is the LAN's DHCP server (router mode): its leases tell whether a machine that
    /// reported up is still there. In proxy mode they cannot.
    pub router: bool,
}

/// When each machine's DHCP lease ends, in router mode (see [`Verdict::present`]).
#[derive(Debug, Clone, Default)]
pub struct Leases(Option<BTreeMap<MacAddr, SystemTime>>);

impl Leases {
    /// The store's bound leases when `ctx` is in router mode; else nothing is known.
    pub fn read(store: &Store, ctx: &Context) -> Result<Leases, StoreError> {
        if !ctx.router {
            return Ok(Leases(None));
        }
        let mut ends: BTreeMap<MacAddr, SystemTime> = BTreeMap::new();
        for lease in store.leases()? {
            if lease.state == LeaseState::Bound {
                let end = ends.entry(lease.mac).or_insert(lease.expires);
                *end = (*end).max(lease.expires);
            }
        }
        Ok(Leases(Some(ends)))
    }

    /// What [`Verdict::present`] takes for `mac`.
    fn of(&self, mac: MacAddr) -> Option<Option<SystemTime>> {
        self.0.as_ref().map(|ends| ends.get(&mac).copied())
    }
}

impl Context {
    /// The host `machine` boots now and whether the file pins it.
    pub fn host_of(&self, machine: &MachineRecord) -> (Option<String>, bool) {
        match self.pins.get(&machine.mac) {
            Some(host) => (host.clone(), true),
            None => (machine.host.clone(), false),
        }
    }

    fn row(
        &self,
        machine: MachineRecord,
        events: &[BootEvent],
        leases: &Leases,
        now: SystemTime,
    ) -> Row {
        let (host, pinned) = self.host_of(&machine);
        Row {
            last_boot: Verdict::last(&attempts(events), now, self.report_timeout)
                .present(leases.of(machine.mac), now),
            machine,
            host,
            pinned,
        }
    }
}

/// The machines matching `query`, one page of them, each with its last boot.
pub fn overview(
    store: &Store,
    ctx: &Context,
    query: &Query,
    now: SystemTime,
) -> Result<Page, StoreError> {
    let all = store.machines()?;
    let known = all.len();
    let leases = Leases::read(store, ctx)?;
    let words: Vec<String> = query
        .text
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut matching: Vec<MachineRecord> = all
        .into_iter()
        .filter(|m| matches_text(m, ctx, &words))
        .collect();
    match query.sort {
        Sort::Seen => {
            matching.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.mac.cmp(&b.mac)));
        }
        Sort::Mac => matching.sort_by_key(|m| m.mac),
        Sort::Label => matching.sort_by(|a, b| {
            let key = |m: &MachineRecord| (m.label.is_none(), m.label.clone().unwrap_or_default());
            key(a).cmp(&key(b)).then(a.mac.cmp(&b.mac))
        }),
        Sort::Host => matching.sort_by_cached_key(|m| {
            let (host, _) = ctx.host_of(m);
            (host.is_none(), host.unwrap_or_default(), m.mac)
        }),
    }
    let per_page = query.per_page.max(1);
    let rows: Vec<Row> = match query.state {
        None => {
            let total = matching.len();
            let page = clamp_page(query.page, total, per_page);
            let skip = (page - 1).saturating_mul(per_page);
            let mut rows = Vec::new();
            for m in matching.into_iter().skip(skip).take(per_page) {
                let events = store.events_for(m.mac, EVENTS_FOR_LAST_BOOT)?;
                rows.push(ctx.row(m, &events, &leases, now));
            }
            return Ok(Page {
                rows,
                total,
                machines: known,
                page,
                per_page,
            });
        }
        Some(state) => {
            // Every machine is judged: their events are read in chunks, one read transaction
            // each, instead of one per machine.
            let mut rows = Vec::new();
            let mut matching = matching.into_iter().peekable();
            while matching.peek().is_some() {
                let chunk: Vec<MachineRecord> = matching.by_ref().take(STATE_CHUNK).collect();
                let macs: Vec<MacAddr> = chunk.iter().map(|m| m.mac).collect();
                let events = store.events_for_each(&macs, EVENTS_FOR_LAST_BOOT)?;
                for (m, events) in chunk.into_iter().zip(events) {
                    let row = ctx.row(m, &events, &leases, now);
                    if row.last_boot.state == state {
                        rows.push(row);
                    }
                }
            }
            rows
        }
    };
    let total = rows.len();
    let page = clamp_page(query.page, total, per_page);
    let skip = (page - 1).saturating_mul(per_page);
    Ok(Page {
        rows: rows.into_iter().skip(skip).take(per_page).collect(),
        total,
        machines: known,
        page,
        per_page,
    })
}

/// An attempt with its verdict.
pub type Judged = (Attempt, Verdict);

/// One machine with its boot attempts (newest first) and the verdict of each.
pub fn machine_attempts(
    store: &Store,
    ctx: &Context,
    mac: MacAddr,
    now: SystemTime,
) -> Result<Option<(Row, Vec<Judged>)>, StoreError> {
    let Some(machine) = store.machine(mac)? else {
        return Ok(None);
    };
    let events = store.events_for(mac, EVENTS_FOR_ATTEMPTS)?;
    let list = attempts(&events);
    let mut verdicts = Verdict::all(&list, now, ctx.report_timeout);
    if let Some(newest) = verdicts.first_mut() {
        let leases = Leases::read(store, ctx)?;
        *newest = newest.clone().present(leases.of(mac), now);
    }
    let list: Vec<Judged> = list.into_iter().zip(verdicts).collect();
    let (host, pinned) = ctx.host_of(&machine);
    let last_boot = list.first().map_or_else(Verdict::never, |(_, v)| v.clone());
    Ok(Some((
        Row {
            machine,
            host,
            pinned,
            last_boot,
        },
        list,
    )))
}

fn clamp_page(page: usize, total: usize, per_page: usize) -> usize {
    let pages = total.div_ceil(per_page.max(1)).max(1);
    page.clamp(1, pages)
}

fn matches_text(m: &MachineRecord, ctx: &Context, words: &[String]) -> bool {
    if words.is_empty() {
        return true;
    }
    let (host, _) = ctx.host_of(m);
    let haystack = [
        Some(m.mac.to_string()),
        m.label.clone(),
        host,
        m.vendor_class.clone(),
        m.firmware.map(|f| f.as_str().to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
    .to_lowercase();
    words.iter().all(|w| haystack.contains(w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use flakeboot_catalogue::{BootStage, ClientFirmware, Outcome};
    use flakeboot_store::StoreOptions;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn mac(n: u16) -> MacAddr {
        let [hi, lo] = n.to_be_bytes();
        MacAddr([0x52, 0x54, 0, 0, hi, lo])
    }

    fn ev(m: MacAddr, secs: u64, stage: BootStage, outcome: Outcome, detail: &str) -> BootEvent {
        let mut e = BootEvent::new(stage, outcome, detail)
            .mac(m)
            .firmware(ClientFirmware::IpxeEfi);
        e.at = at(secs);
        e
    }

    /// 30 machines: every third up (booted at `n`), every third failed at the kernel, the rest
    /// only got DHCP at `n` seconds.
    fn lan() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), StoreOptions::default()).unwrap();
        let mut events = Vec::new();
        for n in 0..30u16 {
            let m = mac(n);
            let t = u64::from(n) * 10;
            events.push(ev(m, t, BootStage::Dhcp, Outcome::Ok, "proxy offer"));
            match n % 3 {
                0 => {
                    events.push(ev(m, t + 1, BootStage::Script, Outcome::Ok, "s"));
                    events.push(ev(
                        m,
                        t + 2,
                        BootStage::Kernel,
                        Outcome::Ok,
                        "GET /boot/web/lab.g2/kernel 200",
                    ));
                    events.push(ev(
                        m,
                        t + 3,
                        BootStage::Initrd,
                        Outcome::Ok,
                        "GET /boot/web/lab.g2/initrd 200",
                    ));
                    events.push(ev(m, t + 5, BootStage::System, Outcome::Ok, "up"));
                }
                1 => {
                    events.push(ev(m, t + 1, BootStage::Script, Outcome::Ok, "s"));
                    events.push(ev(m, t + 2, BootStage::Kernel, Outcome::Failed, "cut off"));
                }
                _ => {}
            }
        }
        store.record_events(&events).unwrap();
        store
            .set_machine_label(mac(7), Some("rack seven".into()))
            .unwrap();
        (dir, store)
    }

    fn ctx() -> Context {
        Context {
            pins: BTreeMap::from([(mac(4), Some("pinned-host".to_owned()))]),
            report_timeout: Duration::from_secs(600),
            router: false,
        }
    }

    #[test]
    fn pages_newest_first_and_reads_only_the_page() {
        let (_dir, store) = lan();
        let now = at(300);
        let q = Query {
            per_page: 7,
            page: 2,
            ..Query::default()
        };
        let page = overview(&store, &ctx(), &q, now).unwrap();
        assert_eq!((page.total, page.machines, page.pages()), (30, 30, 5));
        let macs: Vec<MacAddr> = page.rows.iter().map(|r| r.machine.mac).collect();
        assert_eq!(macs, (16..=22).rev().map(mac).collect::<Vec<_>>());
        let row = page.rows.iter().find(|r| r.machine.mac == mac(18)).unwrap();
        assert_eq!(row.last_boot.state, BootState::Up);
        assert_eq!(row.last_boot.generation, Some(2));
        // Past the last page: the last page.
        let q = Query { page: 99, ..q };
        let page = overview(&store, &ctx(), &q, now).unwrap();
        assert_eq!((page.page, page.rows.len()), (5, 2));
    }

    #[test]
    fn filters_by_state_and_text_and_a_pin_wins() {
        let (_dir, store) = lan();
        let now = at(300);
        let q = |text: &str, state| Query {
            text: text.into(),
            state,
            ..Query::default()
        };
        let up = overview(&store, &ctx(), &q("", Some(BootState::Up)), now).unwrap();
        assert_eq!(up.total, 10);
        assert!(up.rows.iter().all(|r| r.last_boot.state == BootState::Up));
        let failed = overview(&store, &ctx(), &q("", Some(BootState::Failed)), now).unwrap();
        assert_eq!(failed.total, 10);
        // The DHCP-only machines: booting while recent, failed once quiet for the timeout.
        let booting = overview(&store, &ctx(), &q("", Some(BootState::Booting)), now).unwrap();
        assert_eq!(booting.total, 10);
        let later = overview(&store, &ctx(), &q("", Some(BootState::Booting)), at(5000)).unwrap();
        assert_eq!(later.total, 0);

        let found = overview(&store, &ctx(), &q("RACK seven", None), now).unwrap();
        assert_eq!(found.rows.len(), 1);
        assert_eq!(found.rows[0].machine.mac, mac(7));
        let pinned = overview(&store, &ctx(), &q("pinned-host", None), now).unwrap();
        assert_eq!(pinned.rows.len(), 1);
        assert!(pinned.rows[0].pinned);
        assert_eq!(pinned.rows[0].host.as_deref(), Some("pinned-host"));
        let none = overview(&store, &ctx(), &q("nothing-like-this", None), now).unwrap();
        assert_eq!((none.total, none.pages(), none.rows.len()), (0, 1, 0));
    }

    /// Router mode: of the 10 up machines, those whose lease ended (or that hold none) are
    /// offline; the state filter and a machine's own page agree; proxy mode says up.
    #[test]
    fn router_mode_up_machines_without_a_running_lease_are_offline() {
        use flakeboot_store::LeaseRecord;
        let (_dir, store) = lan();
        let now = at(300);
        // Up machines are 0, 3, ..., 27. Leases: 0 and 3 run on; 6 ran out; 9 is declined
        // (the address is not its); the others hold none.
        let lease = |n: u16, expires: u64, state| LeaseRecord {
            ip: std::net::Ipv4Addr::new(10, 77, 0, u8::try_from(n + 10).unwrap()),
            mac: mac(n),
            client_id: None,
            hostname: None,
            expires: at(expires),
            state,
        };
        store
            .put_leases(&[
                lease(0, 3600, LeaseState::Bound),
                lease(3, 301, LeaseState::Bound),
                lease(6, 299, LeaseState::Bound),
                lease(9, 3600, LeaseState::Declined),
            ])
            .unwrap();
        let router = Context {
            router: true,
            ..ctx()
        };
        let q = |state| Query {
            state: Some(state),
            ..Query::default()
        };
        let up = overview(&store, &router, &q(BootState::Up), now).unwrap();
        let mut macs: Vec<MacAddr> = up.rows.iter().map(|r| r.machine.mac).collect();
        macs.sort();
        assert_eq!(macs, [mac(0), mac(3)]);
        let offline = overview(&store, &router, &q(BootState::Offline), now).unwrap();
        assert_eq!(offline.total, 8);
        let six = offline
            .rows
            .iter()
            .find(|r| r.machine.mac == mac(6))
            .unwrap();
        assert!(
            six.last_boot.detail.contains("lease ran out"),
            "{:?}",
            six.last_boot
        );
        assert_eq!(six.last_boot.generation, Some(2));
        let (row, list) = machine_attempts(&store, &router, mac(6), now)
            .unwrap()
            .unwrap();
        assert_eq!(row.last_boot.state, BootState::Offline);
        assert_eq!(list[0].1.state, BootState::Offline);
        // Later, 3's lease ran out too.
        let later = overview(&store, &router, &q(BootState::Offline), at(302)).unwrap();
        assert_eq!(later.total, 9);
        // Proxy mode: no lease data, all 10 up.
        let proxy = overview(&store, &ctx(), &q(BootState::Up), now).unwrap();
        assert_eq!(proxy.total, 10);
    }

    /// Sorted by MAC, label (labelled first) or host (assigned first), each then by MAC; the
    /// state filter and paging apply to the sorted list.
    #[test]
    fn sorts_by_mac_label_and_host() {
        let (_dir, store) = lan();
        let now = at(300);
        let q = |sort, state| Query {
            sort,
            state,
            per_page: 3,
            ..Query::default()
        };
        let macs = |p: Page| p.rows.iter().map(|r| r.machine.mac).collect::<Vec<_>>();
        let seen = overview(&store, &ctx(), &q(Sort::Seen, None), now).unwrap();
        assert_eq!(macs(seen), [mac(29), mac(28), mac(27)]);
        let by_mac = overview(&store, &ctx(), &q(Sort::Mac, None), now).unwrap();
        assert_eq!(macs(by_mac), [mac(0), mac(1), mac(2)]);
        let up = overview(&store, &ctx(), &q(Sort::Mac, Some(BootState::Up)), now).unwrap();
        assert_eq!(macs(up), [mac(0), mac(3), mac(6)]);
        let by_label = overview(&store, &ctx(), &q(Sort::Label, None), now).unwrap();
        assert_eq!(by_label.rows[0].machine.mac, mac(7), "the one labelled");
        assert_eq!(macs(by_label)[1..], [mac(0), mac(1)]);
        let by_host = overview(&store, &ctx(), &q(Sort::Host, None), now).unwrap();
        assert_eq!(
            by_host.rows[0].machine.mac,
            mac(4),
            "the one pinned to a host"
        );
        assert_eq!(Sort::parse("host"), Some(Sort::Host));
        assert_eq!(Sort::parse("sideways"), None);
    }

    #[test]
    fn a_machine_has_its_attempts_with_verdicts() {
        let (_dir, store) = lan();
        let (row, list) = machine_attempts(&store, &ctx(), mac(3), at(300))
            .unwrap()
            .unwrap();
        assert_eq!(row.last_boot.state, BootState::Up);
        assert_eq!(list.len(), 1);
        assert!(list[0].0.complete);
        assert!(
            machine_attempts(&store, &ctx(), mac(999), at(0))
                .unwrap()
                .is_none()
        );
    }
}
