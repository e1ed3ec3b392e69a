//! Memory and CPU figures of a running server from /proc: peak RSS (`VmHWM`) and CPU time
//! (`utime + stime`), for one process or a process and its children (nginx's workers).

use std::path::Path;

/// Peak and current resident set size of a process, and its anonymous (private, unshared)
/// part now, in KiB. The rest of the RSS is file pages the kernel mapped (the binary's code
/// around each page it ran, shared libraries): clean, shared, reclaimable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub hwm_kib: u64,
    pub rss_kib: u64,
    pub anon_kib: u64,
}

/// Parse `VmHWM`, `VmRSS` and `RssAnon` out of a /proc/PID/status text.
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
    }
}

/// `(ppid, CPU clock ticks)` out of a /proc/PID/stat text: utime + stime, and cutime + cstime,
/// what its children that ended and were waited for used (a child nobody waits for, as
/// tftp-hpa's per-transfer ones, is in neither).
/// The command name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last `)`.
pub fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17);
    // index = field - 3.
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
    Some((ppid, ticks(11)? + ticks(12)? + ticks(13)? + ticks(14)?))
}

/// The process and every descendant of it, by scanning /proc.
pub fn process_tree(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![root];
    };
    let parents: Vec<(u32, u32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&text)?.0))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&parent) = tree.get(i) {
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
}

/// Memory of a process tree (sums: nginx's master and workers together).
pub fn memory(root: u32) -> Memory {
    process_tree(root)
        .into_iter()
        .map(|pid| {
            parse_status(
                &std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default(),
            )
        })
        .fold(Memory::default(), |a, m| Memory {
            hwm_kib: a.hwm_kib + m.hwm_kib,
            rss_kib: a.rss_kib + m.rss_kib,
            anon_kib: a.anon_kib + m.anon_kib,
        })
}

/// CPU seconds (user + system) a process tree has used so far.
pub fn cpu_seconds(root: u32) -> f64 {
    let ticks: u64 = process_tree(root)
        .into_iter()
        .filter_map(|pid| parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .map(|(_, t)| t)
        .sum();
    ticks as f64 / clock_ticks() as f64
}

/// The kernel's clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// True when /proc has the process (it is alive or a zombie).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_in_kib() {
        let text = "Name:\tflakeboot\nVmPeak:\t  100 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    5432 kB\n\
             RssAnon:\t    1234 kB\nRssFile:\t    4198 kB\n";
        assert_eq!(
            parse_status(text),
            Memory {
                hwm_kib: 9876,
                rss_kib: 5432,
                anon_kib: 1234,
            }
        );
        assert_eq!(parse_status("garbage"), Memory::default());
    }

    #[test]
    fn stat_counts_fields_after_the_command_name() {
        // A real line, with a name that has a space and a parenthesis in it.
        let text = "4242 (nginx: wor) ker) S 4241 4241 4241 0 -1 4194624 120 0 0 0 37 12 0 0 20 0 1 0 1234 10000 300 18446744073709551615";
        assert_eq!(parse_stat(text), Some((4241, 49)));
        // Children that ended count too (cutime 5, cstime 3).
        let forked = text.replace(" 37 12 0 0 ", " 37 12 5 3 ");
        assert_eq!(parse_stat(&forked), Some((4241, 57)));
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn own_process_is_measurable() {
        let me = std::process::id();
        assert!(memory(me).hwm_kib > 0);
        assert!(process_tree(me).contains(&me));
        assert!(exists(me));
    }
}
