//! Small OS helpers shared by the servers: free ports, bounded waits, commands, signals.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::process::Command;

/// Ports handed out by this process. The OS may return a port again once its probe
/// socket is closed; two servers of one bed must never be given the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close).
///
/// # Panics
/// When no socket can be bound at all; see [`try_free_port`].
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("{e:#}"),
    }
}

/// [`free_port`] that reports failure instead of panicking.
pub fn try_free_port() -> Result<u16> {
    for _ in 0..64 {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener.local_addr()?.port();
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    bail!("no fresh free port after 64 tries")
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub async fn wait_for_tcp(port: u16, timeout: Duration) -> Result<()> {
    wait_until(
        &format!("127.0.0.1:{port} to accept connections"),
        timeout,
        None,
        || async {
            Ok(tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .is_ok())
        },
    )
    .await
}

/// Polls `check` every 50 ms until it returns `Ok(true)` or `timeout` passes. The error
/// names what was awaited, the last error of `check`, and the tail of `log` if given.
pub(crate) async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    log: Option<&Path>,
    mut check: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(format!("{e:#}")),
        }
        if start.elapsed() >= timeout {
            let mut msg = format!("timed out after {timeout:?} waiting for {what}");
            if let Some(e) = last_err {
                msg.push_str(&format!("; last error: {e}"));
            }
            if let Some(log) = log {
                msg.push_str(&log_tail(log, 30));
            }
            bail!(msg);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last `lines` lines of a log file, formatted to append to an error message.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            format!("\n--- last lines of {} ---\n{tail}\n---", path.display())
        }
        Err(e) => format!("\n(no log at {}: {e})", path.display()),
    }
}

/// Whether this process runs with effective uid 0. Read from /proc to need no libc.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs a short-lived command to completion within `timeout`; fails with its output when
/// it exits non-zero. stdin is /dev/null so nothing ever waits on a terminal.
pub(crate) async fn run(cmd: &mut Command, what: &str, timeout: Duration) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| anyhow!("{what}: no answer within {timeout:?}"))?
        .with_context(|| format!("{what}: could not run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}):\n{}", out.status, output_text(&out));
    }
    Ok(out)
}

/// stdout and stderr of a finished command, trimmed, for error messages.
pub(crate) fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(err.trim());
    }
    s
}

/// Sends `signal` (a name such as `STOP`) to the pids through the shell's `kill`
/// builtin, which exists everywhere (the crate forbids the unsafe that libc needs).
pub(crate) fn signal(pids: &[u32], signal: &str) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{signal} \"$@\""))
        .arg("sh")
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .output()
        .context("running kill")?;
    if !out.status.success() {
        bail!("kill -{signal} {pids:?} failed: {}", output_text(&out));
    }
    Ok(())
}

/// Whether a process exists and is not a zombie (a killed daemon stays a zombie until
/// init reaps it, and `kill -0` still succeeds on it).
pub(crate) fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Direct children of `pid`, from /proc (no procps needed).
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // Field 4 is the parent pid; the name in field 2 may hold spaces.
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Waits until `pid` has exited.
pub(crate) async fn wait_pid_gone(pid: u32, timeout: Duration) -> Result<()> {
    wait_until(&format!("pid {pid} to exit"), timeout, None, || async {
        Ok(!pid_alive(pid))
    })
    .await
}

/// Quotes a string for POSIX sh.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A short token unique across processes and calls: pid, a counter and random bits
/// (std's RandomState is seeded randomly per process; no rand dependency needed).
pub(crate) fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((n, Instant::now())) & 0xff_ffff;
    format!("{}_{n}_{random:06x}", std::process::id())
}

/// Makes a fresh directory for one group of servers and returns its path. It is not
/// removed automatically: the owner's guard or `testbed down` removes it, after the
/// servers inside it are stopped.
pub(crate) fn make_root(prefix: &str) -> Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base_dir())
        .context("creating a temp dir")?
        .keep();
    // Other users (postgres when we are root, nginx workers) must traverse it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))?;
    Ok(dir)
}

/// `$TMPDIR` when the postgres user can traverse every directory down to it, else
/// /tmp: a TMPDIR under a private home (0700) would make initdb fail as postgres.
pub(crate) fn base_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    let traversable = tmp.ancestors().all(|dir| {
        std::fs::metadata(dir)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    });
    if traversable {
        tmp
    } else {
        PathBuf::from("/tmp")
    }
}

/// uid and gid of a local user, from /etc/passwd.
pub(crate) fn user_ids(name: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut f = line.split(':');
            if f.next()? != name {
                return None;
            }
            let uid = f.nth(1)?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .ok_or_else(|| anyhow!("user {name:?} not found in /etc/passwd (is postgresql installed?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        assert_ne!(unique_token(), unique_token());
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn ports_are_not_repeated() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50);
    }

    #[test]
    fn own_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX));
    }
}
