//! The server under test as a child process: started pinned to its CPUs, read through /proc
//! (CPU seconds, resident memory), stopped at the end.
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

    /// CPU time of the server (user + system, all threads, dead ones included) in seconds.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        cpu_seconds(&self.pid().to_string())
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).map_err(|e| e.to_string())?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or("no VmRSS")?;
        let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or("unreadable VmRSS")?;
        Ok(kb * 1024)
    }

    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).map_or(0, |d| d.count())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGTERM first so the server shuts down cleanly, then make sure it is gone.
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
