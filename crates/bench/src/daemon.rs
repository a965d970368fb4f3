//! `webhookd run` as its own process, configured through `WEBHOOKD__...`
//! variables, with its CPU time and peak memory read from /proc (Linux).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// The `webhookd` and `crm-events` binaries built next to this one
/// (`target/release/`), unless given on the command line.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating webhookd-bench")?;
    let path = exe
        .parent()
        .map(|dir| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
        .context("webhookd-bench has no parent directory")?;
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p webhookd -p webhookd-producer -p webhookd-bench` (or run scripts/bench.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// What the daemon process has used so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User + system CPU seconds, all threads.
    pub cpu_secs: f64,
    /// Peak resident set size (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

pub struct Daemon {
    child: Child,
    pid: u32,
    http: SocketAddr,
}

impl Daemon {
    /// Starts `webhookd run` with `env` on top of a free HTTP port, quiet logs
    /// (warnings and errors go to the benchmark's stderr) and private targets
    /// allowed (the receivers are on 127.0.0.1).
    pub fn start(binary: &Path, env: &[(String, String)]) -> anyhow::Result<Daemon> {
        let http = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg("run")
            .env("WEBHOOKD__HTTP__LISTEN", http.to_string())
            .env("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")
            .env("WEBHOOKD__LOG__LEVEL", "warn")
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("webhookd exited at once")?;
        Ok(Daemon { child, pid, http })
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.http);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("webhookd exited before it was ready: {status}");
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("webhookd was not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails when the process has exited (it should run until stopped).
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("webhookd exited unexpectedly: {status}"),
            None => Ok(()),
        }
    }

    pub fn usage(&self) -> anyhow::Result<Usage> {
        usage_of(self.pid)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The HTTP listener (`/metrics`, `/readyz`).
    pub fn http(&self) -> SocketAddr {
        self.http
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill")?;
        if !sent.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("webhookd did not exit within 60 s of SIGTERM")??;
        if !status.success() {
            bail!("webhookd exited with {status}");
        }
        Ok(())
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

/// CPU and peak RSS of a process from /proc.
pub fn usage_of(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(Usage {
        cpu_secs: cpu_seconds(&stat).context("parsing /proc/PID/stat")?,
        peak_rss_kib: peak_rss_kib(&status).context("no VmHWM in /proc/PID/status")?,
    })
}

/// CPU seconds used so far by every process named `comm` (e.g. all
/// `postgres` backends; processes that exited are not counted, so compare
/// readings taken while the same connections are open).
pub fn cpu_of_processes(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            stat.split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .is_some_and(|(name, _)| name == comm)
        })
        .filter_map(|stat| cpu_seconds(&stat))
        .sum()
}

/// Current resident set size (`VmRSS`), KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kib(&status, "VmRSS:").context("no VmRSS in /proc/PID/status")
}

/// Open file descriptors (sockets, files, eventfds...), the entries of
/// /proc/PID/fd.
pub fn open_fds(pid: u32) -> anyhow::Result<usize> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?;
    Ok(entries.count())
}

fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name is in parentheses and may hold spaces; utime and
    // stime are fields 14 and 15, i.e. 12th and 13th after the name.
    let (_, after) = stat.rsplit_once(')')?;
    let mut fields = after.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / clock_ticks_per_second())
}

/// USER_HZ is 100 on every Linux architecture Rust targets.
fn clock_ticks_per_second() -> f64 {
    100.0
}

fn peak_rss_kib(status: &str) -> Option<u64> {
    status_kib(status, "VmHWM:")
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_time_after_a_name_with_spaces() {
        let stat = "42 (web hookd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("42 (x) S 1"), None);
    }

    #[test]
    fn parses_peak_rss() {
        let status = "Name:\twebhookd\nVmPeak:\t  900 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(peak_rss_kib(status), Some(51_234));
        assert_eq!(peak_rss_kib("Name:\tx\n"), None);
        assert_eq!(status_kib(status, "VmRSS:"), Some(40_000));
    }

    #[test]
    fn reads_this_process() {
        let usage = usage_of(std::process::id()).expect("own /proc entry");
        assert!(usage.peak_rss_kib > 0);
        assert!(rss_kib(std::process::id()).expect("own VmRSS") > 0);
        assert!(open_fds(std::process::id()).expect("own fds") > 0);
    }
}
