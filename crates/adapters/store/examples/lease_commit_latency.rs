//! Measures `put_leases` (one durable, fsynced transaction per call) for several batch sizes:
//! what one DHCP group commit costs on this disk.
//!
//! `cargo run -p flakeboot-store --release --example lease_commit_latency [STATE_DIR]`
//! (default: a temporary directory, removed afterwards).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use flakeboot_catalogue::MacAddr;
use flakeboot_store::{LeaseRecord, LeaseState, Store};

fn lease(n: u32) -> LeaseRecord {
    let [a, b, c, d] = n.to_be_bytes();
    LeaseRecord {
        ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n),
        mac: MacAddr([0x52, 0x54, a, b, c, d]),
        client_id: Some(vec![1, 0x52, 0x54, a, b, c, d]),
        hostname: Some(format!("host-{n}")),
        expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        state: LeaseState::Bound,
    }
}

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    let store = Store::open(&dir)?;
    println!("state dir: {}", dir.display());
    println!("batch  commits  median_us  p99_us  leases/s");
    let mut next = 0u32;
    for batch in [1u32, 8, 64, 256] {
        let rounds = 200;
        let mut times = Vec::with_capacity(rounds);
        let started = Instant::now();
        for _ in 0..rounds {
            let leases: Vec<LeaseRecord> = (next..next + batch).map(lease).collect();
            next += batch;
            let t = Instant::now();
            store.put_leases(&leases)?;
            times.push(t.elapsed());
        }
        let total = started.elapsed();
        times.sort();
        let median = times.get(rounds / 2).copied().unwrap_or_default();
        let p99 = times.get(rounds * 99 / 100).copied().unwrap_or_default();
        let rate = f64::from(batch) * rounds as f64 / total.as_secs_f64();
        println!(
            "{batch:>5}  {rounds:>7}  {:>9}  {:>6}  {rate:>8.0}",
            median.as_micros(),
            p99.as_micros()
        );
    }
    Ok(())
}
