//! A bench LAN with a real LAN's round trip. The issue asks for `tc netem delay` on the veth;
//! this machine's kernel has no `sch_netem` (`tc qdisc add ... netem` says "Specified qdisc
//! kind is unknown" and there are no modules to load), so the delay is made here: the server's
//! `lan0` and the client's `eth0` are taps, and this process carries each frame from one to
//! the other after a fixed delay, in order, in both directions. Every server of a comparison
//! runs over the same relay; [`round_trip`] measures what the link really adds.

use std::fs::File;
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flakeboot_testbed::{Netns, TestLan};

use crate::clients::percentile;
use crate::error::{BenchError, Result};
use crate::lan::{CLIENT_IF, CLIENT_IP, PREFIX, SERVER_IF, SERVER_IP};

/// Server `lan0` ([`SERVER_IP`]) and client `eth0` ([`CLIENT_IP`]) joined through this
/// process, each frame held `one_way` before it goes on. The relay's threads end when the
/// LAN's namespaces are deleted (the taps go with them and their reads fail).
pub fn delayed_lan(tag: &str, one_way: Duration) -> Result<TestLan> {
    let lan = TestLan::tap(&format!("b{tag}"), SERVER_IF)
        .server_addr(&format!("{SERVER_IP}/{PREFIX}"))
        .build()
        .map_err(BenchError::io("delayed bench LAN"))?;
    let client = lan.client();
    client
        .run(&["ip", "tuntap", "add", "dev", CLIENT_IF, "mode", "tap"])
        .and_then(|_| client.addr(CLIENT_IF, &format!("{CLIENT_IP}/{PREFIX}")))
        .map_err(BenchError::io("the client's tap"))?;
    let server_tap = attach(&lan.server, SERVER_IF)?;
    let client_tap = attach(client, CLIENT_IF)?;
    let clone = |f: &File| {
        f.try_clone()
            .map_err(BenchError::io("duplicating a tap fd"))
    };
    carry(
        clone(&server_tap)?,
        clone(&client_tap)?,
        one_way,
        "to-client",
    )?;
    carry(client_tap, server_tap, one_way, "to-server")?;
    Ok(lan)
}

/// Opens the existing tap `dev` in `ns` (the TUN driver attaches the fd to it).
fn attach(ns: &Netns, dev: &str) -> Result<File> {
    let name = dev.to_owned();
    let opened = ns
        .thread(move || flakeboot_netif::open_tap(&name))
        .map_err(BenchError::io("a thread in the LAN's namespace"))?
        .join()
        .map_err(|_| BenchError::Incomplete {
            what: format!("attaching to tap {dev}"),
            detail: "thread panicked".to_owned(),
        })?;
    opened.map_err(|e| BenchError::Incomplete {
        what: format!("attaching to tap {dev}"),
        detail: e.to_string(),
    })
}

/// One direction: a reader stamps each frame with when it may go on; a writer holds it until
/// then. Both end when their tap does.
fn carry(mut from: File, mut to: File, delay: Duration, name: &str) -> Result<()> {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let spawn = |role: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(format!("delay-{name}-{role}"))
            .spawn(f)
            .map(drop)
            .map_err(BenchError::io("starting the delay relay"))
    };
    spawn(
        "read",
        Box::new(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = from.read(&mut buf) {
                let frame = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send((Instant::now() + delay, frame)).is_err() {
                    return;
                }
            }
        }),
    )?;
    spawn(
        "write",
        Box::new(move || {
            while let Ok((due, frame)) = rx.recv() {
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // A frame the tap refuses is lost, as on a wire; a tap that is gone ends it.
                if let Err(e) = to.write(&frame)
                    && e.raw_os_error() == Some(libc::EBADFD)
                {
                    return;
                }
            }
        }),
    )
}

/// The median round trip (ms) of `n` UDP datagrams from the client to an echo on the server:
/// what the link adds, relay included.
pub fn round_trip(lan: &TestLan, n: usize) -> Result<f64> {
    let port = 7_777;
    let echo = lan
        .server
        .thread(move || -> std::io::Result<()> {
            let socket = UdpSocket::bind((SERVER_IP, port))?;
            socket.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            for _ in 0..n {
                let (len, from) = socket.recv_from(&mut buf)?;
                socket.send_to(buf.get(..len).unwrap_or_default(), from)?;
            }
            Ok(())
        })
        .map_err(BenchError::io("the echo's thread"))?;
    std::thread::sleep(Duration::from_millis(100));
    let times = lan
        .client()
        .thread(move || -> std::io::Result<Vec<f64>> {
            let socket = UdpSocket::bind((CLIENT_IP, 0))?;
            socket.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut times = Vec::with_capacity(n);
            let mut buf = [0u8; 64];
            for i in 0..n {
                let sent = Instant::now();
                socket.send_to(&i.to_le_bytes(), (SERVER_IP, port))?;
                socket.recv_from(&mut buf)?;
                times.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(times)
        })
        .map_err(BenchError::io("the ping's thread"))?
        .join();
    let failed = |detail: String| BenchError::Incomplete {
        what: "the round trip over the delayed LAN".to_owned(),
        detail,
    };
    let times = times
        .map_err(|_| failed("thread panicked".to_owned()))?
        .map_err(|e| failed(e.to_string()))?;
    let _ = echo.join();
    Ok(percentile(&times, 50.0))
}
