//! CPU time and resident memory of process trees, read from `/proc` (Linux).
//!
//! A group is a set of root PIDs plus all their descendants (found through
//! `/proc/<pid>/task/<tid>/children`, or a scan of `/proc` where that file is missing), minus
//! processes whose `comm` is excluded (with their own descendants): e.g. the gateway's tree
//! without the stdio upstream it spawned. CPU is `utime + stime + cutime + cstime` from
//! `/proc/<pid>/stat`, so the time of children that exited and were reaped stays counted;
//! memory is the sum of `VmRSS` from `/proc/<pid>/status`.

use std::collections::{HashMap, HashSet};
use std::fs;

/// The `/proc/<pid>/stat` fields used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub ticks: u64,
}

/// Parses `/proc/<pid>/stat`. `comm` may hold spaces and parentheses: it runs to the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<i64>().ok());
    let ticks = [11, 12, 13, 14]
        .iter()
        .map(|&i| num(i).map(|v| v.max(0) as u64))
        .sum::<Option<u64>>()?;
    Some(Stat {
        comm,
        ppid: u32::try_from(num(1)?).ok()?,
        ticks,
    })
}

/// `VmRSS` in KiB from `/proc/<pid>/status` (absent for kernel threads and zombies: 0).
pub fn parse_vm_rss_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One reading of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub ticks: u64,
    pub rss_kib: u64,
    pub processes: usize,
}

/// Root PIDs, their descendants, minus excluded commands.
#[derive(Debug, Clone)]
pub struct Group {
    pub roots: Vec<u32>,
    pub exclude_comm: Vec<String>,
}

impl Group {
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Reads the group now. Processes that vanish while being read are skipped.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut seen = HashSet::new();
        let mut todo: Vec<u32> = self.roots.clone();
        let mut scanned: Option<HashMap<u32, Vec<u32>>> = None;
        while let Some(pid) = todo.pop() {
            if !seen.insert(pid) {
                continue;
            }
            let Some(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .as_deref()
                .and_then(parse_stat)
            else {
                continue;
            };
            if self.exclude_comm.contains(&stat.comm) {
                continue;
            }
            snap.processes += 1;
            snap.ticks += stat.ticks;
            snap.rss_kib += fs::read_to_string(format!("/proc/{pid}/status"))
                .map(|s| parse_vm_rss_kib(&s))
                .unwrap_or(0);
            match children(pid) {
                Some(kids) => todo.extend(kids),
                None => {
                    let map = scanned.get_or_insert_with(scan_children);
                    todo.extend(map.get(&pid).into_iter().flatten().copied());
                }
            }
        }
        snap
    }
}

/// Children of every thread of `pid`, from `/proc/<pid>/task/*/children`; `None` when the kernel
/// does not offer that file.
fn children(pid: u32) -> Option<Vec<u32>> {
    let mut kids = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let text = fs::read_to_string(task.path().join("children")).ok()?;
        kids.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    Some(kids)
}

/// ppid → children, from a scan of every `/proc/<pid>/stat`.
fn scan_children() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(stat) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            map.entry(stat.ppid).or_default().push(pid);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_tricky_comm() {
        let text = "4242 (gw (worker) 1) S 4000 4242 4000 0 -1 4194560 1234 0 0 0 150 25 3 2 20 0 9 0 100 200000 1000 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                comm: "gw (worker) 1".into(),
                ppid: 4000,
                ticks: 150 + 25 + 3 + 2
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0 1"), None);
    }

    #[test]
    fn vm_rss() {
        let status = "Name:\tmcp-echo\nVmPeak:\t  9000 kB\nVmRSS:\t    3140 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss_kib(status), 3140);
        assert_eq!(parse_vm_rss_kib("Name:\tkthreadd\n"), 0);
    }

    #[test]
    fn own_process_is_sampled() {
        let me = std::process::id();
        let group = Group {
            roots: vec![me],
            exclude_comm: vec![],
        };
        let snap = group.snapshot();
        assert!(snap.processes >= 1);
        assert!(snap.rss_kib > 0);
        let excluded = Group {
            roots: vec![me],
            exclude_comm: vec![
                parse_stat(&fs::read_to_string("/proc/self/stat").unwrap())
                    .unwrap()
                    .comm,
            ],
        };
        assert_eq!(excluded.snapshot(), Snapshot::default());
    }
}
