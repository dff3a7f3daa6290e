//! The server under test as a child process: started pinned to its CPUs, read through /proc
//! (CPU seconds, resident memory), stopped at the end. Every reading covers the whole process
//! tree (the started process and its descendants): the mediasoup reference is a Node process
//! whose media work happens in `mediasoup-worker` children; Atome and Janus are one process.
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Linux reports utime/stime in USER_HZ ticks, fixed at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

pub struct ServerProcess {
    child: Child,
    pub name: &'static str,
    /// Scratch directory (data, config), removed on drop.
    pub dir: PathBuf,
}

impl ServerProcess {
    /// Starts `program args` under `taskset -c cpus` when `cpus` is given.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        cpus: Option<&str>,
        dir: PathBuf,
    ) -> Result<ServerProcess, String> {
        let mut cmd = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).envs(envs.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdout(log).stderr(err);
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        Ok(ServerProcess { child, name, dir })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the end of the server's log if it has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited ({status}); log: {}", self.name, self.log_tail())),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(8).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The started process and its descendants, as /proc shows them now.
    pub fn members(&self) -> Vec<ProcStat> {
        tree(self.pid(), &all_stats())
    }

    /// CPU time of the server's process tree (user + system, all threads, dead threads
    /// included) in seconds.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        self.cpu_times().map(|(total, _)| total)
    }

    /// [`Self::cpu_seconds`] and its user-space part (the server's own code, without the system
    /// calls and the kernel's packet work, which on loopback includes delivering each datagram
    /// into the receiving client's socket), from one reading of /proc.
    pub fn cpu_times(&self) -> Result<(f64, f64), String> {
        let members = self.members();
        if members.is_empty() {
            return Err(format!("{}: no process {} in /proc", self.name, self.pid()));
        }
        let user = members.iter().map(|p| p.user_ticks).sum::<u64>() as f64 / TICKS_PER_SECOND;
        Ok((tree_cpu_seconds(&members), user))
    }

    /// Resident memory of the server's process tree in bytes (each process's VmRSS summed).
    pub fn rss_bytes(&self) -> Result<u64, String> {
        let root = rss_of(self.pid())?;
        let others: u64 = self.members().iter().filter(|p| p.pid != self.pid()).filter_map(|p| rss_of(p.pid).ok()).sum();
        Ok(root + others)
    }

    /// Threads of the server's process tree.
    pub fn threads(&self) -> usize {
        self.members().iter().map(|p| p.threads as usize).sum()
    }

    /// CPU ticks of every live thread of the tree, summed per `process/thread` name (threads
    /// of one pool share a name; a thread named as its process, e.g. its main thread, is just
    /// `process`).
    pub fn ticks_by_thread(&self) -> HashMap<String, u64> {
        let mut by_name = HashMap::new();
        for p in self.members() {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", p.pid)) else { continue };
            for t in tasks.flatten() {
                if let Some(t) = std::fs::read_to_string(t.path().join("stat")).ok().and_then(|s| parse_stat(&s)) {
                    let key = if t.name == p.name { t.name } else { format!("{}/{}", p.name, t.name) };
                    *by_name.entry(key).or_insert(0) += t.ticks;
                }
            }
        }
        by_name
    }
}

/// Where the server's CPU went between two [`ServerProcess::ticks_by_thread`] readings: seconds
/// per `process/thread` name, largest first (threads that ended in between are left out).
pub fn cpu_split(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> Vec<(String, f64)> {
    let mut split: Vec<(String, f64)> = after
        .iter()
        .map(|(name, t)| (name.clone(), t.saturating_sub(before.get(name).copied().unwrap_or(0)) as f64 / TICKS_PER_SECOND))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    split.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    split
}

/// Resident memory of process `pid` in bytes.
fn rss_of(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or("no VmRSS")?;
    let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or("unreadable VmRSS")?;
    Ok(kb * 1024)
}

/// What the tree readings need from one `/proc/PID/stat` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The command name (thread name for a task), as the kernel keeps it (15 bytes at most).
    pub name: String,
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// utime alone, in clock ticks.
    pub user_ticks: u64,
    pub threads: u64,
    /// Start time after boot, in clock ticks: with the pid, tells a process from a later one
    /// that reused its pid.
    pub start: u64,
}

/// Parses one `/proc/PID/stat` line. The command name sits in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let (head, rest) = text.rsplit_once(')')?;
    let (pid, name) = head.split_once(" (")?;
    let pid = pid.trim().parse().ok()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (0), ppid (1), ..., utime (11), stime (12), ..., num_threads (17),
    // ..., starttime (19).
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        pid,
        name: name.to_string(),
        ppid: num(1)? as u32,
        ticks: num(11)? + num(12)?,
        user_ticks: num(11)?,
        threads: num(17)?,
        start: num(19)?,
    })
}

/// `root` and every process descending from it (children, grandchildren, ...), root first.
/// Empty when `root` is not among `procs`.
pub fn tree(root: u32, procs: &[ProcStat]) -> Vec<ProcStat> {
    let Some(first) = procs.iter().find(|p| p.pid == root) else { return Vec::new() };
    let mut members = vec![first.clone()];
    let mut i = 0;
    while i < members.len() {
        let parent = members[i].pid;
        members.extend(procs.iter().filter(|p| p.ppid == parent && p.pid != root).cloned());
        i += 1;
    }
    members
}

/// CPU seconds of a set of processes.
pub fn tree_cpu_seconds(members: &[ProcStat]) -> f64 {
    members.iter().map(|p| p.ticks).sum::<u64>() as f64 / TICKS_PER_SECOND
}

/// Every process /proc lists now (ones that exit while it is read are skipped).
fn all_stats() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|t| parse_stat(&t))
        .collect()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGTERM first so the server shuts down cleanly (the mediasoup reference closes its
        // workers itself), then make sure it and its descendants are gone.
        let descendants: Vec<ProcStat> = self.members().into_iter().filter(|p| p.pid != self.pid()).collect();
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            // Only the processes seen in the tree, by pid and start time (never a reused pid).
            let left: Vec<&ProcStat> = descendants.iter().filter(|d| still_running(d)).collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for d in left {
                    let _ = Command::new("kill").arg("-KILL").arg(d.pid.to_string()).status();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn still_running(p: &ProcStat) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).ok().and_then(|t| parse_stat(&t)).is_some_and(|now| now.start == p.start)
}

/// CPU time of process `pid` ("self" for this one) in seconds.
pub fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).ok_or("unreadable /proc stat");
    Ok((tick(11)? + tick(12)?) / TICKS_PER_SECOND)
}

/// A TCP port free on loopback right now.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("loadgen-{name}-{}-{}", std::process::id(), fastrand::u32(..)));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Polls `url` until it answers 2xx.
pub async fn wait_http(server: &mut ServerProcess, url: &str) -> Result<(), String> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        server.check_alive()?;
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() || r.status().is_client_error() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not answer {url} within 20 s; log: {}", server.name, server.log_tail()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/PID/stat` line with the fields the readings use; the rest as the kernel prints them.
    fn stat_line(pid: u32, name: &str, ppid: u32, utime: u64, stime: u64, threads: u64, start: u64) -> String {
        format!("{pid} ({name}) S {ppid} {pid} {pid} 0 -1 4194560 1000 0 0 0 {utime} {stime} 0 0 20 0 {threads} 0 {start} 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0")
    }

    #[test]
    fn parses_stat_lines_whatever_the_command_name() {
        let p = parse_stat(&stat_line(4242, "mediasoup-worker", 4200, 150, 50, 3, 9999)).unwrap();
        assert_eq!(
            p,
            ProcStat { pid: 4242, name: "mediasoup-worker".into(), ppid: 4200, ticks: 200, user_ticks: 150, threads: 3, start: 9999 }
        );
        // A name with spaces and a closing parenthesis does not shift the fields.
        let p = parse_stat(&stat_line(7, "a b) c", 1, 1, 2, 11, 5)).unwrap();
        assert_eq!((p.pid, p.name.as_str(), p.ppid, p.ticks, p.threads, p.start), (7, "a b) c", 1, 3, 11, 5));
        assert_eq!(parse_stat("12 (x) S"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn the_tree_counts_node_and_its_workers_not_the_rest() {
        // node (100) under taskset's exec, two mediasoup workers, one grandchild; next to them
        // the load tool (50, parent of 100) and an unrelated process.
        let procs: Vec<ProcStat> = [
            stat_line(50, "loadgen", 1, 900, 100, 2, 1),
            stat_line(100, "node", 50, 300, 100, 11, 10),
            stat_line(101, "mediasoup-worker", 100, 2000, 500, 1, 11),
            stat_line(102, "mediasoup-worker", 100, 1000, 300, 1, 12),
            stat_line(103, "helper", 102, 10, 0, 1, 13),
            stat_line(200, "rustc", 1, 5000, 0, 4, 20),
        ]
        .iter()
        .map(|l| parse_stat(l).unwrap())
        .collect();
        let members = tree(100, &procs);
        let mut pids: Vec<u32> = members.iter().map(|p| p.pid).collect();
        assert_eq!(pids[0], 100, "root first");
        pids.sort_unstable();
        assert_eq!(pids, vec![100, 101, 102, 103]);
        // (300 + 100) + (2000 + 500) + (1000 + 300) + 10 ticks at 100 per second.
        assert!((tree_cpu_seconds(&members) - 42.1).abs() < 1e-9);
        assert_eq!(members.iter().map(|p| p.threads).sum::<u64>(), 14);
        // A single-process server is its own tree; a vanished root has none.
        assert_eq!(tree(200, &procs).len(), 1);
        assert!(tree(999, &procs).is_empty());
    }

    #[test]
    fn the_cpu_split_is_per_thread_name_largest_first() {
        let before: HashMap<String, u64> =
            [("atome/media-worker-0", 1000), ("atome/tokio-runtime-w", 300), ("atome/gone", 50)].map(|(k, v)| (k.to_string(), v)).into();
        let after: HashMap<String, u64> =
            [("atome/media-worker-0", 1450), ("atome/tokio-runtime-w", 320), ("atome/new", 5), ("atome/idle", 0)]
                .map(|(k, v)| (k.to_string(), v))
                .into();
        let split = cpu_split(&before, &after);
        let names: Vec<&str> = split.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["atome/media-worker-0", "atome/tokio-runtime-w", "atome/new"]);
        assert!((split[0].1 - 4.5).abs() < 1e-9 && (split[1].1 - 0.2).abs() < 1e-9 && (split[2].1 - 0.05).abs() < 1e-9);
    }

    #[test]
    fn this_process_is_found_in_proc() {
        let me = std::process::id();
        let members = tree(me, &all_stats());
        assert_eq!(members.first().map(|p| p.pid), Some(me));
        assert!(rss_of(me).unwrap() > 0);
    }
}
