use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::Proc;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, created empty (only `lo`, up) and deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// `tag` is for people reading `ip netns list` while a test runs.
    pub fn new(tag: &str) -> io::Result<Netns> {
        let name = unique_name(tag);
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A name for the network namespace process `pid` is in (`ip netns attach`), for one made
    /// some other way (plain `unshare --net`). Dropping it removes the name; the namespace lives
    /// on while a process is in it.
    pub fn attach(tag: &str, pid: u32) -> io::Result<Netns> {
        let name = unique_name(tag);
        run_checked(Command::new("ip").args(["netns", "attach", &name, &pid.to_string()]))?;
        Ok(Netns { name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside this namespace (`ip netns exec` execs it: same PID).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Run a command to completion inside the namespace; its stdout, or an error with stderr.
    pub fn run(&self, argv: &[&str]) -> io::Result<String> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        let mut cmd = self.command(program);
        cmd.args(args);
        run_checked(&mut cmd)
    }

    /// Start a long-running process inside the namespace, its output captured to a log.
    pub fn spawn(&self, label: &str, argv: &[&str]) -> io::Result<Proc> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        let mut cmd = self.command(program);
        cmd.args(args);
        Proc::spawn(label, cmd)
    }

    /// Like [`Netns::spawn`] with a working directory.
    pub fn spawn_in(&self, label: &str, dir: &Path, argv: &[&str]) -> io::Result<Proc> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        let mut cmd = self.command(program);
        cmd.args(args).current_dir(dir);
        Proc::spawn(label, cmd)
    }

    /// Add a tap device (for QEMU) with an address, up.
    pub fn add_tap(&self, dev: &str, cidr: &str) -> io::Result<()> {
        self.run(&["ip", "tuntap", "add", "dev", dev, "mode", "tap"])?;
        self.run(&["ip", "addr", "add", cidr, "dev", dev])?;
        self.run(&["ip", "link", "set", dev, "up"])?;
        Ok(())
    }

    /// Give an interface an address and bring it up.
    pub fn addr(&self, dev: &str, cidr: &str) -> io::Result<()> {
        let mut args = vec!["ip", "addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.run(&args)?;
        self.run(&["ip", "link", "set", dev, "up"])?;
        Ok(())
    }
}

/// `fbt-<tag>-<pid>-<n>`: a name no other namespace of this run or another has.
fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    format!("fbt-{tag}-{}-{n}", std::process::id())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Join two namespaces with a veth pair (`a_dev` in `a`, `b_dev` in `b`), both ends up.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) -> io::Result<()> {
    a.run(&[
        "ip", "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", &b.name,
    ])?;
    a.run(&["ip", "link", "set", a_dev, "up"])?;
    b.run(&["ip", "link", "set", b_dev, "up"])?;
    Ok(())
}

fn run_checked(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Netns {
    /// Run `f` on a new OS thread that lives inside this namespace (setns), and return its
    /// handle: for in-process servers (a tokio runtime built inside `f` binds there).
    pub fn thread<T, F>(&self, f: F) -> io::Result<std::thread::JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))?;
        std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                if let Err(e) = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET) {
                    panic!("setns into test namespace failed: {e}");
                }
                f()
            })
    }
}
